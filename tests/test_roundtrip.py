"""End-to-end encode/decode through the command line with random (untrained) weights.

The codec's central promise: what ``decode`` writes is byte for byte the encoder's ``--recon``,
whatever the size, frame count, frame types, transport (files or pipes) and thread count.
Clips are tiny and most runs are in-process (``cli``); the process boundary is exercised where it
matters (decoding in another process, stdin/stdout pipes).
"""
import io
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import CLI, TIMEOUT_S, clip_frames, cli_inproc as cli, make_y4m, read_y4m, run_cli
from flowcodec.codec.bitstream import UNKNOWN_FRAMES, FrameType, Reader, payload_unpack
from flowcodec.codec.options import PRESETS, QUALITIES as OPTIONS_QUALITIES
from flowcodec.eval.metrics import psnr_yuv
from flowcodec.motion import available

QUALITIES = range(1, OPTIONS_QUALITIES + 1)
SUMMARY = re.compile(r"encoded (\d+) frames (\d+)x(\d+) quality (\d) \S+: (\d+) bytes, ([0-9.]+) bpp, "
                     r"[0-9.]+ kbit/s, PSNR-YUV ([0-9.]+) dB")


def _bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _frame_types(fcb):
    with open(fcb, "rb") as f:
        r = Reader(f)
        return [t for t, _, _ in r], r.header


def _encode(src, dst, weights, *extra, recon=None):
    """Encode with the fixed intra period: untrained weights code P-frames so badly that adaptive intra
    would make every frame intra (``test_adaptive_intra_at_a_scene_cut`` tests it with trained ones)."""
    args = ["encode", src, "-o", dst, "--weights", weights, "--threads", "1", "-q", "--no-adaptive-intra", *extra]
    if recon:
        args += ["--recon", recon]
    rc, out, err = cli(*args)
    assert rc == 0, err
    assert out == ""
    return err


def _decode(fcb, dst, weights, *extra):
    rc, out, err = cli("decode", fcb, "-o", dst, "--weights", weights, "--threads", "1", "-q", *extra)
    assert rc == 0, err
    return err


def test_module_entry_point():
    p = run_cli("--help")
    assert p.returncode == 0, p.stderr
    for cmd in (b"encode", b"decode", b"info", b"train"):
        assert cmd in p.stdout


# --- every quality, decoded in another process -------------------------------------------------

W, H, N = 64, 64, 3


@pytest.fixture(scope="module")
def ladder(tmp_path_factory, weights):
    """The 64x64x3 clip encoded at every quality (intra period 2: I P I), then decoded by one
    separate Python process (one start-up instead of six)."""
    d = tmp_path_factory.mktemp("ladder")
    src = make_y4m(d / "clip.y4m", W, H, N, seed=1)
    out = {}
    for q in QUALITIES:
        fcb, rec, dec = (str(d / f"q{q}{ext}") for ext in (".fcb", "_recon.y4m", "_dec.y4m"))
        err = _encode(src, fcb, weights, "--quality", str(q), "--intra-period", "2",
                      recon=rec)
        out[q] = dict(fcb=fcb, rec=rec, dec=dec, summary=err)
    script = ("import sys\nfrom flowcodec.cli import main\n"
              "for fcb, dec in zip(sys.argv[2::2], sys.argv[3::2]):\n"
              "    rc = main(['decode', fcb, '-o', dec, '--weights', sys.argv[1], '--threads', '1', '-q'])\n"
              "    if rc: sys.exit(rc)\n")
    argv = [weights] + [p for q in QUALITIES for p in (out[q]["fcb"], out[q]["dec"])]
    p = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True,
                       timeout=6 * TIMEOUT_S)
    assert p.returncode == 0, p.stderr.decode()
    return src, out


@pytest.mark.parametrize("q", QUALITIES)
def test_decode_in_other_process_equals_recon(ladder, q):
    src, out = ladder
    rec, dec = _bytes(out[q]["rec"]), _bytes(out[q]["dec"])
    assert len(rec) > 0
    assert dec == rec
    types, header = _frame_types(out[q]["fcb"])
    assert types == [FrameType.INTRA_HEVC, FrameType.INTER, FrameType.INTRA_HEVC]
    assert (header.width, header.height, header.quality, header.intra_period) == (W, H, q, 2)
    assert header.frame_count == N  # patched in, since the output was a seekable file


