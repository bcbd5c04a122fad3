"""Tests for flowcodec.io: y4m/raw/ffmpeg reading, y4m writing, robustness, atomic output."""

import hashlib
import io
import os
import subprocess
import sys
import tracemalloc

import imageio_ffmpeg
import numpy as np
import pytest

from flowcodec.errors import FlowcodecError, VideoError
from flowcodec.io import (VideoInfo, Y4MReader, Y4MWriter, atomic_output, open_video,
                          parse_fps, parse_size, to_8bit)


def random_frames(info, n, seed=0):
    rng = np.random.default_rng(seed)
    hi = (1 << info.bitdepth) - 1
    ch, cw = info.chroma_shape
    shapes = [(info.height, info.width), (ch, cw), (ch, cw)]
    return [tuple(rng.integers(0, hi + 1, s).astype(info.dtype) for s in shapes)
            for _ in range(n)]


def write_y4m(path, info, frames):
    with Y4MWriter(path, info) as w:
        for f in frames:
            w.write(f)


def assert_frames_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        for gp, wp in zip(g, w):
            assert gp.dtype == wp.dtype and gp.shape == wp.shape
            np.testing.assert_array_equal(gp, wp)


@pytest.mark.parametrize("n", [1, 4])
def test_y4m_round_trip_odd_size(tmp_path, n):
    info = VideoInfo(66, 38, 30000, 1001)
    frames = random_frames(info, n)
    path = tmp_path / "a.y4m"
    write_y4m(path, info, frames)
    assert path.read_bytes().startswith(b"YUV4MPEG2 W66 H38 F30000:1001 Ip A1:1 C420jpeg\n")
    with open_video(path) as r:
        assert r.info == info
        got = list(r)
    assert got[0][1].shape == (19, 33)
    assert_frames_equal(got, frames)


def test_y4m_zero_frames_and_header_tokens():
    data = b"YUV4MPEG2 W4 H2 F25:1 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2\n"
    r = Y4MReader(io.BytesIO(data))
    assert r.info == VideoInfo(4, 2, 25, 1)
    assert list(r) == []


def test_frames_limit(tmp_path):
    info = VideoInfo(8, 6, 25, 1)
    frames = random_frames(info, 5)
    write_y4m(tmp_path / "a.y4m", info, frames)
    with open_video(tmp_path / "a.y4m", frames=2, fps="50/2") as r:
        assert (r.info.fps_num, r.info.fps_den) == (25, 1)
        assert_frames_equal(list(r), frames[:2])


def test_10bit_read_and_to_8bit():
    y = np.array([[0, 1, 2, 3], [511, 512, 1023, 1020]], "<u2")
    u, v = np.array([[512, 6]], "<u2"), np.array([[9, 1023]], "<u2")
    data = (b"YUV4MPEG2 W4 H2 F30:1 C420p10\nFRAME\n"
            + y.tobytes() + u.tobytes() + v.tobytes())
    r = Y4MReader(io.BytesIO(data))
    assert r.info.bitdepth == 10 and r.info.chroma == "420"
    (frame,) = list(r)
    assert all(p.dtype == np.uint16 for p in frame)
    np.testing.assert_array_equal(frame[0], y)
    y8, u8, v8 = to_8bit(frame, 10)
    assert y8.dtype == np.uint8
    np.testing.assert_array_equal(y8, [[0, 0, 1, 1], [128, 128, 255, 255]])
    np.testing.assert_array_equal(u8, [[128, 2]])
    np.testing.assert_array_equal(v8, [[2, 255]])
    assert to_8bit(frame, 8) is frame


def test_10bit_round_trip():
    info = VideoInfo(6, 4, 24, 1, bitdepth=10)
    frames = random_frames(info, 2)
    buf = io.BytesIO()
    write_y4m(buf, info, frames)
    assert b" C420p10\n" in buf.getvalue()
    r = Y4MReader(io.BytesIO(buf.getvalue()))
    assert r.info == info
    assert_frames_equal(list(r), frames)


