"""Motion: backward warping in pixel units, the packed-frame warp, the registry, and that the P-frame
codec is trainable end to end (gradients reach every parameter) and exactly decodable."""
import pytest
import torch

from flowcodec.frames import pack, unpack
from flowcodec.codec.inter import InterCodec, TAGS
from flowcodec.codec.options import QUALITIES
from flowcodec.entropy.coder import Decode, Encode, Train
from flowcodec.errors import FlowcodecError
from flowcodec.motion import MotionModel, available, create
from flowcodec.motion.warp import downsample_flow, upsample_flow, warp, warp_frame

ATOL = 1e-5  # grid normalisation in float32 is not exact: sub-1e-5 errors on [0,1] images


def _image(b, c, h, w, seed=0):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def _flow(b, h, w, dx, dy):
    f = torch.zeros(b, 2, h, w)
    f[:, 0], f[:, 1] = dx, dy
    return f


@pytest.mark.parametrize("h,w", [(32, 48), (37, 51), (1, 8)])
def test_zero_flow_is_identity(h, w):
    img = _image(2, 3, h, w)
    torch.testing.assert_close(warp(img, torch.zeros(2, 2, h, w)), img, atol=ATOL, rtol=0)


def test_integer_flow_shifts():
    """out(p) = img(p + flow): with flow (3, -2), out[y, x] = img[y - 2, x + 3]."""
    h, w = 40, 56
    img = _image(2, 3, h, w, seed=1)
    out = warp(img, _flow(2, h, w, 3, -2))
    torch.testing.assert_close(out[..., 2:, :w - 3], img[..., :h - 2, 3:], atol=ATOL, rtol=0)
    # outside the image the border is replicated
    torch.testing.assert_close(out[..., 0, :w - 3], img[..., 0, 3:], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[..., 2:, -1], img[..., :h - 2, -1], atol=ATOL, rtol=0)
    # ...and the shift is really there: the unshifted image is far away
    assert (out[..., 2:, :w - 3] - img[..., 2:, :w - 3]).abs().mean() > 0.1


def test_half_pixel_flow_interpolates():
    h, w = 8, 16
    img = _image(1, 1, h, w, seed=2)
    out = warp(img, _flow(1, h, w, 0.5, 0))
    torch.testing.assert_close(out[..., :-1], (img[..., :-1] + img[..., 1:]) / 2, atol=ATOL, rtol=0)


def test_per_sample_flows():
    img = _image(2, 1, 16, 16, seed=3)
    flow = torch.cat((_flow(1, 16, 16, 1, 0), _flow(1, 16, 16, 0, 1)))
    out = warp(img, flow)
    torch.testing.assert_close(out[0, :, :, :-1], img[0, :, :, 1:], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1, :, :-1], img[1, :, 1:], atol=ATOL, rtol=0)


def test_flow_resampling_keeps_pixel_units():
    f = _flow(1, 16, 16, 3.0, -1.5)
    torch.testing.assert_close(upsample_flow(f), _flow(1, 32, 32, 6.0, -3.0))
    torch.testing.assert_close(downsample_flow(f), _flow(1, 8, 8, 1.5, -0.75))


def test_warp_frame_moves_luma_by_flow_and_chroma_by_half():
    h, w = 48, 64  # luma; packed (B,6,24,32)
    y, uv = _image(1, 1, h, w, seed=4), _image(1, 2, h // 2, w // 2, seed=5)
    frame = pack(y, uv)
    out_y, out_uv = unpack(warp_frame(frame, _flow(1, h, w, 4, -2)))
    torch.testing.assert_close(out_y[..., 2:, :w - 4], y[..., :h - 2, 4:], atol=ATOL, rtol=0)
    torch.testing.assert_close(out_uv[..., 1:, :w // 2 - 2], uv[..., :h // 2 - 1, 2:], atol=ATOL, rtol=0)


def test_pack_unpack_inverse():
    y, uv = _image(2, 1, 16, 24, seed=6), _image(2, 2, 8, 12, seed=7)
    p = pack(y, uv)
    assert p.shape == (2, 6, 8, 12)
    y2, uv2 = unpack(p)
    assert torch.equal(y, y2) and torch.equal(uv, uv2)


# --- registry --------------------------------------------------------------------------------------

def test_registry():
    assert "pyramid" in available()
    assert available() == sorted(available())
    m = create("pyramid")
    assert isinstance(m, MotionModel) and m.name == "pyramid" and m.channels == 2
    with pytest.raises(FlowcodecError, match="nosuch.*pyramid"):
        create("nosuch")


@pytest.mark.parametrize("name", available())
def test_estimate_shape(name):
    torch.manual_seed(0)
    m = create(name).eval()
    cur, ref = _image(2, 6, 32, 48, seed=8), _image(2, 6, 32, 48, seed=9)
    with torch.no_grad():
        field = m.estimate(cur, ref)
        assert field.shape == (2, m.channels, 64, 96)
        assert torch.isfinite(field).all()
        assert m.compensate(ref, field).shape == ref.shape


# --- the P-frame codec -----------------------------------------------------------------------------

def _pair(seed=10):
    """A 64x64 (luma) pair: a smooth texture and the same texture shifted by 2 pixels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(torch.rand(1, 1, 20, 20, generator=g), size=(68, 68),
                                           mode="bicubic", align_corners=False).clamp(0, 1)
    uv = torch.full((1, 2, 32, 32), 0.5)
    ref = pack(base[..., 2:66, 2:66], uv)
    cur = pack(base[..., 2:66, 4:68], uv)
    return cur, ref


@pytest.mark.parametrize("name", available())
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    codec = InterCodec(name, QUALITIES).train()
    cur, ref = _pair()
    coder = Train()
    x_hat, pred, field = codec(cur, ref, torch.tensor([1]), coder)
    assert set(coder.bits) == set(TAGS)
    loss = coder.total().mean() / (64 * 64) + 100 * ((x_hat - cur) ** 2).mean() + ((pred - cur) ** 2).mean()
    loss.backward()
    missing = [n for n, p in codec.named_parameters() if p.grad is None]
    assert not missing, missing
    for n, p in codec.named_parameters():
        assert torch.isfinite(p.grad).all(), n
    zero = [n for n, p in codec.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero, zero


@pytest.mark.parametrize("q", [0, 5])
def test_inter_encode_decode_exact(q):
    torch.manual_seed(0)
    codec = InterCodec("pyramid", QUALITIES).eval()
    cur, ref = _pair(seed=11)
    with torch.no_grad():
        enc = Encode(TAGS)
        x_enc, pred_enc, field_enc = codec(cur, ref, q, enc)
        dec = Decode(TAGS, enc.payloads())
        x_dec, pred_dec, field_dec = codec(None, ref, q, dec)
    assert torch.equal(field_enc, field_dec)
    assert torch.equal(pred_enc, pred_dec)
    assert torch.equal(x_enc, x_dec)
