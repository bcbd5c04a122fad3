"""Scale-space flow (approach 1): the warp's defining properties."""
import torch

from flowcodec.motion import DecodedPictures, create
from flowcodec.motion.scale_space import LEVELS, gaussian_blur, scale_space_warp, sigmas


def _image(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return gaussian_blur(torch.rand(1, 1, h, w, generator=g), 1.0)


def test_zero_flow_zero_scale_is_identity():
    img = _image()
    out = scale_space_warp(img, torch.zeros(1, 2, 48, 64), torch.zeros(1, 1, 48, 64))
    assert torch.allclose(out, img, atol=1e-5)


def test_integer_shift_recovered_away_from_borders():
    img = _image()
    flow = torch.zeros(1, 2, 48, 64)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # sample at (x+3, y-2)
    out = scale_space_warp(img, flow, torch.zeros(1, 1, 48, 64))
    expect = img[..., 0:44, 3:64]  # out[y, x] = img[y-2, x+3]
    assert torch.allclose(out[..., 2:46, 0:61], expect, atol=1e-5)


def test_large_scale_equals_blurred_reference():
    img = _image()
    z = torch.full((1, 1, 48, 64), float(LEVELS - 1))
    out = scale_space_warp(img, torch.zeros(1, 2, 48, 64), z)
    assert torch.allclose(out, gaussian_blur(img, sigmas()[-1]), atol=1e-5)
    assert not torch.allclose(out, img, atol=1e-2)
    # halfway between two levels is the mean of the two blurs (linear in scale)
    half = scale_space_warp(img, torch.zeros(1, 2, 48, 64), torch.full_like(z, 1.5))
    assert torch.allclose(half, 0.5 * (gaussian_blur(img, sigmas()[1]) + gaussian_blur(img, sigmas()[2])),
                          atol=1e-5)


def test_blur_grows_with_scale():
    img = _image()
    errs = [(scale_space_warp(img, torch.zeros(1, 2, 48, 64), torch.full((1, 1, 48, 64), z)) - img)
            .abs().mean().item() for z in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert errs == sorted(errs) and errs[0] < 1e-6 < errs[1]


def test_gradients_reach_all_three_channels():
    torch.manual_seed(0)
    model = create("scale_space")
    ref = torch.rand(1, 6, 32, 32)
    field = (torch.rand(1, 3, 64, 64) * 2).requires_grad_()
    model.compensate(DecodedPictures.intra(ref), field).square().sum().backward()
    per_channel = field.grad.abs().sum(dim=(0, 2, 3))
    assert (per_channel > 0).all(), per_channel


def test_estimate_gives_flow_and_nonnegative_scale():
    torch.manual_seed(0)
    model = create("scale_space")
    cur, ref = torch.rand(2, 6, 32, 32), torch.rand(2, 6, 32, 32)
    field = model.estimate(cur, DecodedPictures.intra(ref))
    assert field.shape == (2, 3, 64, 64)
    assert (field[:, 2] >= 0).all()
