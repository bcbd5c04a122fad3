"""Exact arithmetic (``layers.exact``): a stream decodes to the encoder's reconstruction on any CPU,
instruction set and thread count.

The unit tests check each rule against an independent computation (integer arithmetic for the
convolutions, numpy for exp and log); the last test decodes streams of every shipped model in separate
processes under restricted instruction sets and thread counts. Before exact arithmetic (format 3)
that test failed: under ``ONEDNN_MAX_CPU_ISA=SSE41`` a learned-intra pyramid stream of the bundled clip
stopped with a damaged-payload error at frame 26, its range decoder desynchronised by a flipped scale.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowcodec.codec import inter, intra
from flowcodec.codec.bitstream import Reader
from flowcodec.codec.model import VideoModel
from flowcodec.entropy.coder import Decode, Encode
from flowcodec.layers import GDN, exact
from flowcodec.motion import DecodedPictures, available
from flowcodec.motion.warp import warp
from flowcodec.io import BUNDLED_CLIP

from conftest import cli_inproc

CLIP = BUNDLED_CLIP


def _integer_conv(x, w, b, stride, padding):
    """conv2d in int64 from the grid's integers (x·2^14, w·2^18, b·2^32): the exact result, ×2^-32."""
    xi = torch.round(x.double() * 2**exact.ACT_BITS).long()
    wi = torch.round(w.double() * 2**exact.WEIGHT_BITS).long()
    cols = F.unfold(xi.double(), w.shape[-1], padding=padding, stride=stride).long()  # integers < 2^53
    out = wi.reshape(w.shape[0], -1) @ cols[0]
    if b is not None:
        out = out + torch.round(b.double() * 2 ** (exact.ACT_BITS + exact.WEIGHT_BITS)).long()[:, None]
    side = lambda n: (n + 2 * padding - w.shape[-1]) // stride + 1
    return out.reshape(1, w.shape[0], side(x.shape[-2]), side(x.shape[-1])).double() / 2.0 ** 32


@pytest.mark.parametrize("stride", [1, 2])
def test_exact_conv_equals_integer_arithmetic(stride):
    """Any summation order gives the integer result: with 1 and 2 threads and with the input channels
    permuted, bit for bit."""
    torch.manual_seed(0)
    x, w, b = torch.randn(1, 48, 20, 24) * 30, torch.randn(32, 48, 5, 5) * 0.05, torch.randn(32)
    want = _integer_conv(exact.grid(x), w, b, stride, 2)
    perm = torch.randperm(48)
    threads = torch.get_num_threads()
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            assert torch.equal(exact.conv(x, w, b, stride=stride, padding=2), want)
            assert torch.equal(exact.conv(x[:, perm], w[:, perm], b, stride=stride, padding=2), want)
    finally:
        torch.set_num_threads(threads)
    ref = F.conv2d(x, w, b, stride, 2)
    assert (exact.conv(x, w, b, stride=stride, padding=2) - ref).abs().max() < 2e-4 * ref.abs().max()


def test_exact_transposed_conv_equals_integer_arithmetic():
    """A transposed convolution is the convolution of the zero-dilated input with the flipped kernel."""
    torch.manual_seed(1)
    x, w, b = torch.randn(1, 16, 6, 7) * 10, torch.randn(16, 8, 5, 5) * 0.1, torch.randn(8)
    dilated = torch.zeros(1, 16, 11, 13, dtype=torch.float64)  # (n - 1)·stride + 1
    dilated[..., ::2, ::2] = exact.grid(x)
    dilated = F.pad(dilated, (2, 3, 2, 3))  # k-1-padding before, + output_padding after
    want = _integer_conv(dilated, w.flip(2, 3).transpose(0, 1), b, 1, 0)
    got = exact.conv(x, w, b, transposed=True, stride=2, padding=2, output_padding=1)
    assert got.shape == want.shape == (1, 8, 12, 14) and torch.equal(got, want)


