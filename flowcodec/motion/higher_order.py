"""Approach 6: higher-order motion — trajectories over several decoded frames with more than constant
velocity (quadratic, i.e. velocity + acceleration, as in quadratic video interpolation, Xu et al.,
NeurIPS 2019, here used for prediction in a low-delay codec).

The state holds the decoded motion of the last two P-frames: m1 (frame t-1 → t-2) and m2 (t-2 → t-3),
so a pixel's trajectory through t-1, t-2 and t-3 is known. Three predictors of the current motion
(t → t-1), from the state only:

* 0 — none;
* 1 — constant velocity: v = m1 carried along itself onto the current grid;
* 2 — constant acceleration: the displacement changes by the same amount each frame, so
  d(t→t-1) = 2·d(t-1→t-2) − d(t-2→t-3) = 2v − m2 carried along 2v (where the pixel was at t-2).

Only the difference between the estimated flow and the chosen prediction is coded. The order is chosen
per frame by the encoder in R + λ·D among those the state supports (after an intra frame none, then
first order, then second): the acceleration is never coded, only derived from decoded motion, and a
noisy second-order guess is simply not chosen, so the lower orders are the regularised fallback.
Estimation and compensation are those of the pyramid (approach 2), whose weights this module starts
from.
"""
from .base import DecodedPictures, register
from .pyramid import PyramidFlow
from .warp import carried, warp


@register("higher_order")
class HigherOrderFlow(PyramidFlow):
    predictors = 3
    references = 3

    def usable(self, state: DecodedPictures) -> int:
        return 1 + min(2, state.known_motion())

    def predict(self, state: DecodedPictures, k: int, coder=None, estimate=None, cur=None):
        if k == 0:
            return None
        v = carried(state.motion[0][:, :2])
        if k == 1:
            return v
        return 2 * v - warp(state.motion[1][:, :2], 2 * v)  # m2 where the pixel was at t-2