def test_mono_read_gives_mid_chroma():
    y = np.arange(15, dtype=np.uint8).reshape(3, 5)
    r = Y4MReader(io.BytesIO(b"YUV4MPEG2 W5 H3 F25:1 Cmono\nFRAME\n" + y.tobytes()))
    assert r.info.chroma == "mono"
    ((fy, fu, fv),) = list(r)
    np.testing.assert_array_equal(fy, y)
    assert fu.shape == fv.shape == (2, 3)
    assert (fu == 128).all() and (fv == 128).all() and fu.dtype == np.uint8


READ_STDIN = ("import hashlib, sys\n"
              "from flowcodec.io import open_video\n"
              "h = hashlib.sha256()\n"
              "with open_video('-') as r:\n"
              "    n = 0\n"
              "    for f in r:\n"
              "        n += 1\n"
              "        for p in f: h.update(p.tobytes())\n"
              "print(r.info.width, r.info.height, n, h.hexdigest())\n")


def test_stdin():
    info = VideoInfo(10, 6, 25, 1)
    frames = random_frames(info, 3)
    buf = io.BytesIO()
    write_y4m(buf, info, frames)
    out = subprocess.run([sys.executable, "-c", READ_STDIN], input=buf.getvalue(),
                         capture_output=True, timeout=60, check=True).stdout.split()
    h = hashlib.sha256()
    for f in frames:
        for p in f:
            h.update(p.tobytes())
    assert out == [b"10", b"6", b"3", h.hexdigest().encode()]


def test_stdin_truncated_does_not_hang():
    data = b"YUV4MPEG2 W10 H6 F25:1\nFRAME\n" + bytes(50)
    res = subprocess.run([sys.executable, "-c", READ_STDIN], input=data,
                         capture_output=True, timeout=60)
    assert res.returncode != 0
    assert b"truncated frame 0: expected 90 bytes, got 50" in res.stderr


def test_raw_yuv(tmp_path):
    info = VideoInfo(66, 38, 25, 1)
    frames = random_frames(info, 3)
    path = tmp_path / "a.yuv"
    path.write_bytes(b"".join(p.tobytes() for f in frames for p in f))
    with open_video(path, size="66x38") as r:
        assert r.info == info
        assert_frames_equal(list(r), frames)
    with open_video(path, size=(66, 38), fps=29.97) as r:
        assert (r.info.fps_num, r.info.fps_den) == (2997, 100)
    with pytest.raises(VideoError, match="needs --size"):
        open_video(path)
    with pytest.raises(VideoError, match="not a whole number"):
        open_video(path, size=(64, 38))


def test_parse_helpers():
    assert parse_size("176x144") == (176, 144)
    for bad in ["176", "x144", "0x144", "-1x5", "176x144x3", "100000x10"]:
        with pytest.raises(VideoError):
            parse_size(bad)
    assert parse_fps("30000/1001") == (30000, 1001)
    assert parse_fps(25) == (25, 1)
    for bad in ["abc", "1/0", 0, -5, float("inf")]:
        with pytest.raises(VideoError):
            parse_fps(bad)


def ffmpeg(*args):
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", *args],
                   check=True, timeout=120)


def test_ffmpeg_lossless_mkv(tmp_path):
    info = VideoInfo(66, 38, 25, 1)
    frames = random_frames(info, 4)
    src, mkv = tmp_path / "src.y4m", tmp_path / "a.mkv"
    write_y4m(src, info, frames)
    ffmpeg("-i", str(src), "-c:v", "ffv1", str(mkv))
    with open_video(mkv) as r:
        assert (r.info.width, r.info.height, r.info.fps_num, r.info.fps_den) == (66, 38, 25, 1)
        assert_frames_equal(list(r), frames)
    with open_video(mkv, frames=2) as r:
        assert_frames_equal(list(r), frames[:2])
    r = open_video(mkv)
    next(r)
    r.close()  # stops ffmpeg mid-stream
    assert r._proc.returncode is not None