@pytest.mark.parametrize("q", QUALITIES)
def test_summary_bpp_and_psnr(ladder, q):
    src, out = ladder
    m = SUMMARY.search(out[q]["summary"])
    assert m, out[q]["summary"]
    n, w, h, qq, size, bpp, psnr = m.groups()
    assert (int(n), int(w), int(h), int(qq)) == (N, W, H, q)
    fsize = os.path.getsize(out[q]["fcb"])
    assert int(size) == fsize
    assert bpp == f"{8 * fsize / (W * H * N):.4f}"
    mean_psnr = np.mean([psnr_yuv(a, b)["yuv"] for a, b in zip(read_y4m(src), read_y4m(out[q]["rec"]))])
    assert float(psnr) == pytest.approx(mean_psnr, abs=1e-3)


def test_quality_ladder_is_ordered(ladder):
    """Intra frames use x265 QP 42 (q1) .. 26 (q6): their payloads grow and their reconstruction
    improves with the quality; so does the whole file from q1 to q6."""
    src, out = ladder
    intra_bytes, psnr0 = [], []
    first = read_y4m(src)[0]
    for q in QUALITIES:
        with open(out[q]["fcb"], "rb") as f:
            intra_bytes.append(sum(len(p) for t, p, _ in Reader(f) if t == FrameType.INTRA_HEVC))
        psnr0.append(psnr_yuv(first, read_y4m(out[q]["rec"])[0])["yuv"])
    assert all(a < b for a, b in zip(intra_bytes, intra_bytes[1:])), intra_bytes
    assert all(a < b for a, b in zip(psnr0, psnr0[1:])), psnr0
    assert os.path.getsize(out[1]["fcb"]) < os.path.getsize(out[6]["fcb"])


# --- sizes and frame counts ---------------------------------------------------------------------

@pytest.mark.parametrize("w,h,n", [(66, 38, 3), (64, 48, 1)])
def test_odd_sizes_and_single_frame(tmp_path, weights, w, h, n):
    src = make_y4m(tmp_path / "c.y4m", w, h, n, seed=2)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, recon=rec)
    _decode(fcb, dec, weights)
    assert _bytes(dec) == _bytes(rec)
    frames = read_y4m(dec)
    assert len(frames) == n
    for f in frames:
        assert f[0].shape == (h, w)
        assert f[1].shape == f[2].shape == ((h + 1) // 2, (w + 1) // 2)
    # the intra frame is HEVC at QP 35: close to the source, so nothing is shifted or mis-cropped
    assert psnr_yuv(read_y4m(src)[0], frames[0])["yuv"] > 30
    types, header = _frame_types(fcb)
    assert types == [FrameType.INTRA_HEVC] + [FrameType.INTER] * (n - 1)
    assert (header.width, header.height) == (w, h)


def test_odd_width_and_height(tmp_path, weights):
    """Both dimensions odd (odd chroma rounding, HEVC padding): still bit-exact."""
    src = make_y4m(tmp_path / "c.y4m", 35, 27, 2, seed=3)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, recon=rec)
    _decode(fcb, dec, weights)
    assert _bytes(dec) == _bytes(rec)
    assert psnr_yuv(read_y4m(src)[0], read_y4m(dec)[0])["yuv"] > 30


@pytest.mark.parametrize("w,h", [(1, 1), (2, 2), (3, 5), (1, 200), (66, 38)])
def test_any_frame_size_with_default_intra(tmp_path, weights, w, h):
    """x265 codes nothing under 16x16, the codec any size: I P P with HEVC intra (the default) decodes
    to the encoder's reconstruction byte for byte, at the source's size and close to it."""
    src = make_y4m(tmp_path / "c.y4m", w, h, 3, seed=w * h)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, recon=rec)
    _decode(fcb, dec, weights)
    assert _bytes(dec) == _bytes(rec)
    assert _frame_types(fcb)[0] == [FrameType.INTRA_HEVC, FrameType.INTER, FrameType.INTER]
    frames = read_y4m(dec)
    assert [f[0].shape for f in frames] == [(h, w)] * 3
    assert psnr_yuv(read_y4m(src)[0], frames[0])["yuv"] > 30


