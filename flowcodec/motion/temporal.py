"""Approach 4: spatio-temporally consistent flow (M-LVC, Lin et al., CVPR 2020; RLVC, Yang et al., 2021).

Motion in natural video is smooth in time, so the previous frame's decoded motion predicts the current
one: carried along itself onto the current grid (constant velocity) and corrected by a small network
that also sees the reference, as M-LVC's motion prediction network does. Only the difference between
the estimated flow and this prediction is coded (``predict``; the codec codes the rest). Each P-frame
signals which predictor it uses — none (0) or the temporal one (1) — chosen by the encoder in R + λ·D,
so a cut or a sudden change costs no more than without prediction.

Training adds (``penalty``) a spatial smoothness term on the decoded flow and a temporal consistency
term between the decoded flow and the prediction, both only where forward-backward consistency holds:
occluded and disoccluded pixels have no consistent motion, and compensation (refinement, residual) must
handle them instead. Estimation and compensation are those of the pyramid (approach 2), whose weights
this module starts from.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..frames import unpack
from ..layers import conv
from ..layers.exact import snap
from .base import DecodedPictures, register
from .pyramid import PyramidFlow
from .warp import carried, occluded



def _visible_mean(x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean of x (B,C,H,W) over the visible pixels (B,1,H,W)."""
    return (x * visible).sum((1, 2, 3)) / (visible.sum((1, 2, 3)) * x.shape[1]).clamp_min(1)


@register("temporal")
class TemporalFlow(PyramidFlow):
    predictors = 2
    hyper = {
        "smooth": 0.01,  # weight of the spatial smoothness term (per luma pixel of flow gradient)
        "consistent": 0.01,  # weight of the temporal consistency term (per luma pixel of flow difference)
        "step": 4,  # the correction network runs at 1/step of the luma resolution
        "unit": 4.0,  # flows enter the network divided by this (pixels, not frame sizes)
    }

    def __init__(self, **hyper):
        super().__init__(**hyper)
        step = self.hyper["step"]
        if not (isinstance(step, int) and step > 0 and step & (step - 1) == 0):
            raise TypeError(f"temporal step must be a power of two (its pooling and upsampling are then "
                            f"exact, layers.exact), not {step!r}")
        self.correct = nn.Sequential(conv(3, 32), nn.LeakyReLU(0.1), conv(32, 32), nn.LeakyReLU(0.1),
                                     conv(32, 2))
        nn.init.normal_(self.correct[-1].weight, std=1e-3)  # starts near the constant-velocity guess
        nn.init.zeros_(self.correct[-1].bias)

    def usable(self, state: DecodedPictures) -> int:
        return 1 + min(1, state.known_motion())

    def predict(self, state: DecodedPictures, k: int, coder=None, estimate=None, cur=None):
        if k == 0:
            return None
        step, unit = self.hyper["step"], self.hyper["unit"]
        guess = carried(state.motion[0][:, :2])
        small = F.avg_pool2d(snap(torch.cat((guess / unit, unpack(state.ref)[0]), 1)), step)
        return guess + F.interpolate(snap(self.correct(small)), scale_factor=step, mode="bilinear",
                                     align_corners=False) * unit

    def penalty(self, cur, state, field):
        flow = field[:, :2]
        with torch.no_grad():
            forward = self.estimate(state.ref, DecodedPictures.intra(cur))  # reference → current
            visible = (~occluded(flow, forward)).float()
        both = visible[..., 1:, 1:]
        grad = ((flow[..., 1:, 1:] - flow[..., 1:, :-1]).abs() + (flow[..., 1:, 1:] - flow[..., :-1, 1:]).abs())
        cost = self.hyper["smooth"] * _visible_mean(grad, both)
        if self.usable(state) > 1:
            cost = cost + self.hyper["consistent"] * _visible_mean((flow - self.predict(state, 1)).abs(), visible)
        return cost
