"""Bad input through the command line: every failure is ONE line on stderr starting with
'flowcodec: error:', exit status 1, no traceback, in bounded time, and a failed encode or decode
leaves no output file behind.

Most cases run in-process (``cli_inproc``: same main(), 60 s alarm, an escaping exception fails the
test); a representative subset also runs as a real subprocess (``run_cli``, timeout 60 s).
"""
import io
import os
import signal
import subprocess
import time
from dataclasses import replace

import pytest

from conftest import CLI, TIMEOUT_S, cli_inproc, make_y4m, run_cli
from flowcodec.codec.bitstream import _PREFIX, _RECORD, _U32, Reader, Writer, payload_pack, payload_unpack

TWO = ("motion", "residual")  # the sub-streams of a pyramid P-frame
from flowcodec.codec.options import QUALITIES

PREFIX = "flowcodec: error: "


def assert_error(rc, err, *words):
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    assert rc == 1, f"exit {rc}, stderr {err!r}"
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, f"expected one line, got {err!r}"
    assert lines[0].startswith(PREFIX), err
    for w in words:
        assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"


def no_leftovers(directory, *names):
    """None of ``names`` exists in ``directory`` and no hidden temporary file was left there."""
    listing = os.listdir(directory)
    for n in names:
        assert n not in listing
    assert not [f for f in listing if f.startswith(".")], listing


# --- a valid bitstream to damage ------------------------------------------------------------------

@pytest.fixture(scope="module")
def good(tmp_path_factory, weights):
    """A 32x32, 3-frame bitstream (I P P) and its layout: [(offset, type, payload length)]."""
    d = tmp_path_factory.mktemp("good")
    src = make_y4m(d / "c.y4m", 32, 32, 3, seed=11)
    fcb = str(d / "c.fcb")
    rc, _, err = cli_inproc("encode", src, "-o", fcb, "--weights", weights, "--threads", "1", "-q",
                            "--no-adaptive-intra")
    assert rc == 0, err
    data = open(fcb, "rb").read()
    header_len = _PREFIX.unpack_from(data)[2]
    pos = _PREFIX.size + header_len + _U32.size
    header_end, records = pos, []
    while pos < len(data):
        ftype, _, length, _ = _RECORD.unpack_from(data, pos)
        records.append((pos, ftype, length))
        pos += _RECORD.size + length
    assert pos == len(data) and [r[1] for r in records] == [0, 2, 2]
    return dict(data=data, src=src, header_end=header_end, records=records, dir=d)


def decode_bytes(tmp_path, weights, data, name="bad.fcb"):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.y4m"
    rc, stdout, err = cli_inproc("decode", path, "-o", out, "--weights", weights, "--threads", "1", "-q")
    return rc, stdout, err


def test_the_undamaged_file_decodes(tmp_path, weights, good):
    rc, _, err = decode_bytes(tmp_path, weights, good["data"])
    assert rc == 0, err


def _cut_points(good):
    (o1, _, n1), (o2, _, n2), (o3, _, n3) = good["records"]
    return {
        "in magic": 2,
        "in prefix": 5,
        "in header fields": 12,
        "before header crc": good["header_end"] - 2,
        "header only": good["header_end"],
        "in record header": o1 + 3,
        "in intra payload": o1 + _RECORD.size + n1 // 2,
        "between records": o2,
        "in inter payload": o2 + _RECORD.size + n2 // 2,
        "last byte missing": len(good["data"]) - 1,
    }


CUTS = ["in magic", "in prefix", "in header fields", "before header crc", "header only",
        "in record header", "in intra payload", "between records", "in inter payload",
        "last byte missing"]


@pytest.mark.parametrize("where", CUTS)
def test_truncated_bitstream(tmp_path, weights, good, where):
    cut = _cut_points(good)[where]
    rc, _, err = decode_bytes(tmp_path, weights, good["data"][:cut])
    assert_error(rc, err)
    assert "truncated" in err or (where == "in magic" and "magic" in err), err
    no_leftovers(tmp_path, "out.y4m")
    rc, out, err = cli_inproc("info", tmp_path / "bad.fcb")
    assert_error(rc, err)


