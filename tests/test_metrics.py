"""Tests of PSNR, MS-SSIM on RGB and the Bjontegaard metrics."""
import math

import numpy as np
import pytest

from flowcodec.eval.metrics import PSNR_CAP, bd_psnr, bd_rate, msssim_rgb, psnr, psnr_yuv, yuv420_to_rgb

RATES = [0.03, 0.05, 0.1, 0.19, 0.38]
PSNRS = [30.8, 33.4, 36.5, 39.5, 42.8]


def frame(width, height, seed=0):
    """A random 4:2:0 frame."""
    rng = np.random.default_rng(seed)
    ch, cw = (height + 1) // 2, (width + 1) // 2
    return (rng.integers(16, 236, (height, width), dtype=np.uint8),
            rng.integers(16, 241, (ch, cw), dtype=np.uint8), rng.integers(16, 241, (ch, cw), dtype=np.uint8))


def test_psnr_of_constant_error():
    a = np.full((8, 8), 100, np.uint8)
    assert psnr(a, a + 2) == pytest.approx(20 * math.log10(255 / 2))


def test_psnr_identical_is_capped():
    a = np.arange(64, dtype=np.uint8).reshape(8, 8)
    assert psnr(a, a) == PSNR_CAP


def test_psnr_yuv_weights():
    src = frame(16, 16)
    dec = (src[0] + 1, src[1] + 2, src[2] + 4)  # no wrap-around: planes are <= 240
    p = psnr_yuv(src, dec)
    assert p["y"] == pytest.approx(20 * math.log10(255))
    assert p["u"] == pytest.approx(20 * math.log10(255 / 2))
    assert p["yuv"] == pytest.approx((6 * p["y"] + p["u"] + p["v"]) / 8)


def test_bd_rate_same_curve_is_zero():
    assert abs(bd_rate(RATES, PSNRS, RATES, PSNRS)) < 1e-9
    assert abs(bd_psnr(RATES, PSNRS, RATES, PSNRS)) < 1e-9


def test_bd_rate_scaled_rates():
    assert bd_rate(RATES, PSNRS, [r * 1.1 for r in RATES], PSNRS) == pytest.approx(10.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, [r * 0.9 for r in RATES], PSNRS) == pytest.approx(-10.0, abs=1e-6)


def test_bd_rate_ignores_point_order():
    order = [3, 0, 4, 2, 1]
    shuffled = [RATES[i] * 0.9 for i in order], [PSNRS[i] for i in order]
    assert bd_rate(RATES, PSNRS, *shuffled) == pytest.approx(-10.0, abs=1e-6)


def test_bd_psnr_shifted_quality():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 0.5 for p in PSNRS]) == pytest.approx(0.5, abs=1e-9)


def test_bd_needs_four_points():
    with pytest.raises(ValueError):
        bd_rate(RATES[:3], PSNRS[:3], RATES, PSNRS)
    with pytest.raises(ValueError):
        bd_psnr(RATES, PSNRS, RATES[:3], PSNRS[:3])


def test_bd_rate_without_overlap_is_nan():
    assert math.isnan(bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS]))


def test_rgb_conversion_is_bt709_limited_range():
    def rgb(y, u, v):
        planes = np.full((2, 2), y, np.uint8), np.full((1, 1), u, np.uint8), np.full((1, 1), v, np.uint8)
        return yuv420_to_rgb(planes)[:, 0, 0]
    assert np.allclose(rgb(235, 128, 128), 1.0) and np.allclose(rgb(16, 128, 128), 0.0)
    # BT.709 red: Y' = 16 + 219 * 0.2126 = 62.6, Cb = 128 - 112 * 0.2126 / 0.9278 = 102.3, Cr = 240
    assert np.allclose(rgb(63, 102, 240), [1.0, 0.0, 0.0], atol=0.01)


def test_msssim_identical_and_monotone_in_noise():
    src = frame(176, 144)
    assert msssim_rgb(src, src) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(1)
    scores = []
    for sigma in (2, 8, 20):
        noisy = tuple(np.clip(p + rng.normal(0, sigma, p.shape), 0, 255).astype(np.uint8) for p in src)
        scores.append(msssim_rgb(src, noisy))
    assert 1.0 > scores[0] > scores[1] > scores[2]


def test_msssim_too_small_is_nan():
    assert math.isnan(msssim_rgb(frame(96, 96), frame(96, 96)))
