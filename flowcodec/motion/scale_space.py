"""Approach 1: scale-space flow (Agustsson et al., "Scale-space flow for end-to-end optimized video
compression", CVPR 2020).

The motion field has a third channel, a scale z. Compensation samples a *scale-space volume* of the
reference — the reference blurred by a growing Gaussian — at (x + u, y + v, z) with trilinear
interpolation: bilinear in space inside each blur level, linear between levels. Where motion is
uncertain (occlusion, disocclusion, blur) the codec can raise z and get a smooth prediction instead of
a torn one, at the price of a few motion bits.

Blur schedule: level k of ``LEVELS`` is blurred with σ_k = SIGMA0 · 2^(k-1) luma pixels (level 0 is the
sharp reference): σ = 0, 1, 2, 4, 8. Chroma, at half resolution, uses σ_k / 2. z is a fractional level
index, clamped to [0, LEVELS-1]; z = 0 is plain bilinear warping.

The flow channels are estimated by the coarse-to-fine pyramid of approach 2; a small head proposes z
from the warping error, trained end to end by the rate-distortion loss.
"""
import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..frames import pack, unpack
from ..layers import conv, exact
from .base import MotionModel, register
from .pyramid import PyramidFlow
from .warp import downsample_flow, warp

LEVELS = 5
SIGMA0 = 1.0


def sigmas():
    return [0.0] + [SIGMA0 * 2 ** (k - 1) for k in range(1, LEVELS)]


@functools.cache
def _kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of ``sigma`` over ±ceil(3σ), from ``layers.exact.exp`` (the same on every
    machine)."""
    r = max(1, math.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = exact.exp(-0.5 * np.square(x / sigma))
    return k / math.fsum(k)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with edge replication; sigma 0 returns the input. Exact inside
    ``exact()`` (``layers.exact``)."""
    if sigma <= 0:
        return img
    k = torch.from_numpy(_kernel(sigma)).to(img.device, img.dtype)
    c, r = img.shape[1], len(k) // 2
    run = exact.conv if exact.active() else F.conv2d
    img = F.pad(img, (r, r, r, r), mode="replicate")
    img = run(img, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return run(img, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def scale_space_warp(img: torch.Tensor, flow: torch.Tensor, z: torch.Tensor, sigma_unit: float = 1.0):
    """Trilinear sample of the blur stack of ``img`` at (p + flow, z); z (B,1,H,W) in level units."""
    z = z.clamp(0, LEVELS - 1)
    out = 0
    for k, s in enumerate(sigmas()):
        weight = (1 - (z - k).abs()).clamp_min(0)
        out = out + weight * warp(gaussian_blur(img, s * sigma_unit), flow)
    return out


@register("scale_space")
class ScaleSpaceFlow(MotionModel):
    channels = 3

    def __init__(self, **hyper):
        super().__init__(**hyper)
        self.flow = PyramidFlow()
        self.scale_head = nn.Sequential(conv(3, 16), nn.ReLU(), conv(16, 16), nn.ReLU(), conv(16, 1))

    def estimate(self, cur, state):
        """(flow_x, flow_y, z) at luma resolution."""
        flow = self.flow.estimate(cur, state)
        c, r = unpack(cur)[0], unpack(state.ref)[0]
        warped = warp(r, flow)
        z = F.softplus(self.scale_head(torch.cat((c, warped, (c - warped).abs()), dim=1)) - 2.0)
        return torch.cat((flow, z), dim=1)

    def compensate(self, state, field):
        y, uv = unpack(state.ref)
        flow, z = field[:, :2], field[:, 2:]
        return pack(scale_space_warp(y, flow, z),
                    scale_space_warp(uv, downsample_flow(flow), F.avg_pool2d(exact.snap(z), 2), 0.5))
