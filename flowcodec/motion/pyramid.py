"""Approach 2: multi-scale (pyramid) optical flow, coarse to fine.

SpyNet (Ranjan & Black, CVPR 2017), as used by DVC (Lu et al., CVPR 2019), refines flow coarse to fine;
PWC-Net (Sun et al., CVPR 2018) adds what makes such a network learn quickly: features instead of raw
pixels and a local cost volume. Here, per level from the coarsest: upsample the flow (doubling its
values, since it is in pixels of that level), warp the reference's features with it, correlate them with
the current frame's features over a small window (±``RADIUS``), and let a small CNN predict the residual
flow from (cost volume, features, flow). Coarse levels catch large motion cheaply, fine levels refine.
The finest level runs at a quarter of the luma resolution and its flow is upsampled: 16 times cheaper
than full resolution, at little loss for coding, where motion is coded at 1/16 of the resolution anyway.

Compensation is a bilinear backward warp of the decoded reference (luma with the flow, chroma with the
half-resolution flow); the codec's refinement network then cleans the warped frame.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..frames import unpack
from ..layers import conv, exact
from .base import MotionModel, register
from .warp import upsample_flow, warp, warp_frame

RADIUS = 3
WIDTHS = (16, 24, 32, 48, 64)  # features at 1/2 … 1/32 of the luma resolution


def _unit(f: torch.Tensor) -> torch.Tensor:
    """f divided by its norm over channels (``F.normalize``); inside ``exact()`` from values on the grid,
    whose sum of squares is exact (``layers.exact``), and put back on the grid for the correlation."""
    if not exact.active():
        return F.normalize(f, dim=1)
    f = exact.grid(f)
    return exact.grid(f / f.square().sum(1, keepdim=True).sqrt().clamp_min(1e-12))


def cost_volume(a: torch.Tensor, b: torch.Tensor, radius: int = RADIUS) -> torch.Tensor:
    """Cosine similarity of the features ``a`` with ``b`` shifted by every offset in [-r, r]^2 (zero
    padded). Normalising the features keeps the matching signal strong whatever their scale."""
    h, w = a.shape[-2:]
    a, b = _unit(a), _unit(b)
    bp = F.pad(b, (radius,) * 4)
    return torch.cat([(a * bp[..., dy:dy + h, dx:dx + w]).sum(dim=1, keepdim=True)
                      for dy in range(2 * radius + 1) for dx in range(2 * radius + 1)], dim=1)


class Features(nn.Module):
    """Luma → feature pyramid, one level per stride-2 step (shared by both frames)."""

    def __init__(self):
        super().__init__()
        chans = (1,) + WIDTHS
        self.stages = nn.ModuleList(
            nn.Sequential(conv(chans[i], chans[i + 1], 3, 2), nn.LeakyReLU(0.1),
                          conv(chans[i + 1], chans[i + 1]), nn.LeakyReLU(0.1))
            for i in range(len(WIDTHS)))

    def forward(self, y):
        out = []
        for stage in self.stages:
            y = stage(y)
            out.append(y)
        return out


class LevelNet(nn.Module):
    """Residual flow at one level from (cost volume, current features, flow); ``flows`` channels of flow
    in and out (2: one flow; ``feature`` estimates one per offset group)."""

    def __init__(self, feat: int, width: int = 48, flows: int = 2):
        super().__init__()
        n = (2 * RADIUS + 1) ** 2
        self.net = nn.Sequential(conv(n + feat + flows, width), nn.LeakyReLU(0.1), conv(width, width // 2),
                                 nn.LeakyReLU(0.1), conv(width // 2, flows))

    def forward(self, cost, feat, flow):
        return self.net(torch.cat((cost, feat, flow * 0.25), dim=1))


@register("pyramid")
class PyramidFlow(MotionModel):
    channels = 2

    def __init__(self, **hyper):
        super().__init__(**hyper)
        self.features = Features()
        self.levels = nn.ModuleList(LevelNet(w) for w in WIDTHS[1:])  # 1/4 … 1/32

    def estimate(self, cur, state):
        """Flow from the current frame to the newest reference (B,2,H,W), luma pixels."""
        fc = self.features(unpack(cur)[0] * 4 - 2)[1:]
        fr = self.features(unpack(state.ref)[0] * 4 - 2)[1:]
        flow = None
        for k in reversed(range(len(self.levels))):
            if flow is None:
                flow = torch.zeros_like(fc[k][:, :2])
            else:
                flow = upsample_flow(flow)
            cost = cost_volume(fc[k], warp(fr[k], flow))
            flow = flow + self.levels[k](cost, fc[k], flow)
        return upsample_flow(upsample_flow(flow))

    def compensate(self, state, field):
        return warp_frame(state.ref, field)
