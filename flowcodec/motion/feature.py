"""Approach 3: feature-space flow — motion estimated and applied between feature maps (FVC, Hu et al.,
CVPR 2021).

Estimation compares the features of the current frame and of the reference (the same ``extract`` that
compensation aligns, ``deform.FeatureMotion``), coarse to fine as PWC-Net does (Sun et al., CVPR 2018,
a local cost volume per level) but over a pyramid built from those features, and it returns one offset
field per offset group rather than one flow: the groups may follow different motions (occluding edges,
transparency). The coded field holds the ``GROUPS`` flows (x, y of each, group 0 first) at luma
resolution in luma pixels, like every field; the deformable alignment starts each group's taps at its
flow and adds learned per-tap corrections and masks.
"""
import torch
import torch.nn as nn

from ..layers import conv
from .base import register
from .deform import GROUPS, WIDTH, FeatureMotion
from .pyramid import LevelNet, cost_volume
from .warp import downsample_flow, upsample_flow, warp

WIDTHS = (48, 64, 64)  # feature pyramid above the features: 1/2, 1/4, 1/8 of their resolution


@register("feature")
class FeatureFlow(FeatureMotion):
    channels = 2 * GROUPS

    def __init__(self, **hyper):
        super().__init__(**hyper)
        chans = (WIDTH,) + WIDTHS
        self.stages = nn.ModuleList(
            nn.Sequential(conv(chans[i], chans[i + 1], 3, 2), nn.LeakyReLU(0.1),
                          conv(chans[i + 1], chans[i + 1]), nn.LeakyReLU(0.1))
            for i in range(len(WIDTHS)))
        self.levels = nn.ModuleList(LevelNet(w, 64, 2 * GROUPS) for w in WIDTHS)

    def _pyramid(self, frame):
        f, out = self.extract(frame), []
        for stage in self.stages:
            f = stage(f)
            out.append(f)
        return out

    def estimate(self, cur, state):
        """The group flows (B,2·GROUPS,H,W) from the current frame to the newest reference, luma pixels."""
        fc, fr = self._pyramid(cur), self._pyramid(state.ref)
        flows = None
        for k in reversed(range(len(self.levels))):
            flows = torch.zeros_like(fc[k][:, :2 * GROUPS]) if flows is None else upsample_flow(flows)
            cost = cost_volume(fc[k], warp(fr[k], flows[:, :2]))
            flows = flows + self.levels[k](cost, fc[k], flows)
        return upsample_flow(upsample_flow(flows))  # the finest level is at 1/4 of the luma resolution

    def group_flows(self, field):
        b, _, h, w = field.shape
        return downsample_flow(field).reshape(b, GROUPS, 2, h // 2, w // 2)