def _flip_positions(good):
    (o1, _, n1), (o2, _, n2), (o3, _, n3) = good["records"]
    return {
        "magic": 1,
        "version": 4,
        "header length": 5,
        "width": 8,
        "model id": 30,
        "header crc": good["header_end"] - 1,
        "frame type": o1,
        "frame quality": o2 + 1,
        "payload length": o2 + 2,
        "record crc": o2 + 7,
        "intra payload": o1 + _RECORD.size + n1 - 3,
        "inter payload": o3 + _RECORD.size + n3 // 3,
        "last byte": len(good["data"]) - 1,
    }


@pytest.mark.parametrize("where", ["magic", "version", "header length", "width", "model id",
                                   "header crc", "frame type", "frame quality", "payload length", "record crc",
                                   "intra payload", "inter payload", "last byte"])
@pytest.mark.parametrize("bit", [0, 6])
def test_bit_flip(tmp_path, weights, good, where, bit):
    pos = _flip_positions(good)[where]
    data = bytearray(good["data"])
    data[pos] ^= 1 << bit
    rc, _, err = decode_bytes(tmp_path, weights, bytes(data))
    assert_error(rc, err)
    no_leftovers(tmp_path, "out.y4m")


def _rebuild(good, header_change=None, payload_change=None, quality=None):
    """Re-serialise the good bitstream with a changed header, payloads and/or frame qualities; valid
    CRCs."""
    r = Reader(io.BytesIO(good["data"]))
    header = replace(r.header, **(header_change or {}))
    frames = list(r)
    buf = io.BytesIO()
    w = Writer(buf, header)
    for i, (t, p, q) in enumerate(frames):
        w.write_frame(t, payload_change(i, t, p) if payload_change else p, quality(i, q) if quality else q)
    w.close()
    return buf.getvalue()


@pytest.mark.parametrize("model_id", ["motionless-v6", "pyramid-v5"])
def test_other_model_id(tmp_path, weights, good, model_id):
    rc, _, err = decode_bytes(tmp_path, weights, _rebuild(good, {"model_id": model_id}))
    assert_error(rc, err, model_id)


def test_other_weights_hash(tmp_path, weights, other_weights, good):
    fcb, out = tmp_path / "o.fcb", tmp_path / "o.y4m"
    rc, _, err = cli_inproc("encode", good["src"], "-o", fcb, "--weights", other_weights,
                            "--threads", "1", "-q")
    assert rc == 0, err
    rc, _, err = cli_inproc("decode", fcb, "-o", out, "--weights", weights, "--threads", "1", "-q")
    assert_error(rc, err, "different weights")
    assert not out.exists()
    rc, _, err = cli_inproc("decode", fcb, "-o", out, "--weights", other_weights, "--threads", "1", "-q")
    assert rc == 0, err  # ...and the right weights do decode it


def test_hash_field_alone_is_checked(tmp_path, weights, good):
    rc, _, err = decode_bytes(tmp_path, weights, _rebuild(good, {"weights_hash": bytes(8)}))
    assert_error(rc, err, "different weights")


def test_payload_of_another_frame_type(tmp_path, weights, good):
    """An inter payload in a learned-intra record: its sub-streams don't fit, the decoder says so."""
    data = good["data"]
    r = Reader(io.BytesIO(data))
    frames = list(r)
    buf = io.BytesIO()
    w = Writer(buf, r.header)
    w.write_frame(*frames[0])
    w.write_frame(1, *frames[1][1:])
    w.write_frame(*frames[2])
    w.close()
    rc, _, err = decode_bytes(tmp_path, weights, buf.getvalue())
    assert_error(rc, err)


