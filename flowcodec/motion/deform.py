"""Compensation in feature space (approaches 3 and 7), after FVC (Hu et al., CVPR 2021).

The reference frame is lifted to features (``extract``), aligned by a modulated deformable convolution
(Dai et al., ICCV 2017; Zhu et al., CVPR 2019, "DCNv2") whose offsets start from the decoded motion, and
a frame reconstruction network (``reconstruct``) returns pixels. The codec then codes the residual
between the current frame's features and the aligned ones (``codec.inter``), so that what a
modulated, many-tap alignment cannot express is corrected where it was made.

Features live at the packed-frame resolution (half the luma resolution) and their first 6 channels are
the packed frame itself, so ``reconstruct`` starts as the identity and the feature residual can always
carry the pixels: the quality a pixel-space codec reaches stays reachable.

The deformable convolution is written with ``warp`` (one bilinear sampling per offset group and kernel
tap), so it runs on the CPU without torchvision and computes the same bits on every machine inside
``exact()``: sampling and masking are element-wise operations in a fixed order (``layers.exact`` rule 2),
the weighted sum over channels and taps is an exact convolution per group (rule 1), and the groups'
sums are added in a fixed order.
"""
import torch
import torch.nn as nn

from ..layers import ResBlock, conv, conv2d
from .base import MotionModel
from .warp import warp

WIDTH = 32  # feature channels (the packed frame's 6 and 26 learned)
GROUPS = 4  # offset groups: each aligns WIDTH / GROUPS channels with offsets of its own
TAPS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1))  # the 3×3 kernel's positions (x, y)
START = 0.01  # the initial scale of the layers whose output corrects an identity path


def deform_conv(x: torch.Tensor, offsets: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, groups: int) -> torch.Tensor:
    """Modulated deformable 3×3 convolution (DCNv2) of x (B,C,H,W): output pixel p sums
    ``weight[:, c, k] · mask[g, k](p) · x[c](p + tap_k + offsets[g, k](p))`` over the input channels c,
    whose group is g, and the nine taps k; ``offsets`` (B,groups,9,2,H,W) in pixels (x, y), ``mask``
    (B,groups,9,H,W), ``weight`` (Cout,C,3,3) as a plain convolution's. Samples outside the map take the
    nearest border value (``warp``), so zero offsets and unit masks give the plain convolution of the
    edge-replicated input."""
    b, c, h, w = x.shape
    cg = c // groups
    out = None
    for g in range(groups):
        part = x[:, g * cg:(g + 1) * cg]
        taps = [warp(part, offsets[:, g, k] + offsets.new_tensor(TAPS[k])[:, None, None]) * mask[:, g, k, None]
                for k in range(len(TAPS))]
        columns = torch.stack(taps, 2).reshape(b, cg * len(TAPS), h, w)  # channel-major, tap-minor
        kernel = weight[:, g * cg:(g + 1) * cg].reshape(weight.shape[0], cg * len(TAPS), 1, 1)
        y = conv2d(columns, kernel, bias if g == 0 else None)
        out = y if out is None else out + y  # groups added in a fixed order
    return out


def _small(layer: nn.Module) -> nn.Module:
    """``layer`` with its initial weights scaled by ``START`` and no bias: the correction it adds to an
    identity path starts small (not zero, so the layers before it get gradients from the first step)."""
    with torch.no_grad():
        layer.weight.mul_(START)
        layer.bias.zero_()
    return layer


class FeatureMotion(MotionModel):
    """Base of the feature-space approaches: a subclass says how its decoded field becomes per-group
    offsets (``group_flows``); this class lifts, aligns and reconstructs.

    Its part of the contract (``base.py``): ``space = "features"``, ``features_width``, ``extract`` and
    ``reconstruct``; ``compensate`` returns the prediction's features."""

    space = "features"
    features_width = WIDTH

    def __init__(self, **hyper):
        super().__init__(**hyper)
        if type(self).group_flows is FeatureMotion.group_flows:
            raise TypeError(f"{type(self).__name__} does not implement group_flows()")
        self.lift = nn.Sequential(conv(6, WIDTH), nn.LeakyReLU(0.1), conv(WIDTH, WIDTH - 6))
        n = 3 * GROUPS * len(TAPS)  # per group and tap: an offset (x, y) and a mask
        self.offset_net = nn.Sequential(conv(WIDTH + 2 * GROUPS, 64), nn.LeakyReLU(0.1), conv(64, 64),
                                        nn.LeakyReLU(0.1), _small(conv(64, n)))
        identity = torch.zeros(WIDTH, WIDTH, 3, 3)
        identity[range(WIDTH), range(WIDTH), 1, 1] = 1.0
        self.align_weight = nn.Parameter(identity)
        self.align_bias = nn.Parameter(torch.zeros(WIDTH))
        self.fuse = ResBlock(WIDTH)
        _small(self.fuse.body[-1])
        self.lower = nn.Sequential(conv(WIDTH, WIDTH), nn.LeakyReLU(0.1), _small(conv(WIDTH, 6)))

    def extract(self, frame: torch.Tensor) -> torch.Tensor:
        """Packed frame (B,6,h,w) → features (B,WIDTH,h,w), the frame itself first."""
        return torch.cat((frame, self.lift(frame)), 1)

    def reconstruct(self, features: torch.Tensor) -> torch.Tensor:
        """Features → packed frame: their first 6 channels plus a learned correction."""
        return features[:, :6] + self.lower(features)

    def group_flows(self, field: torch.Tensor) -> torch.Tensor:
        """The decoded field (B,channels,H,W) at luma resolution → one flow per offset group at feature
        resolution (B,GROUPS,2,H/2,W/2), in feature pixels."""
        raise NotImplementedError

    def offsets(self, ref_features: torch.Tensor, field: torch.Tensor):
        """Per group and tap, the offsets (B,GROUPS,9,2,h,w) and masks (B,GROUPS,9,h,w) of the alignment:
        each group's flow plus a learned correction, from the reference's features warped by the first
        group's flow and the flows themselves."""
        base = self.group_flows(field)
        b, _, _, h, w = base.shape
        seen = torch.cat((warp(ref_features, base[:, 0]), base.flatten(1, 2) * 0.25), 1)
        out = self.offset_net(seen)
        k = len(TAPS)
        delta = out[:, :2 * GROUPS * k].reshape(b, GROUPS, k, 2, h, w)
        mask = (1.0 + out[:, 2 * GROUPS * k:]).clamp(0.0, 2.0).reshape(b, GROUPS, k, h, w)
        return base[:, :, None] + delta, mask

    def compensate(self, state, field):
        """Features of the prediction: the reference's features, deformably aligned, then refined."""
        fr = self.extract(state.ref)
        offsets, mask = self.offsets(fr, field)
        return self.fuse(deform_conv(fr, offsets, mask, self.align_weight, self.align_bias, GROUPS))
