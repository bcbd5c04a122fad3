"""Approach 7: pixel-to-feature motion — pixel flow converted into feature-level offsets.

Pixel flow is cheap to estimate and well posed (it is the pyramid's, approach 2, whose weights this
module starts from), and the motion coder codes it as it codes the pyramid's. Compensation happens in
feature space (``deform.FeatureMotion``, after FVC, Hu et al. CVPR 2021): the decoded flow, brought to
the feature resolution (half the luma resolution, so halved in value), is the starting offset of every
offset group and kernel tap, and a small network adds per-group, per-tap corrections and modulation
masks, as DCVC's offset refinement does. The alignment thus gets a good start where the flow is right,
and falls back to it where the network has nothing to add (its corrections start near zero).
"""
from .base import register
from .deform import GROUPS, FeatureMotion
from .pyramid import PyramidFlow
from .warp import downsample_flow


@register("pixel_to_feature")
class PixelToFeatureFlow(FeatureMotion, PyramidFlow):
    channels = 2

    def group_flows(self, field):
        """The same flow for every group: the decoded flow at feature resolution, in feature pixels."""
        flow = downsample_flow(field)
        return flow[:, None].expand(-1, GROUPS, -1, -1, -1)