def test_intra_period_default_33_frames(tmp_path, weights):
    src = make_y4m(tmp_path / "c.y4m", 32, 32, 33, seed=4)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, recon=rec)
    rc, out, err = cli("info", fcb, "--frames")
    assert rc == 0, err
    types = re.findall(r"^frame\s+(\d+)\s+(\w+)\s+q3\s+(\d+) bytes  (.*)$", out, re.M)  # quality 3 each
    assert [int(i) for i, _, _, _ in types] == list(range(33))
    assert [t for _, t, _, _ in types] == ["INTRA_HEVC"] + ["INTER"] * 31 + ["INTRA_HEVC"]
    assert "intra period 32" in out
    for _, t, size, parts in types:  # the tagged sub-streams (count, tag, length, data) make the payload
        streams = {k: int(n) for k, n in re.findall(r"(\w+) (\d+)", parts)}
        assert list(streams) == (["hevc"] if t == "INTRA_HEVC" else ["motion", "residual"])
        heads = 0 if t == "INTRA_HEVC" else 1 + sum(2 + (n > 127) for n in streams.values())
        assert sum(streams.values()) + heads == int(size)
    assert f"33 frames, {sum(int(b) for _, _, b, _ in types)} payload bytes: hevc " in out
    _decode(fcb, dec, weights)
    assert _bytes(dec) == _bytes(rec)


def test_frames_option_limits_input(tmp_path, weights):
    src = make_y4m(tmp_path / "c.y4m", 32, 32, 5, seed=5)
    fcb, rec = str(tmp_path / "c.fcb"), str(tmp_path / "r.y4m")
    _encode(src, fcb, weights, "--frames", "2", recon=rec)
    assert len(_frame_types(fcb)[0]) == 2
    assert len(read_y4m(rec)) == 2


# --- transports and threads ---------------------------------------------------------------------

def test_stdin_stdout_pipeline_equals_file_recon(tmp_path, weights):
    """cat clip.y4m | flowcodec encode - -o - | flowcodec decode - -o -  ==  encode --recon.

    Both processes run at once; this test sits in the middle of the pipe (a thread copies the
    encoder's stdout to the decoder's stdin) to keep the bitstream for a look."""
    src = make_y4m(tmp_path / "c.y4m", 48, 32, 3, seed=6)
    fcb, rec = str(tmp_path / "c.fcb"), str(tmp_path / "r.y4m")
    _encode(src, fcb, weights, recon=rec)

    common = ["--weights", weights, "--threads", "1", "-q"]
    pipe = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    enc = subprocess.Popen(CLI + ["encode", "-", "-o", "-", "--no-adaptive-intra", *common], **pipe)
    dec = subprocess.Popen(CLI + ["decode", "-", "-o", "-", *common], **pipe)
    stream = []

    def pump():
        try:
            while chunk := enc.stdout.read1(1 << 16):
                stream.append(chunk)
                dec.stdin.write(chunk)
                dec.stdin.flush()
        finally:
            dec.stdin.close()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        enc.stdin.write(_bytes(src))  # ~7 KB: fits the pipe buffer
        enc.stdin.close()
        decoded = dec.stdout.read()
        dec_err, enc_err = dec.stderr.read(), enc.stderr.read()
        t.join(TIMEOUT_S)
        enc.wait(TIMEOUT_S)
        dec.wait(TIMEOUT_S)
    finally:
        for p in (enc, dec):
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdout, p.stderr):
                f.close()
    assert enc.returncode == 0, enc_err.decode()
    assert dec.returncode == 0, dec_err.decode()
    assert b"encoded 3 frames" in enc_err and b"decoded 3 frames" in dec_err
    assert decoded == _bytes(rec)

    # the piped bitstream: frame_count stays 'unknown' (no seeking back on a pipe); the records are
    # the file's, byte for byte
    piped, filed = b"".join(stream), _bytes(fcb)
    assert len(piped) == len(filed)
    r_pipe, r_file = Reader(io.BytesIO(piped)), Reader(io.BytesIO(filed))
    assert r_pipe.header.frame_count == UNKNOWN_FRAMES and r_file.header.frame_count == 3
    assert list(r_pipe) == list(r_file)


