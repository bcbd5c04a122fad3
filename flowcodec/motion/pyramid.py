"""Approach 2: multi-scale (pyramid) optical flow, coarse to fine.

Following SpyNet (Ranjan & Black, CVPR 2017) as used in DVC (Lu et al., CVPR 2019): build luma
pyramids of both frames; at the coarsest level start from zero flow; at each finer level upsample the
flow (doubling its values, since it is in pixels of that level), warp the reference with it, and let a
small per-level CNN predict the residual flow from (current, warped reference, flow). The coarse levels
catch large motion cheaply; the fine levels only refine. The finest level runs at a quarter of the luma
resolution and its flow is upsampled: 16 times cheaper than full resolution, at little loss for coding,
where motion is coded at 1/16 of the resolution anyway.

Compensation is a bilinear backward warp of the decoded reference (luma with the flow, chroma with the
half-resolution flow); the codec's refinement network then cleans the warped frame.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..codec.frames import unpack
from ..layers import conv
from .base import MotionModel, register
from .warp import upsample_flow, warp, warp_frame


class _LevelNet(nn.Module):
    """Residual flow at one pyramid level from (cur, warped ref, flow)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(conv(4, width, 5), nn.ReLU(), conv(width, width, 5), nn.ReLU(),
                                 conv(width, width // 2, 5), nn.ReLU(), conv(width // 2, 2, 5))

    def forward(self, cur, warped, flow):
        return self.net(torch.cat((cur, warped, flow * 0.1), dim=1))


@register("pyramid")
class PyramidFlow(MotionModel):
    channels = 2

    def __init__(self, levels: int = 4):
        super().__init__()
        self.levels = nn.ModuleList(_LevelNet() for _ in range(levels))

    def estimate(self, cur, ref):
        """Flow from the current to the reference frame (B,2,H,W), luma pixels."""
        c, r = unpack(cur)[0], unpack(ref)[0]
        pyr_c, pyr_r = [F.avg_pool2d(c, 4)], [F.avg_pool2d(r, 4)]
        for _ in range(len(self.levels) - 1):
            pyr_c.append(F.avg_pool2d(pyr_c[-1], 2))
            pyr_r.append(F.avg_pool2d(pyr_r[-1], 2))
        flow = torch.zeros_like(pyr_c[-1]).repeat(1, 2, 1, 1)
        for k in reversed(range(len(self.levels))):
            if k < len(self.levels) - 1:
                flow = upsample_flow(flow)
            flow = flow + self.levels[k](pyr_c[k], warp(pyr_r[k], flow), flow)
        return upsample_flow(upsample_flow(flow))

    def compensate(self, ref, field):
        return warp_frame(ref, field)