def test_exact_conv_clamps_inputs_so_sums_stay_exact():
    """Inputs beyond the bound are clamped, so even absurd activations give the integer result of the
    clamped input (no partial sum reaches 2^SUM_BITS)."""
    w = torch.full((1, 64, 3, 3), 0.5)  # Σ|w| = 288 per output sample
    x = torch.full((1, 64, 4, 4), 1e9)
    got = exact.conv(x, w, padding=1)
    limit = float(got[0, 0, 1, 1]) / 288  # an inner sample sums the whole window
    assert 2.0**exact.SUM_BITS / 288 - 2.0**-exact.ACT_BITS <= limit <= 2.0**exact.SUM_BITS / 288
    assert torch.equal(got, _integer_conv(x.double().clamp(max=limit), w, None, 1, 1))


def test_gdn_exact_matches_float_and_ignores_threads():
    torch.manual_seed(2)
    for inverse in (False, True):
        gdn, x = GDN(64, inverse), torch.rand(1, 64, 16, 24) * 4
        with torch.no_grad():
            gdn.gamma.add_(torch.rand_like(gdn.gamma) * 0.01)
            ref = gdn(x).double()
        outs, threads = [], torch.get_num_threads()
        try:
            for t in (1, 2):
                torch.set_num_threads(t)
                with exact.exact():
                    outs.append(gdn(x))
        finally:
            torch.set_num_threads(threads)
        assert torch.equal(*outs) and outs[0].dtype == torch.float64
        assert (outs[0] - ref).abs().max() < 1e-3


def test_exp_and_log_match_numpy():
    x = np.linspace(-700, 700, 100001)
    assert np.max(np.abs(exact.exp(x) / np.exp(x) - 1)) < 1e-15
    y = np.exp(np.linspace(-600, 600, 100001))
    assert np.max(np.abs(exact.log(y) - np.log(y))) < 1e-12
    assert exact.exp(0.0) == 1.0 and exact.log(1.0) == 0.0


def test_warp_equals_grid_sample_and_shifts_exactly():
    torch.manual_seed(3)
    img, flow = torch.rand(2, 3, 20, 30), torch.randn(2, 2, 20, 30) * 4
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(30.0), indexing="ij")
    g = torch.stack(((xs + flow[:, 0]) / 29 * 2 - 1, (ys + flow[:, 1]) / 19 * 2 - 1), -1)
    ref = F.grid_sample(img, g, mode="bilinear", padding_mode="border", align_corners=True)
    assert (warp(img, flow) - ref).abs().max() < 1e-5
    shift = torch.zeros(1, 2, 20, 30)
    shift[:, 0] = 3  # sample 3 pixels to the right: an exact copy, edge replicated
    out = warp(img[:1], shift)
    assert torch.equal(out[..., :27], img[:1, :, :, 3:]) and torch.equal(out[..., 27:], img[:1, :, :, 29:].expand(-1, -1, -1, 3))


@pytest.mark.parametrize("motion", ["pyramid", "scale_space", "feature", "pixel_to_feature"])
def test_decoding_ignores_the_thread_count(motion):
    torch.manual_seed(1)
    model = VideoModel(motion).eval()
    x, ref = torch.rand(1, 6, 64, 96), DecodedPictures.intra(torch.rand(1, 6, 64, 96).double())
    threads = torch.get_num_threads()
    try:
        with exact.exact():
            torch.set_num_threads(2)
            p_enc, i_enc = Encode(inter.TAGS), Encode(intra.TAGS)
            p_hat, i_hat = model.inter(x, ref, 5, p_enc)[0], model.intra(x, 5, i_enc)
            for t in (1, 2, 3):
                torch.set_num_threads(t)
                assert torch.equal(model.inter(None, ref, 5, Decode(inter.TAGS, p_enc.payloads()))[0], p_hat)
                assert torch.equal(model.intra(None, 5, Decode(intra.TAGS, i_enc.payloads()), (64, 96)), i_hat)
    finally:
        torch.set_num_threads(threads)


RESTRICTED = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
SETTINGS = [({}, 1), ({}, 2), ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 1), ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
            ({"ATEN_CPU_CAPABILITY": "default"}, 1), ({"ATEN_CPU_CAPABILITY": "default"}, 2),
            (RESTRICTED, 2)]  # also MKL's SSE4.2 kernels: the float64 GEMM under the convolutions