def test_decode_threads_1_and_2_identical(tmp_path, weights):
    src = make_y4m(tmp_path / "c.y4m", 64, 48, 3, seed=8)
    fcb, rec = str(tmp_path / "c.fcb"), str(tmp_path / "r.y4m")
    _encode(src, fcb, weights, recon=rec)
    outs = []
    for threads in ("1", "2"):
        dec = str(tmp_path / f"d{threads}.y4m")
        rc, _, err = cli("decode", fcb, "-o", dec, "--weights", weights, "--threads", threads, "-q")
        assert rc == 0, err
        outs.append(_bytes(dec))
    assert outs[0] == outs[1] == _bytes(rec)


def test_raw_yuv_input(tmp_path, weights):
    """Headerless yuv420p with --size codes exactly like the same frames in y4m (25 fps both)."""
    w, h, n = 46, 30, 2
    frames = clip_frames(w, h, n, seed=9)
    yuv = tmp_path / "c.yuv"
    yuv.write_bytes(b"".join(p.tobytes() for f in frames for p in f))
    y4m = make_y4m(tmp_path / "c.y4m", w, h, n, seed=9)
    fcb_yuv, fcb_y4m, rec, dec = (str(tmp_path / f) for f in ("a.fcb", "b.fcb", "r.y4m", "d.y4m"))
    _encode(str(yuv), fcb_yuv, weights, "--size", f"{w}x{h}", recon=rec)
    _encode(y4m, fcb_y4m, weights)
    assert _bytes(fcb_yuv) == _bytes(fcb_y4m)
    _decode(fcb_yuv, dec, weights)
    assert _bytes(dec) == _bytes(rec)
    assert len(read_y4m(dec)) == n


# --- learned intra frames ------------------------------------------------------------------------

def test_learned_intra_decodes_in_other_process(tmp_path, weights):
    src = make_y4m(tmp_path / "c.y4m", 66, 38, 3, seed=5)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, "--intra", "learned", "--intra-period", "2", recon=rec)
    p = run_cli("decode", fcb, "-o", dec, "--weights", weights, "--threads", "1", "-q")
    assert p.returncode == 0, p.stderr
    assert _bytes(dec) == _bytes(rec)
    assert _frame_types(fcb)[0] == [FrameType.INTRA_LEARNED, FrameType.INTER, FrameType.INTRA_LEARNED]


def test_auto_intra_keeps_the_lower_rd_cost(monkeypatch):
    """``auto`` codes both intra codecs and keeps the one with the lower bits + λ·D: with λ = 0 the
    smaller payload, with a huge λ the better picture; whichever the costs say, never a fixed type."""
    import torch
    from flowcodec.codec import encoder
    from flowcodec.codec.model import VideoModel
    torch.manual_seed(0)
    model = VideoModel().eval()
    frame = clip_frames(64, 48, 1, seed=3)[0]
    options = {}
    for mode, ftype in (("hevc", FrameType.INTRA_HEVC), ("learned", FrameType.INTRA_LEARNED)):
        t, payload, recon = encoder.SequenceEncoder(model, 64, 48, 3, intra_mode=mode).encode(frame)
        assert t == ftype
        options[ftype] = (len(payload), encoder.rd_cost(frame, recon, 0, 1.0))  # (bytes, D)
    assert options[FrameType.INTRA_HEVC][1] != options[FrameType.INTRA_LEARNED][1]
    chosen = []
    for lam, pick in ((0.0, lambda o: o[0]), (1e12, lambda o: o[1])):
        monkeypatch.setattr(encoder, "lam", lambda quality, lam=lam: lam)
        expected = min(options, key=lambda t: pick(options[t]))
        chosen.append(encoder.SequenceEncoder(model, 64, 48, 3, intra_mode="auto").encode(frame)[0])
        assert chosen[-1] == expected
    assert len(set(chosen)) == 2  # random weights: a tiny, poor learned picture vs a good HEVC one


# --- block modes ------------------------------------------------------------------------------

def _round_trip(tmp_path, src, weights, *extra):
    """Encode ``src`` (fixed intra period), decode it in another process; the decoded file must equal
    the encoder's --recon. Returns the paths (bitstream, recon, decoded)."""
    fcb, rec, dec = (str(tmp_path / n) for n in ("t.fcb", "t_recon.y4m", "t_decoded.y4m"))
    _encode(src, fcb, weights, *extra, recon=rec)
    p = run_cli("decode", fcb, "-o", dec, "--weights", weights, "--threads", "1", "-q")
    assert p.returncode == 0, p.stderr
    assert _bytes(dec) == _bytes(rec)
    return fcb, rec, dec