def test_inter_frame_first(tmp_path, weights, good):
    r = Reader(io.BytesIO(good["data"]))
    frames = list(r)
    buf = io.BytesIO()
    w = Writer(buf, replace(r.header, frame_count=1))
    w.write_frame(*frames[1])
    w.close()
    rc, _, err = decode_bytes(tmp_path, weights, buf.getvalue())
    assert_error(rc, err, "intra")


@pytest.mark.parametrize("frame,quality", [(0, QUALITIES + 1 / 16), (1, 255 / 16)])
def test_frame_quality_beyond_the_model(tmp_path, weights, good, frame, quality):
    """A record whose quality (valid CRC) is above the model's levels: one line naming the frame."""
    data = _rebuild(good, quality=lambda i, q: quality if i == frame else q)
    rc, _, err = decode_bytes(tmp_path, weights, data)
    assert_error(rc, err, f"frame {frame}: quality {quality} is outside this model's range (1..{QUALITIES})")


@pytest.mark.parametrize("damage,words", [
    ("garbage intra", ["frame 0", "HEVC"]),
    ("garbage inter", ["frame 1", "motion stream is not the coding of the symbols it holds"]),
    ("empty inter", ["frame 1", "no sub-stream count"]),
    ("short inter", ["frame 1", "motion stream of 0 bytes is too short for the frame size"]),
    ("odd inter stream", ["frame 1", "not a multiple of 4"]),
    ("swapped streams", ["frame 1", "payload holds the sub-streams residual, motion; this model codes "
                                    "motion, residual"]),
    ("another module's stream", ["frame 1", "holds the sub-streams motion, residual, global"])])
def test_hostile_payload_with_valid_crc(tmp_path, weights, good, damage, words):
    """A payload that passes the container's CRC but is not what the encoder wrote: range decoding
    accepts any bits, so the decoder must tell by itself (too short for the frame, or not exactly the
    coding of the symbols it decodes to)."""
    def change(i, t, p):
        if damage == "garbage intra" and i == 0:
            return bytes((b * 7 + 13) % 256 for b in p)
        if i == 1:
            if damage == "garbage inter":
                return payload_pack(TWO, (bytes(range(40)), bytes(range(200, 256)) * 4))
            if damage == "empty inter":
                return b""
            if damage == "short inter":
                return payload_pack(TWO, (b"", b""))
            if damage == "odd inter stream":
                return payload_pack(TWO, (b"abc", b"defgh"))
            if damage == "swapped streams":
                return payload_pack(TWO[::-1], payload_unpack(p)[1][::-1])
            if damage == "another module's stream":  # a pyramid frame cannot hold decomposed's global motion
                return payload_pack(TWO + ("global",), payload_unpack(p)[1] + [b"\0" * 4])
        return p
    rc, _, err = decode_bytes(tmp_path, weights, _rebuild(good, payload_change=change))
    assert_error(rc, err, *words)
    no_leftovers(tmp_path, "out.y4m")


def test_pixel_limit(tmp_path, weights, good):
    """Frames over --max-pixels (default 8K UHD) are refused before anything is decoded; the limit is
    the user's to raise or lower."""
    rc, _, err = decode_bytes(tmp_path, weights, _rebuild(good, {"width": 7681, "height": 4320}))
    assert_error(rc, err, "7681x4320", "over this decoder's limit of 33177600 pixels", "--max-pixels")
    path, out = tmp_path / "c.fcb", tmp_path / "c.y4m"
    path.write_bytes(good["data"])
    for limit, rc in (("1023", 1), ("1024", 0)):  # a 32x32 stream
        args = ["decode", path, "-o", out, "--weights", weights, "--threads", "1", "-q", "--max-pixels", limit]
        got, _, err = cli_inproc(*args)
        assert got == rc, err
    assert_error(*cli_inproc("analyze", path, "--out", tmp_path / "a", "--weights", weights,
                             "--max-pixels", "1000")[::2], "limit of 1000 pixels")


