"""Tests of the ffmpeg anchors on a small synthetic y4m clip."""
import dataclasses

import numpy as np
import pytest

from flowcodec.errors import FlowcodecError
from flowcodec.eval.anchors import ANCHORS, run_anchor

WIDTH, HEIGHT, FRAMES = 64, 64, 5


@pytest.fixture
def clip(tmp_path):
    """A 64x64, 5-frame y4m of a diagonal gradient moving 2 pixels per frame."""
    path = tmp_path / "moving.y4m"
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F25:1 Ip A1:1 C420jpeg\n".encode())
        for t in range(FRAMES):
            y = (40 + 2 * ((xx + 2 * t) % 64) + yy).astype(np.uint8)
            u = np.full((HEIGHT // 2, WIDTH // 2), 100 + 4 * t, np.uint8)
            v = (120 + yy[::2, ::2]).astype(np.uint8)
            f.write(b"FRAME\n" + y.tobytes() + u.tobytes() + v.tobytes())
    return path


def test_x264_anchor_gives_sane_numbers(clip, tmp_path):
    r = run_anchor("x264-medium", clip, 27, workdir=tmp_path / "work")
    assert len(r["frames"]) == FRAMES
    assert r["bpp"] == pytest.approx(8 * r["bytes"] / (WIDTH * HEIGHT * FRAMES))
    assert 0 < r["bpp"] < 2
    assert 33 < r["psnr_yuv"] < 60
    assert r["psnr_yuv"] == pytest.approx(np.mean([p["yuv"] for p in r["frames"]]))
    assert r["enc_seconds"] > 0 and r["dec_seconds"] > 0
    assert (tmp_path / "work" / "x264-medium_qp27.bin").stat().st_size == r["bytes"]


def test_frame_limit_and_quality_order(clip):
    fine = run_anchor("x264-medium", clip, 22, frames=3)
    coarse = run_anchor("x264-medium", clip, 42, frames=3)
    assert len(fine["frames"]) == len(coarse["frames"]) == 3
    assert fine["bytes"] > coarse["bytes"] and fine["psnr_yuv"] > coarse["psnr_yuv"]


def test_missing_encoder_is_reported(clip, monkeypatch):
    fake = dataclasses.replace(ANCHORS["x264-medium"], encoder="libnotthere")
    monkeypatch.setitem(ANCHORS, "fake", fake)
    with pytest.raises(FlowcodecError, match="needs encoder libnotthere, which this ffmpeg build lacks"):
        run_anchor("fake", clip, 32)


def test_unknown_anchor_is_reported(clip):
    with pytest.raises(FlowcodecError, match="unknown anchor"):
        run_anchor("x266-ultra", clip, 32)