@pytest.mark.parametrize("preset,intra", [(p, "hevc") for p in PRESETS] + [("slow", "learned")])
def test_presets_round_trip(tmp_path, weights, preset, intra):
    """Every preset codes a stream that another process decodes to the encoder's reconstruction (the
    decoder is the same for all; slow and veryslow code latents found by a float32 search, for learned
    intra frames too)."""
    src = make_y4m(tmp_path / "clip.y4m", 72, 40, 3, seed=5)
    fcb = _round_trip(tmp_path, src, weights, "--preset", preset, "--intra", intra)[0]
    assert _frame_types(fcb)[0][0] == (FrameType.INTRA_LEARNED if intra == "learned" else FrameType.INTRA_HEVC)


def test_still_clip_p_frames_are_nearly_free(tmp_path, weights):
    """A clip that does not change: every block of every P-frame copies the reference (the mode map
    alone is coded), in another process too."""
    frame = clip_frames(130, 70, 1, seed=9)[0]
    src = str(tmp_path / "still.y4m")
    from flowcodec.io import VideoInfo, Y4MWriter
    with open(src, "wb") as f:
        w = Y4MWriter(f, VideoInfo(130, 70, 25, 1))
        for _ in range(4):
            w.write(frame)
        w.close()
    fcb, rec, _ = _round_trip(tmp_path, src, weights, "--quality", "6")
    frames = read_y4m(rec)
    assert all(all(np.array_equal(a, b) for a, b in zip(frames[0], f)) for f in frames[1:])
    with open(fcb, "rb") as f:
        sizes = [len(p) for t, p, _ in Reader(f) if t == FrameType.INTER]
    assert len(sizes) == 3 and max(sizes) <= 16, sizes


@pytest.mark.parametrize("motion", available())
def test_block_modes_round_trip(motion):
    """Every module, a map with all five block modes, the frame's last predictor, in exact arithmetic:
    decoding gives the encoder's reconstruction and consumes the payload exactly; COPY blocks are the
    reference's pixels with zero motion, PREDICT and SKIP blocks the prediction's, MERGE and SKIP blocks
    have the predicted motion (zero without a predictor) and code no motion latents."""
    import torch
    from flowcodec.codec import inter
    from flowcodec.codec.model import VideoModel
    from flowcodec.entropy.coder import Decode, Encode
    from flowcodec.layers.exact import exact
    from flowcodec.motion import DecodedPictures
    torch.manual_seed(0)
    model = VideoModel(motion).eval()
    frames = torch.rand(3, 1, 6, 64, 96, generator=torch.Generator().manual_seed(1)).double()
    shift = torch.zeros(1, 2, 128, 192, dtype=torch.float64)
    shift[:, 0] = 1.5
    state = DecodedPictures.intra(frames[0]).push(frames[1], shift)  # decoded motion for the predictors
    cur = frames[2]
    modes = torch.tensor([[[[inter.COPY, inter.CODED, inter.PREDICT], [inter.MERGE, inter.SKIP, inter.CODED]]]])
    k = model.inter.motion.usable(state) - 1
    tags = model.inter.tags
    sizes = []
    with exact():
        for m in (None, modes):
            enc = Encode(tags, m)
            x_hat, pred, field, _ = model.inter(cur, state, 2, enc, predictor=k)
            payloads = enc.payloads()
            sizes.append([len(p) for p in payloads])
            dec = Decode(tags, payloads)
            assert torch.equal(model.inter(None, state, 2, dec)[0], x_hat)
            dec.finish()
        guess = model.inter.motion.predict(state, k, Encode(tags), model.inter.motion.estimate(cur, state), cur)
    predicted = torch.zeros_like(field) if guess is None else guess
    ref = state.ref
    for mode, source in ((inter.COPY, ref), (inter.PREDICT, pred), (inter.SKIP, pred)):
        where = inter.pixels(modes == mode).expand_as(ref)
        assert torch.equal(x_hat[where], source[where]), inter.MODES[mode]
    at = lambda mode: inter.pixels(modes == mode, 2).expand_as(field)
    assert torch.equal(field[at(inter.COPY)], torch.zeros_like(field[at(inter.COPY)]))
    for mode in (inter.MERGE, inter.SKIP):
        assert torch.equal(field[at(mode)], predicted[at(mode)]), inter.MODES[mode]
    coded = inter.pixels(modes == inter.CODED).expand_as(ref)
    assert not torch.equal(x_hat[coded], pred[coded])
    assert sizes[1][0] < sizes[0][0] and sizes[1][1] < sizes[0][1]  # motion and residual streams