def test_wrong_magic(tmp_path, weights, good):
    rc, _, err = decode_bytes(tmp_path, weights, b"RIFF" + good["data"][4:])
    assert_error(rc, err, "magic")


def test_y4m_is_not_a_bitstream(tmp_path, weights, good):
    rc, _, err = decode_bytes(tmp_path, weights, open(good["src"], "rb").read())
    assert_error(rc, err, "not a flowcodec bitstream")


def test_empty_bitstream(tmp_path, weights):
    rc, _, err = decode_bytes(tmp_path, weights, b"")
    assert_error(rc, err, "empty")


@pytest.mark.parametrize("cmd", ["decode", "info", "encode"])
def test_missing_input(tmp_path, weights, cmd):
    args = [cmd, tmp_path / ("nothing.fcb" if cmd != "encode" else "nothing.y4m")]
    if cmd != "info":
        args += ["-o", tmp_path / "out", "--weights", weights, "--threads", "1", "-q"]
    rc, _, err = cli_inproc(*args)
    assert_error(rc, err, "nothing.")
    no_leftovers(tmp_path, "out")


@pytest.mark.parametrize("kind", ["not safetensors", "other tensors", "no metadata"])
def test_malformed_weights(tmp_path, good, kind):
    import json
    import torch
    from safetensors.torch import save_file
    path = str(tmp_path / "w.safetensors")
    if kind == "not safetensors":
        open(path, "wb").write(b"not a weights file " * 8)
    else:
        meta = {"config": json.dumps({"motion": "pyramid", "levels": 6})} if kind == "other tensors" else None
        save_file({"x": torch.zeros(2)}, path, metadata=meta)
    rc, _, err = cli_inproc("encode", good["src"], "-o", tmp_path / "x.fcb", "--weights", path,
                            "--threads", "1", "-q")
    assert_error(rc, err, "w.safetensors")
    no_leftovers(tmp_path, "x.fcb")


def test_missing_weights(tmp_path, good):
    rc, _, err = cli_inproc("encode", good["src"], "-o", tmp_path / "x.fcb", "--weights",
                            tmp_path / "none.safetensors", "-q")
    assert_error(rc, err, "none.safetensors")
    no_leftovers(tmp_path, "x.fcb")


# --- bad video input ------------------------------------------------------------------------------

