"""Feature-space compensation (approaches 3 and 7): the deformable convolution against a per-pixel
loop, zero offsets against a plain convolution, a known shift aligned, the pixel-to-feature conversion,
exact decoding of the feature-space codec and the contract checks."""
import math

import pytest
import torch
import torch.nn.functional as F

from flowcodec.codec.inter import InterCodec
from flowcodec.codec.options import QUALITIES
from flowcodec.entropy.coder import Decode, Encode
from flowcodec.layers.exact import exact
from flowcodec.motion import DecodedPictures, MotionModel, create
from flowcodec.motion.base import check
from flowcodec.motion.deform import GROUPS, TAPS, WIDTH, FeatureMotion, deform_conv


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive(x, offsets, mask, weight, bias, groups):
    """DCNv2 by its definition, one output pixel at a time, with bilinear sampling of the clamped
    position (the border replicated)."""
    b, c, h, w = x.shape
    cg = c // groups

    def sample(n, ch, px, py):
        px, py = min(max(px, 0.0), w - 1.0), min(max(py, 0.0), h - 1.0)
        x0, y0 = math.floor(px), math.floor(py)
        x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
        fx, fy = px - x0, py - y0
        v = x[n, ch]
        top = v[y0, x0] * (1 - fx) + v[y0, x1] * fx
        bottom = v[y1, x0] * (1 - fx) + v[y1, x1] * fx
        return top * (1 - fy) + bottom * fy

    out = torch.zeros(b, weight.shape[0], h, w, dtype=x.dtype)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                acc = bias.clone()
                for ch in range(c):
                    g = ch // cg
                    for k, (dx, dy) in enumerate(TAPS):
                        px = j + dx + float(offsets[n, g, k, 0, i, j])
                        py = i + dy + float(offsets[n, g, k, 1, i, j])
                        acc += weight[:, ch, dy + 1, dx + 1] * mask[n, g, k, i, j] * sample(n, ch, px, py)
                out[n, :, i, j] = acc
    return out


def test_deform_conv_equals_the_per_pixel_definition():
    b, c, h, w, groups, cout = 2, 4, 5, 6, 2, 3
    x = _rand(b, c, h, w, seed=1)
    offsets = (_rand(b, groups, 9, 2, h, w, seed=2) - 0.5) * 5  # up to ±2.5 px: borders are reached
    mask = _rand(b, groups, 9, h, w, seed=3) * 2
    weight, bias = _rand(cout, c, 3, 3, seed=4) - 0.5, _rand(cout, seed=5)
    got = deform_conv(x, offsets, mask, weight, bias, groups)
    torch.testing.assert_close(got, _naive(x, offsets, mask, weight, bias, groups), atol=1e-12, rtol=0)
    # each group reads its own offsets: moving group 1's changes only what its channels contribute
    moved = offsets.clone()
    moved[:, 1] += 1.0
    only0 = weight.clone()
    only0[:, 2:] = 0
    torch.testing.assert_close(deform_conv(x, moved, mask, only0, bias, groups),
                               deform_conv(x, offsets, mask, only0, bias, groups), atol=1e-12, rtol=0)
    assert not torch.allclose(deform_conv(x, moved, mask, weight, bias, groups), got)


def test_zero_offsets_are_a_plain_convolution():
    x = _rand(1, 8, 9, 11, seed=6)
    weight, bias = _rand(5, 8, 3, 3, seed=7) - 0.5, _rand(5, seed=8)
    zeros, ones = torch.zeros(1, 4, 9, 2, 9, 11, dtype=x.dtype), torch.ones(1, 4, 9, 9, 11, dtype=x.dtype)
    plain = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, bias)
    torch.testing.assert_close(deform_conv(x, zeros, ones, weight, bias, 4), plain, atol=1e-12, rtol=0)
    half = deform_conv(x, zeros, ones * 0.5, weight, None, 4)  # the mask scales each sample
    torch.testing.assert_close(half, 0.5 * (plain - bias[:, None, None]), atol=1e-12, rtol=0)