@pytest.mark.parametrize("motion", ["temporal", "higher_order", "decomposed"])
def test_motion_predictors_round_trip(tmp_path, motion):
    """Modules that predict motion from the decoder state (temporal, higher_order; after an intra frame
    only 'none' is possible) or from global parameters in their own sub-stream (decomposed): 20 frames
    with an intra frame every 8 (the state restarts twice), decoded in another process and through a
    pipe, equal the encoder's recon. Each P-frame signals its motion predictor."""
    from conftest import make_weights
    weights = make_weights(tmp_path / f"{motion}.safetensors", seed=3, motion=motion)
    src = make_y4m(tmp_path / "c.y4m", 64, 48, 20, seed=7)
    fcb, rec, dec = (str(tmp_path / n) for n in ("c.fcb", "r.y4m", "d.y4m"))
    _encode(src, fcb, weights, "--motion", motion, "--intra-period", "8", recon=rec)
    common = ["--weights", weights, "--threads", "1", "-q"]
    p = run_cli("decode", fcb, "-o", dec, *common)
    assert p.returncode == 0, p.stderr.decode()
    assert _bytes(dec) == _bytes(rec)
    with open(fcb, "rb") as f:
        records = list(Reader(f))
    types = [t for t, _, _ in records]
    assert [i for i, t in enumerate(types) if t != FrameType.INTER] == [0, 8, 16]
    streams = {tuple(payload_unpack(p)[0]) for t, p, _ in records if t == FrameType.INTER}
    # a module's own sub-stream is left out when empty (decomposed without a global model)
    assert streams <= {("motion", "residual"), ("motion", "residual", "global")}, streams
    assert motion == "decomposed" or ("motion", "residual", "global") not in streams
    piped = subprocess.run(
        f"{sys.executable} -m flowcodec.cli encode {src} -o - --motion {motion} --intra-period 8 "
        "--no-adaptive-intra "
        f"{' '.join(common)} | {sys.executable} -m flowcodec.cli decode - -o - {' '.join(common)}",
        shell=True, capture_output=True, timeout=4 * TIMEOUT_S)
    assert piped.returncode == 0, piped.stderr.decode()
    assert piped.stdout == _bytes(rec)


@pytest.mark.parametrize("mono_y4m", [False, True])
def test_monochrome_stays_monochrome(tmp_path, weights, mono_y4m):
    """A gray clip (4:2:0 with chroma 128 everywhere, or a Cmono y4m) sets the header's monochrome flag;
    every decoded frame, intra and inter, has chroma exactly 128 and equals the encoder's --recon."""
    from flowcodec.codec.bitstream import MONOCHROME
    frames = clip_frames(72, 40, 5, seed=12)
    src = str(tmp_path / "gray.y4m")
    with open(src, "wb") as f:
        if mono_y4m:
            f.write(b"YUV4MPEG2 W72 H40 F25:1 Cmono\n" + b"".join(b"FRAME\n" + y.tobytes() for y, _, _ in frames))
        else:
            from flowcodec.io import VideoInfo, Y4MWriter
            w = Y4MWriter(f, VideoInfo(72, 40, 25, 1))
            for y, u, v in frames:
                w.write((y, np.full_like(u, 128), np.full_like(v, 128)))
            w.close()
    fcb, _, dec = _round_trip(tmp_path, src, weights, "--intra-period", "3")
    types, header = _frame_types(fcb)
    assert header.flags == MONOCHROME and types.count(FrameType.INTER) == 3
    decoded = read_y4m(dec)
    assert len(decoded) == 5 and all(np.all(c == 128) for f in decoded for c in f[1:])
