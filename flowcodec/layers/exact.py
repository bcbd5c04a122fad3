"""Exact arithmetic: what encoder and decoder compute inside ``exact()`` is the same on every machine.

Why: a float convolution sums its products in an order chosen by the kernel the library picks for the
instruction set, the thread count and the library version, and each order rounds differently. A
decoder whose reconstruction, references or entropy parameters move by one ulp drifts from the
encoder's for the rest of the intra period, and a flipped scale index desynchronises the range decoder.

The rules (docs/bitstream.md, "What a decoder computes"), all in float64:

1. Reductions (convolutions, pooling, channel sums) run on dyadic values only: inputs are rounded to
   multiples of 2^-ACT_BITS (``grid``), weights to multiples of 2^-WEIGHT_BITS and biases to multiples of
   2^-(ACT_BITS + WEIGHT_BITS), and inputs are clamped so that no partial sum can reach 2^SUM_BITS. Every
   product and every partial sum is then a multiple of 2^-(ACT_BITS + WEIGHT_BITS) below
   2^(SUM_BITS + 1) in magnitude, which float64's 53-bit significand holds exactly: any summation order,
   blocking, fused multiply-add or thread split gives the same bits, and im2col + GEMM (what torch runs
   for float64 convolutions on the CPU) is such an order.
2. Everything else is element-wise IEEE-754 arithmetic (+, −, ×, ÷, √: the standard rounds each
   correctly, so every conforming CPU gives the same result) in a fixed order.
3. No library transcendental function feeds a decoded value. Where the probability tables need exp and
   log, they are computed here (``exp``, ``log``) from basic operations alone.

Training never enters ``exact()``: it keeps the fast float32 kernels, and the exact computation differs
from it by far less than the quantization the codec applies anyway.
"""
import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F

ACT_BITS = 14  # fraction bits of activations (1/16384: far finer than the 8-bit samples)
WEIGHT_BITS = 18  # fraction bits of weights (every float16 weight of magnitude ≥ 2^-8 is kept exactly)
SUM_BITS = 20  # bound of |partial sums|: 2^-(14+18) · 2^53 = 2^21, with one bit to spare
BAND_BYTES = 2**26  # largest column buffer one convolution call may unfold (see ``_in_bands``)

_active = False


@contextlib.contextmanager
def _computing(exactly: bool, gradients):
    """Inside: exact arithmetic on or off, with the gradient mode ``gradients`` (a torch context)."""
    global _active
    before, _active = _active, exactly
    try:
        with gradients():
            yield
    finally:
        _active = before


def exact():
    """Compute exactly (the rules above) inside; also turns gradients off (coding only)."""
    return _computing(True, torch.no_grad)


def relaxed():
    """Inside ``exact()``: compute with the fast float kernels and gradients on again, for encoder-only
    work whose results never reach the decoder except through what is then coded exactly (the latent
    search of ``codec/search.py``)."""
    return _computing(False, torch.enable_grad)


def active() -> bool:
    return _active


def grid(x: torch.Tensor, bits: int = ACT_BITS) -> torch.Tensor:
    """x in float64 rounded to the nearest multiple of 2^-bits (ties to even)."""
    return torch.round(x.double() * 2.0**bits) / 2.0**bits


def snap(x: torch.Tensor) -> torch.Tensor:
    """``grid(x)`` inside ``exact()`` (before a pooling or interpolation that sums), x outside."""
    return grid(x) if _active else x


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, transposed: bool = False,
         **options) -> torch.Tensor:
    """The exact convolution (rule 1) of x with ``weight`` and ``bias``; ``options`` are those of
    ``F.conv2d`` (or ``F.conv_transpose2d`` when ``transposed``)."""
    w = grid(weight, WEIGHT_BITS)
    b = None if bias is None else grid(bias, ACT_BITS + WEIGHT_BITS)
    per_output = w.abs().sum((0, 2, 3) if transposed else (1, 2, 3))  # bounds Σ|w| of any output sample
    room = 2.0**SUM_BITS - (0.0 if b is None else float(b.abs().max()))
    limit = math.ldexp(math.floor(math.ldexp(room / max(float(per_output.max()), 1.0), ACT_BITS)), -ACT_BITS)
    x = grid(x).clamp(-limit, limit)
    return _in_bands(x, w, b, transposed, **options)