def test_offsets_of_a_known_shift_align_shifted_features():
    """Features shifted by (3, -2) pixels, offsets (3, -2) everywhere: the identity kernel returns the
    unshifted features inside the frame."""
    ref = _rand(1, 8, 20, 24, seed=9)
    cur = torch.zeros_like(ref)
    cur[..., 2:, :-3] = ref[..., :-2, 3:]  # cur(p) = ref(p + (3, -2))
    identity = torch.zeros(8, 8, 3, 3, dtype=ref.dtype)
    identity[range(8), range(8), 1, 1] = 1
    offsets = torch.zeros(1, 2, 9, 2, 20, 24, dtype=ref.dtype)
    offsets[:, :, :, 0], offsets[:, :, :, 1] = 3.0, -2.0
    aligned = deform_conv(ref, offsets, torch.ones(1, 2, 9, 20, 24, dtype=ref.dtype), identity, None, 2)
    assert torch.equal(aligned[..., 2:, :-3], cur[..., 2:, :-3])
    assert not torch.equal(ref[..., 2:, :-3], cur[..., 2:, :-3])


def test_pixel_to_feature_turns_a_constant_flow_into_constant_feature_offsets():
    torch.manual_seed(0)
    m = create("pixel_to_feature").eval()
    field = torch.zeros(1, 2, 64, 96)
    field[:, 0], field[:, 1] = 5.0, -3.0  # luma pixels
    flows = m.group_flows(field)
    assert flows.shape == (1, GROUPS, 2, 32, 48)
    assert torch.equal(flows[:, :, 0], torch.full((1, GROUPS, 32, 48), 2.5))  # feature pixels: halved
    assert torch.equal(flows[:, :, 1], torch.full((1, GROUPS, 32, 48), -1.5))
    with torch.no_grad():  # the full offsets: those flows plus the learned corrections (small when built)
        offsets, mask = m.offsets(m.extract(_rand(1, 6, 32, 48).float()), field)
    assert offsets.shape == (1, GROUPS, 9, 2, 32, 48) and mask.shape == (1, GROUPS, 9, 32, 48)
    assert (offsets[:, :, :, 0] - 2.5).abs().max() < 0.1 and (offsets[:, :, :, 1] + 1.5).abs().max() < 0.1
    assert (mask - 1).abs().max() < 0.1


def test_feature_module_codes_one_flow_per_group():
    m = create("feature")
    assert m.channels == 2 * GROUPS and m.space == "features" and m.features_width == WIDTH
    field = torch.arange(2 * GROUPS, dtype=torch.float32).view(1, -1, 1, 1).expand(1, -1, 8, 8) * 2
    flows = m.group_flows(field)
    assert torch.equal(flows[0, :, :, 0, 0], torch.arange(2 * GROUPS, dtype=torch.float32).view(GROUPS, 2))


@pytest.mark.parametrize("name", ["feature", "pixel_to_feature"])
def test_feature_space_codec_decodes_exactly(name):
    """Encode and decode one P-frame inside exact(): the same features, prediction and frame; and the
    residual is coded in feature space (features_width channels)."""
    torch.manual_seed(0)
    codec = InterCodec(name, QUALITIES).eval()
    assert codec.refine is None and codec.res.g_a[0].in_channels == WIDTH
    cur, ref = _rand(1, 6, 32, 32, seed=10), _rand(1, 6, 32, 32, seed=11)
    state = DecodedPictures.intra(ref)
    with exact():
        enc = Encode(codec.tags)
        x_enc, pred_enc, field_enc, _ = codec(cur, state, 4, enc)
        x_dec, pred_dec, field_dec, _ = codec(None, state, 4, Decode(codec.tags, enc.payloads()))
    assert torch.equal(field_enc, field_dec) and torch.equal(pred_enc, pred_dec) and torch.equal(x_enc, x_dec)
    assert x_enc.shape == cur.shape


def test_feature_space_contract_is_checked():
    class NoReconstruct(MotionModel):
        space = "features"
        features_width = 16

        def estimate(self, cur, state):
            return torch.zeros_like(cur[:, :2])

        def compensate(self, state, field):
            return state.ref

        def extract(self, frame):
            return frame

    with pytest.raises(TypeError, match="reconstruct"):
        check(NoReconstruct())
    NoReconstruct.space = "colours"
    with pytest.raises(TypeError, match="space"):
        check(NoReconstruct())

    class NoGroupFlows(FeatureMotion):
        def estimate(self, cur, state):
            return torch.zeros_like(cur[:, :2])

    with pytest.raises(TypeError, match="group_flows"):
        NoGroupFlows()