@pytest.fixture(scope="module")
def shipped_streams(tmp_path_factory):
    """Every shipped model's stream of the bundled clip (6 frames, intra period 4: I P P P I P, learned
    intra frames) at quality 5, the motion set's (``--motion auto``: P-frames from several members), and
    the pyramid's at 100 kbit/s (each frame's quality chosen by the rate
    control, fractional ones included), encoded here with the default CPU features and 2 threads, with
    its --recon."""
    work = tmp_path_factory.mktemp("exact")
    streams = []
    for name, motion, rate in [(m, m, ["--quality", "5"]) for m in available() + ["auto"]] + \
            [("pyramid-bitrate", "pyramid", ["--bitrate", "100"])]:
        fcb, recon = work / f"{name}.fcb", work / f"{name}.y4m"
        rc, _, err = cli_inproc("encode", CLIP, "-o", fcb, "--recon", recon, "--motion", motion, "--frames", "6",
                                "--intra-period", "4", "--intra", "learned", *rate, "--threads", "2",
                                "-q", timeout=300)
        assert rc == 0, err
        streams.append((name, fcb, recon))
    with open(work / "pyramid-bitrate.fcb", "rb") as f:
        qualities = {q for _, _, q in Reader(f)}
    assert len(qualities) > 2 and any(q != int(q) for q in qualities), qualities
    return streams


@pytest.mark.parametrize("env,threads", SETTINGS, ids=[f"{'+'.join(e.values()) or 'default'}-{t}t" for e, t in SETTINGS])
def test_decodes_identically_under_other_cpu_features(shipped_streams, tmp_path, env, threads):
    """Each stream decoded in a separate process under restricted instruction sets (oneDNN's and ATen's)
    and 1 or 2 threads equals the encoder's --recon byte for byte."""
    script = ("import sys; from flowcodec.cli import main\n"
              "for fcb, out in zip(sys.argv[1::2], sys.argv[2::2]): main(['decode', fcb, '-o', out, '-q', "
              f"'--threads', '{threads}'])")
    outs = [tmp_path / f"{motion}.y4m" for motion, _, _ in shipped_streams]
    argv = [str(p) for (_, fcb, _), out in zip(shipped_streams, outs) for p in (fcb, out)]
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for (motion, _, recon), out in zip(shipped_streams, outs):
        assert out.read_bytes() == recon.read_bytes(), f"{motion} under {env or 'default'}, {threads} threads"


