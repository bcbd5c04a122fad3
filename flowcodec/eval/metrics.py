"""Quality and rate-distortion metrics of EVAL.md: PSNR-YUV (6:1:1), MS-SSIM on RGB, BD-rate, BD-PSNR.

Frames are (y, u, v) tuples of uint8 arrays in 4:2:0 layout.
"""
import math

import numpy as np
import torch
from pytorch_msssim import ms_ssim
from scipy.interpolate import PchipInterpolator

PSNR_CAP = 100.0

# BT.709 luma coefficients; R, G, B follow from Y' = KR R + KG G + KB B and the Pb/Pr definitions.
KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB


def psnr(a, b, peak=255.0):
    """PSNR in dB between two arrays; identical arrays give PSNR_CAP instead of infinity."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    if mse == 0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def psnr_yuv(src_frame, dec_frame):
    """Per-plane PSNR of a decoded frame and the EVAL.md weighted mean yuv = (6 y + u + v) / 8."""
    y, u, v = (psnr(s, d) for s, d in zip(src_frame, dec_frame))
    return {"y": y, "u": u, "v": v, "yuv": (6 * y + u + v) / 8}


def _upsample(plane, height, width):
    """Nearest-neighbour 2x upsampling of a chroma plane, cropped to the luma size."""
    return np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)[:height, :width]


def yuv420_to_rgb(frame):
    """Convert a 4:2:0 frame to float RGB in [0, 1], BT.709 limited range, shape (3, H, W).

    Chroma is upsampled by nearest neighbour (each chroma sample covers its 2x2 luma block): simple,
    exact for the sample grid, and the same for source and decoded frame, so it does not bias the metric.
    """
    y, u, v = frame
    h, w = y.shape
    luma = (y.astype(np.float64) - 16.0) / 219.0
    pb = (_upsample(u, h, w).astype(np.float64) - 128.0) / 224.0
    pr = (_upsample(v, h, w).astype(np.float64) - 128.0) / 224.0
    r = luma + 2 * (1 - KR) * pr
    b = luma + 2 * (1 - KB) * pb
    g = luma - (2 * KB * (1 - KB) * pb + 2 * KR * (1 - KR) * pr) / KG
    return np.clip(np.stack([r, g, b]), 0.0, 1.0)


def msssim_rgb(src_frame, dec_frame):
    """MS-SSIM (5 scales, data range 1) of two 4:2:0 frames converted to RGB, averaged over channels.

    pytorch_msssim needs the smaller side > (win_size - 1) * 16: the standard 11x11 window is used
    from 161 pixels up, a 7x7 window from 97 (e.g. 176x144 QCIF), and smaller frames give NaN.
    """
    side = min(src_frame[0].shape)
    if side > 160:
        win = 11
    elif side > 96:
        win = 7
    else:
        return float("nan")
    x = torch.from_numpy(yuv420_to_rgb(src_frame)).float()[None]
    z = torch.from_numpy(yuv420_to_rgb(dec_frame)).float()[None]
    return float(ms_ssim(x, z, data_range=1.0, win_size=win))


def _check_curve(rates, quality, what):
    """Return rates and quality as float arrays sorted by `quality`, after checking the point count."""
    rates, quality = np.asarray(rates, np.float64), np.asarray(quality, np.float64)
    if rates.shape != quality.shape or rates.ndim != 1 or len(rates) < 4:
        raise ValueError(f"{what} needs at least 4 (rate, PSNR) points per curve, of equal count")
    if np.any(rates <= 0):
        raise ValueError(f"{what} needs positive rates")
    order = np.argsort(quality)
    return rates[order], quality[order]


def _mean_gap(xa, ya, xb, yb):
    """Mean of pchip(xb, yb) - pchip(xa, ya) over the overlap of the x ranges; NaN without overlap."""
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if hi <= lo:
        return float("nan")
    fa, fb = PchipInterpolator(xa, ya), PchipInterpolator(xb, yb)
    return float((fb.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def bd_rate(rates_a, psnrs_a, rates_b, psnrs_b):
    """Bjontegaard delta rate (%) of curve B (test) against A (anchor); negative means B saves bits.

    log10(rate) is interpolated as a pchip function of PSNR and the mean gap is taken exactly over the
    overlapping PSNR interval (NaN if the intervals do not overlap). Needs >= 4 points per curve.
    """
    ra, qa = _check_curve(rates_a, psnrs_a, "bd_rate")
    rb, qb = _check_curve(rates_b, psnrs_b, "bd_rate")
    gap = _mean_gap(qa, np.log10(ra), qb, np.log10(rb))
    return (10.0 ** gap - 1.0) * 100.0


def bd_psnr(rates_a, psnrs_a, rates_b, psnrs_b):
    """Bjontegaard delta PSNR (dB) of curve B against A; positive means B has higher quality.

    PSNR is interpolated as a pchip function of log10(rate) over the overlapping log-rate interval.
    """
    ra, qa = _check_curve(rates_a, psnrs_a, "bd_psnr")
    rb, qb = _check_curve(rates_b, psnrs_b, "bd_psnr")
    ia, ib = np.argsort(ra), np.argsort(rb)
    return _mean_gap(np.log10(ra[ia]), qa[ia], np.log10(rb[ib]), qb[ib])