def _y4m_body(w=32, h=32):
    return b"FRAME\n" + bytes(w * h * 3 // 2)


@pytest.mark.parametrize("case,content,words", [
    ("bad magic", b"YUV4MPEG3 W32 H32 F25:1 C420jpeg\n" + _y4m_body(), ["y4m"]),
    ("W0", b"YUV4MPEG2 W0 H32 F25:1 C420jpeg\n" + _y4m_body(), ["width"]),
    ("W100000", b"YUV4MPEG2 W100000 H32 F25:1 C420jpeg\n" + _y4m_body(), ["100000"]),
    ("no height", b"YUV4MPEG2 W32 F25:1 C420jpeg\n" + _y4m_body(), ["H"]),
    ("C444", b"YUV4MPEG2 W32 H32 F25:1 C444\n" + bytes(32 * 32 * 3), ["444"]),
    ("F0:1", b"YUV4MPEG2 W32 H32 F0:1 C420jpeg\n" + _y4m_body(), ["frame rate"]),
    ("truncated frame", b"YUV4MPEG2 W32 H32 F25:1 C420jpeg\n" + _y4m_body() * 2 + _y4m_body()[:-100],
     ["truncated frame 2"]),
    ("bad frame marker", b"YUV4MPEG2 W32 H32 F25:1 C420jpeg\n" + _y4m_body() + b"FRAMX\n",
     ["frame 1"]),
    ("empty", b"", ["empty"]),
])
def test_malformed_y4m(tmp_path, weights, case, content, words):
    src = tmp_path / "in.y4m"
    src.write_bytes(content)
    rc, _, err = cli_inproc("encode", src, "-o", tmp_path / "out.fcb", "--recon", tmp_path / "rec.y4m",
                            "--weights", weights, "--threads", "1", "-q")
    assert_error(rc, err, *words)
    no_leftovers(tmp_path, "out.fcb", "rec.y4m")  # atomic: frames coded before the error vanish


def test_raw_yuv_errors(tmp_path, weights):
    yuv = tmp_path / "in.yuv"
    yuv.write_bytes(bytes(32 * 32 * 3 // 2 * 2 + 5))
    base = ["encode", yuv, "-o", tmp_path / "out.fcb", "--weights", weights, "-q"]
    assert_error(*cli_inproc(*base)[::2], "--size")
    assert_error(*cli_inproc(*base, "--size", "32x32")[::2], "whole number")
    assert_error(*cli_inproc(*base, "--size", "32by32")[::2], "size")
    assert_error(*cli_inproc(*base, "--size", "0x32")[::2], "size")
    no_leftovers(tmp_path, "out.fcb")


@pytest.mark.parametrize("case", ["header-only y4m", "empty yuv", "--frames 0"])
def test_no_frames_to_encode(tmp_path, weights, good, case):
    """An input without frames is an error, not a 0-frame stream with "PSNR-YUV nan dB"."""
    src, extra = good["src"], []
    if case == "header-only y4m":
        src = tmp_path / "in.y4m"
        src.write_bytes(b"YUV4MPEG2 W32 H32 F25:1 C420jpeg\n")
    elif case == "empty yuv":
        src = tmp_path / "in.yuv"
        src.write_bytes(b"")
        extra = ["--size", "32x32"]
    else:
        extra = ["--frames", "0"]
    rc, out, err = cli_inproc("encode", src, "-o", tmp_path / "out.fcb", "--recon", tmp_path / "rec.y4m",
                              "--weights", weights, "--threads", "1", "-q", *extra)
    assert_error(rc, err, "nothing to encode: no frames in", os.path.basename(src))
    assert "nan" not in err + out
    no_leftovers(tmp_path, "out.fcb", "rec.y4m")


# --- bad options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("opt,word", [(["--quality", "0"], "quality"), (["--quality", str(QUALITIES + 1)], "quality"),
                                      (["--quality", "-1"], "quality"), (["--quality", "nan"], "quality"),
                                      (["--bitrate", "0"], "bit rate"), (["--bitrate", "inf"], "bit rate"),
                                      (["--intra-period", "0"], "intra-period"),
                                      (["--intra-period", "65536"], "intra-period"),
                                      (["--fps", "0"], "frame rate"), (["--fps", "x"], "frame rate"),
                                      (["--frames", "-1"], "frame count")])
def test_bad_encode_options(tmp_path, weights, good, opt, word):
    rc, _, err = cli_inproc("encode", good["src"], "-o", tmp_path / "out.fcb", "--weights", weights,
                            "--threads", "1", "-q", *opt)
    assert_error(rc, err, word)
    no_leftovers(tmp_path, "out.fcb")


def test_unknown_motion_without_weights(tmp_path, good):
    rc, _, err = cli_inproc("encode", good["src"], "-o", tmp_path / "out.fcb", "--motion", "nosuch",
                            "-q")
    assert_error(rc, err, "nosuch")
    no_leftovers(tmp_path, "out.fcb")


def test_unknown_motion_with_weights(tmp_path, weights, good):
    rc, _, err = cli_inproc("encode", good["src"], "-o", tmp_path / "out.fcb", "--motion", "nosuch",
                            "--weights", weights, "--threads", "1", "-q")
    assert_error(rc, err, "nosuch")
    no_leftovers(tmp_path, "out.fcb")


@pytest.mark.parametrize("which", ["output", "recon"])
def test_encode_into_missing_directory(tmp_path, weights, good, which):
    out = tmp_path / ("nodir" if which == "output" else "") / "out.fcb"
    rec = tmp_path / ("nodir" if which == "recon" else "") / "rec.y4m"
    rc, _, err = cli_inproc("encode", good["src"], "-o", out, "--recon", rec, "--weights", weights,
                            "--threads", "1", "-q")
    assert_error(rc, err, "nodir")
    no_leftovers(tmp_path, "out.fcb", "rec.y4m")


def test_decode_into_missing_directory(tmp_path, weights, good):
    fcb = tmp_path / "c.fcb"
    fcb.write_bytes(good["data"])
    rc, _, err = cli_inproc("decode", fcb, "-o", tmp_path / "nodir" / "d.y4m", "--weights", weights,
                            "-q")
    assert_error(rc, err, "nodir")


def test_failed_decode_keeps_existing_output(tmp_path, weights, good):
    """Atomic replace: a decode that fails midway leaves a previous file at -o untouched."""
    out = tmp_path / "out.y4m"
    out.write_bytes(b"previous")
    rc, _, err = decode_bytes(tmp_path, weights, good["data"][:-1])
    assert_error(rc, err, "truncated")
    assert out.read_bytes() == b"previous"


# --- the same through real processes --------------------------------------------------------------

def test_subprocess_errors(tmp_path, weights, other_weights, good):
    """A few of the above as a user runs them: exit 1, one line, no traceback, output absent."""
    data = good["data"]
    o2 = good["records"][1][0]
    flipped = bytearray(data)
    flipped[o2 + _RECORD.size + 5] ^= 0x10
    (tmp_path / "flip.fcb").write_bytes(bytes(flipped))
    (tmp_path / "cut.y4m").write_bytes(open(good["src"], "rb").read()[:-7])
    cases = [
        (["decode", tmp_path / "flip.fcb", "-o", tmp_path / "out.y4m"], ["CRC"]),
        (["encode", tmp_path / "cut.y4m", "-o", tmp_path / "out.fcb", "--quality", "3"], ["truncated"]),
    ]
    for args, words in cases:
        p = run_cli(*args, "--weights", weights, "--threads", "1")
        assert_error(p.returncode, p.stderr, *words)
        assert p.stdout == b""
    no_leftovers(tmp_path, "out.y4m", "out.fcb")
    # an input without frames writes nothing to stdout, not even a header
    p = run_cli("encode", "-", "-o", "-", "--weights", weights, "--threads", "1",
                input=b"YUV4MPEG2 W32 H32 F25:1 C420jpeg\n")
    assert_error(p.returncode, p.stderr, "nothing to encode")
    assert p.stdout == b""
    # the bitstream on stdin, weights of another seed
    p = run_cli("decode", "-", "-o", "-", "--weights", other_weights, "--threads", "1", input=data)
    assert_error(p.returncode, p.stderr, "different weights")
    assert p.stdout == b""


def _hidden(directory):
    return [f for f in os.listdir(directory) if f.startswith(".")]


def test_killed_runs_leave_no_temporary_file_to_the_next(tmp_path, weights):
    """SIGKILL leaves the hidden temporary file (nothing can remove it then); the next run on the same
    output removes it. SIGTERM stops a run cleanly: exit status 143, one line, no temporary file."""
    src = make_y4m(tmp_path / "c.y4m", 192, 128, 40, seed=4)
    args = [*CLI, "encode", src, "-o", str(tmp_path / "out.fcb"), "--weights", weights, "--threads", "1", "-q"]

    def started():
        """An encode that has opened its temporary output."""
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + TIMEOUT_S
        while not [f for f in _hidden(tmp_path) if f".{proc.pid}." in f]:
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
            time.sleep(0.05)
        return proc

    proc = started()
    proc.kill()
    proc.wait()
    stale = _hidden(tmp_path)
    assert len(stale) == 1 and stale[0].startswith(f".out.fcb.{proc.pid}.") and stale[0].endswith(".tmp")
    proc = started()
    assert stale[0] not in _hidden(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 143, err
    assert err.decode().strip() == "flowcodec: terminated"
    assert _hidden(tmp_path) == [] and not (tmp_path / "out.fcb").exists()