def test_encoder_output_ignores_the_thread_count(tmp_path):
    """The encoder's analysis is exact too: its bitstream is the same with 1 and 2 threads (decomposed:
    also its global-motion fit and predictor choice)."""
    outs = []
    for threads in ("1", "2"):
        fcb = tmp_path / f"t{threads}.fcb"
        rc, _, err = cli_inproc("encode", CLIP, "-o", fcb, "--motion", "decomposed", "--frames", "4",
                                "--quality", "4", "--threads", threads, "-q", timeout=300)
        assert rc == 0, err
        outs.append(fcb.read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("transposed,k,stride,groups", [(False, 3, 1, 1), (False, 5, 2, 1), (False, 7, 1, 6),
                                                         (True, 5, 2, 1), (True, 3, 2, 1)])
def test_convolution_in_bands_gives_the_same_bits(monkeypatch, transposed, k, stride, groups):
    """Large frames are convolved in bands of rows (a bounded column buffer); the sums being exact, any
    banding gives the one-call result bit for bit, including the bands at the frame's edges."""
    torch.manual_seed(4)
    x = torch.randn(1, 6, 37, 23) * 5
    cout = 6 if groups > 1 else 8
    w = torch.randn(*((6, cout, k, k) if transposed else (cout, 6 // groups, k, k))) * 0.1
    b = torch.randn(cout)
    options = dict(stride=stride, padding=k // 2, groups=groups)
    if transposed:
        options["output_padding"] = stride - 1
    whole = exact.conv(x, w, b, transposed, **options)
    for band_bytes in (1, 8 * 6 * k * k * 23 * 3, 2**14):  # one row (transposed: one input row), a few, more
        monkeypatch.setattr(exact, "BAND_BYTES", band_bytes)
        banded = exact.conv(x, w, b, transposed, **options)
        assert banded.shape == whole.shape and torch.equal(banded, whole), band_bytes


GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def test_probability_tables_are_pinned():
    """The coding tables (SCALES, the Gaussian and the side parameters' Laplace tables) are part of the
    format: any change to how they are computed changes every stream. Their SHA-256 is fixed here."""
    import hashlib
    from flowcodec.entropy.coder import PARAM_RANGE
    from flowcodec.entropy.models import SCALES, gaussian_pmf, laplace_pmf
    from flowcodec.motion.decomposed import PARAM_SCALES
    digest = hashlib.sha256(SCALES.tobytes())
    for index in range(len(SCALES)):
        digest.update(gaussian_pmf(index).tobytes())
    for scale in sorted(set(PARAM_SCALES)):
        digest.update(laplace_pmf(float(scale), PARAM_RANGE).tobytes())
    assert digest.hexdigest() == "926415c0c6a57bbccdaa49f36b5fcf77f5467f1493cfe8dacc4c7769cde6a6b5"


def test_shipped_z_tables_are_pinned():
    """The hyper-latents' tables of a weights file (its factorized priors, through ``pmf_table``) are
    computed when the file is loaded: the shipped pyramid's three, by SHA-256."""
    import hashlib
    from flowcodec.codec.model import load, weights_path
    model, _ = load(weights_path("pyramid"))
    digest = hashlib.sha256()
    for prior in (model.inter.mv.prior, model.inter.res.prior, model.intra.codec.prior):
        digest.update(prior.pmf_table().tobytes())
    assert digest.hexdigest() == "61c5efa6864abb1a30c2daf2ae6ea4b2409bcd354530d500721a6e8b2b471616"


def test_temporal_step_must_keep_its_sums_exact():
    """temporal's pooling and upsampling by ``step`` are exact only for a power of two (dyadic divisor
    and interpolation weights): another step is refused when the module is built."""
    from flowcodec.motion import create
    with pytest.raises(TypeError, match="power of two"):
        create("temporal", step=3)
    assert create("temporal", step=8).hyper["step"] == 8


def test_every_module_has_a_golden_stream():
    assert set(available()) | {"auto", "pyramid-bitrate"} == set(json.load(open(os.path.join(GOLDEN, "recon_sha256.json"))))


GOLDEN_STREAMS = sorted(json.load(open(os.path.join(GOLDEN, "recon_sha256.json"))))


@pytest.mark.parametrize("name", GOLDEN_STREAMS)
def test_golden_streams_decode_to_their_recon(tmp_path, name):
    """Streams written at format 6's release (tests/golden: ``pan.y4m``, a 128×96 camera pan of 6 frames)
    decode to the encoder's reconstruction of that day, by SHA-256: on any machine, and with any later
    code that still claims format 6. ``M.fcb``: ``flowcodec encode tests/golden/pan.y4m -o
    tests/golden/M.fcb --motion M --intra-period 4 --intra learned --quality 4`` with the shipped weights
    (the same frames as format 5's streams of 2026-12-03: an integer quality codes as it did);
    ``pyramid-bitrate.fcb``: the same options with ``--bitrate 80`` instead of ``--quality``, its frames
    at qualities 4.375, 4.875, 3.875, 2.875, 1.875 and 1 (interpolated gains); ``auto.fcb`` (0.6.1): the
    same options with ``--motion auto --quality 6``, its P-frames coded by decomposed (frames 1 and
    2), pyramid (3) and temporal (5)."""
    import hashlib
    want = json.load(open(os.path.join(GOLDEN, "recon_sha256.json")))[name]
    out = tmp_path / "d.y4m"
    rc, _, err = cli_inproc("decode", os.path.join(GOLDEN, f"{name}.fcb"), "-o", out, "--threads", "2", "-q")
    assert rc == 0, err
    assert hashlib.sha256(out.read_bytes()).hexdigest() == want