def _in_bands(x, w, b, transposed, stride=1, padding=0, dilation=1, groups=1, output_padding=0):
    """The convolution computed in bands of output rows, so that the column buffer a float64 convolution
    unfolds (im2col, or col2im when transposed) stays under BAND_BYTES whatever the frame size. Every
    output sum is exact, so the bands give the same bits as one call."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    (s, sw), (p, pw), (op, opw) = pair(stride), pair(padding), pair(output_padding)
    (kh, kw), (h, width) = w.shape[-2:], x.shape[-2:]
    if transposed:
        h_out = (h - 1) * s - 2 * p + kh + op
        band = s * max(1, BAND_BYTES // (8 * w.shape[1] * groups * kh * kw * width))  # col2im per input row
    else:
        h_out = (h + 2 * p - kh) // s + 1
        band = max(1, BAND_BYTES // (8 * x.shape[1] * kh * kw * ((width + 2 * pw - kw) // sw + 1)))  # im2col
    whole = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if band >= h_out or pair(dilation) != (1, 1) or (transposed and (op > p or kh < s)):
        return (F.conv_transpose2d(x, w, b, output_padding=output_padding, **whole) if transposed
                else F.conv2d(x, w, b, **whole))
    parts = []
    if transposed:  # a band's rows take input rows ceil((a + p - kh + 1) / s) … floor((e - 1 + p) / s)
        for a in range(0, h_out, band):
            e = min(h_out, a + band)
            first, end = max(0, -((kh - 1 - a - p) // s)), min(h, (e - 1 + p) // s + 1)
            out = F.conv_transpose2d(x[..., first:end, :], w, b, stride=(s, sw), padding=(0, pw),
                                     output_padding=(0, opw), groups=groups)
            top = first * s - p  # the frame row of out's first row
            parts.append(out[..., a - top:e - top, :])
    else:
        x = F.pad(x, (0, 0, p, p))
        for a in range(0, h_out, band):
            e = min(h_out, a + band)
            parts.append(F.conv2d(x[..., a * s:(e - 1) * s + kh, :], w, b, stride=(s, sw), padding=(0, pw),
                                  groups=groups))
    return torch.cat(parts, -2)


# exp and log from IEEE basic operations (rule 3): Cody–Waite range reduction and series whose terms
# are far below float64's precision; accurate to a few ulp, and identical on every machine.
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10  # ln 2 = HI + LO, HI exact × k
_EXP_TERMS = [1 / math.factorial(n) for n in range(18)]


def exp(x) -> np.ndarray:
    """e^x (float64 array); arguments are clamped to ±700, so results stay normal numbers."""
    x = np.clip(np.asarray(x, np.float64), -700.0, 700.0)
    k = np.rint(x * 1.4426950408889634)  # 1 / ln 2
    r = (x - k * _LN2_HI) - k * _LN2_LO  # |r| ≤ 0.35
    p = np.full_like(r, _EXP_TERMS[-1])
    for c in reversed(_EXP_TERMS[:-1]):
        p = p * r + c
    return np.ldexp(p, k.astype(np.int64))


def log(x) -> np.ndarray:
    """Natural logarithm of positive x (float64 array)."""
    m, e = np.frexp(np.asarray(x, np.float64))  # x = m · 2^e, m in [0.5, 1)
    low = m < 0.7071067811865476
    m, e = np.where(low, 2 * m, m), np.where(low, e - 1, e)  # m in [0.707, 1.414)
    s = (m - 1) / (m + 1)  # log m = 2 atanh s, |s| ≤ 0.172
    s2, term, total = s * s, s, s
    for n in range(3, 31, 2):
        term = term * s2
        total = total + term / n
    return e * _LN2_HI + (e * _LN2_LO + 2 * total)