def test_ffmpeg_errors(tmp_path):
    with pytest.raises(VideoError, match=r"cannot open '.*nope\.mp4': no such file"):
        open_video(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(VideoError) as e:
        open_video(bad)
    msg = str(e.value)
    assert msg.startswith(f"cannot decode '{bad}': ") and "\n" not in msg and "@ 0x" not in msg


MALFORMED = {
    "bad magic": (b"RIFF1234 W4 H2\n", "not a y4m stream"),
    "empty": (b"", "empty input"),
    "W=0": (b"YUV4MPEG2 W0 H2 F25:1\n", "bad y4m width 'W0'"),
    "W negative": (b"YUV4MPEG2 W-4 H2 F25:1\n", "bad y4m width"),
    "W missing": (b"YUV4MPEG2 H2 F25:1\n", "lacks W"),
    "W=100000": (b"YUV4MPEG2 W100000 H2 F25:1\n", "absurd frame size 100000x2"),
    "too many pixels": (b"YUV4MPEG2 W16384 H16384\n", "absurd frame size"),
    "bad F": (b"YUV4MPEG2 W4 H2 F25\n", "bad y4m frame rate 'F25'"),
    "F zero den": (b"YUV4MPEG2 W4 H2 F25:0\n", "bad y4m frame rate"),
    "C444": (b"YUV4MPEG2 W4 H2 F25:1 C444\n",
             "unsupported y4m chroma format 'C444' (flowcodec codes 4:2:0)"),
    "C422": (b"YUV4MPEG2 W4 H2 F25:1 C422\n", "unsupported y4m chroma format 'C422'"),
    "no newline": (b"YUV4MPEG2 W4 H2 " + b"X" * 5000, "longer than 4096 bytes"),
    "truncated header": (b"YUV4MPEG2 W4 H2", "truncated y4m header"),
    "truncated frame": (b"YUV4MPEG2 W4 H2\nFRAME\n" + bytes(12) + b"FRAME\n" + bytes(5),
                        "truncated frame 1: expected 12 bytes, got 5"),
    "FRAMX": (b"YUV4MPEG2 W4 H2\nFRAMX\n" + bytes(12), "frame 0: expected 'FRAME' marker"),
    "cut marker": (b"YUV4MPEG2 W4 H2\nFRAME\n" + bytes(12) + b"FRA", "truncated frame 1"),
    "endless FRAME line": (b"YUV4MPEG2 W4 H2\nFRAME" + b" " * 5000, "longer than 4096"),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_y4m(tmp_path, name):
    data, expected = MALFORMED[name]
    path = tmp_path / "bad.y4m"
    path.write_bytes(data)
    with pytest.raises(VideoError) as e:
        with open_video(path) as r:
            list(r)
    msg = str(e.value)
    assert expected in msg
    assert "\n" not in msg and len(msg) < 120


def test_long_y4m_is_streamed(tmp_path):
    info = VideoInfo(64, 64, 25, 1)
    (frame,) = random_frames(info, 1)
    path = tmp_path / "long.y4m"
    write_y4m(path, info, [frame] * 300)
    with open_video(path) as r:
        tracemalloc.start()
        n = 0
        for f in r:
            n += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert n == 300
    # ~2 live frames plus CPython's tuple free list (64 B per frame tuple seen so
    # far, capped at 2000); keeping all 300 frames would need ~1.8 MB.
    assert peak < 10 * info.frame_bytes


def test_atomic_output(tmp_path):
    path = tmp_path / "out.bin"
    with atomic_output(path) as f:
        f.write(b"hello world")
        f.seek(0)
        f.write(b"J")
        assert not path.exists()
    assert path.read_bytes() == b"Jello world"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask

    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"Jello world"  # old content untouched

    fresh = tmp_path / "fresh.bin"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(fresh) as f:
            raise KeyboardInterrupt
    assert not fresh.exists()
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]

    with pytest.raises(FlowcodecError, match="cannot write"):
        with atomic_output(tmp_path / "no" / "dir.bin"):
            pass


def test_atomic_output_removes_stale_temporary_files(tmp_path):
    """The temporary file of a killed writer goes when the next run writes the same output; those of
    a live writer, of another output, and other names stay."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid no process has any more
    names = {f".out.bin.{gone.pid}.k3j_x9a2.tmp": False, f".out.bin.{os.getpid()}.k3j_x9a2.tmp": True,
             f".other.bin.{gone.pid}.k3j_x9a2.tmp": True, f".out.bin.7.{gone.pid}.k3j_x9a2.tmp": True,
             f".out.bin.{gone.pid}.k3j_x9a2": True}  # name: still there afterwards
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
    with atomic_output(tmp_path / "out.bin") as f:
        f.write(b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(["out.bin"] + [n for n, kept in names.items() if kept])

