"""Motion: backward warping in pixel units, the packed-frame warp, the registry, that the P-frame
codec is trainable end to end (gradients reach every parameter) and exactly decodable, and the motion
contract and decoder state over every registered module."""
import numpy as np
import pytest
import torch

from flowcodec.codec.inter import InterCodec, TAGS
from flowcodec.codec.options import QUALITIES
from flowcodec.entropy.coder import Decode, Encode, Train
from flowcodec.errors import FlowcodecError
from flowcodec.frames import pack, to_frame, to_tensor, unpack
from flowcodec.motion import DEPTH, DecodedPictures, MotionModel, available, create
from flowcodec.motion.base import check
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
        state = DecodedPictures.intra(ref)
        field = m.estimate(cur, state)
        assert field.shape == (2, m.channels, 64, 96)
        assert torch.isfinite(field).all()
        assert m.compensate(state, field).shape == ref.shape


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
    state, loss = DecodedPictures.intra(ref), 0
    for t in range(3):  # three P-frames: modules that predict motion from the state use it by the third
        coder = Train()
        x_hat, pred, field, state = codec(cur, state, torch.tensor([1]), coder)
        assert set(coder.bits) == set(TAGS)
        loss = loss + coder.total().mean() / (64 * 64) + 100 * ((x_hat - cur) ** 2).mean() + ((pred - cur) ** 2).mean()
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
        state = DecodedPictures.intra(ref)
        x_enc, pred_enc, field_enc, _ = codec(cur, state, q, enc)
        dec = Decode(TAGS, enc.payloads())
        x_dec, pred_dec, field_dec, _ = codec(None, state, q, dec)
    assert torch.equal(field_enc, field_dec)
    assert torch.equal(pred_enc, pred_dec)
    assert torch.equal(x_enc, x_dec)


# --- the motion contract and the decoder state, over every registered module ----------------------

@pytest.mark.parametrize("name", available())
def test_contract_zero_motion_returns_the_reference(name):
    m = check(create(name).eval())
    state = DecodedPictures.intra(_image(1, 6, 32, 48, seed=3))
    with torch.no_grad():
        pred = m.compensate(state, torch.zeros(1, m.channels, 64, 96))
    assert (pred - state.ref).abs().max() < 1e-5  # bilinear sampling at whole pixels: float rounding only


def test_contract_is_checked_when_a_module_is_built():
    class NoCompensate(MotionModel):
        def estimate(self, cur, state):
            return torch.zeros_like(cur[:, :2])

    class TooManyReferences(NoCompensate):
        references = DEPTH + 1

        def compensate(self, state, field):
            return state.ref

    with pytest.raises(TypeError, match="compensate"):
        check(NoCompensate())
    with pytest.raises(TypeError, match="references"):
        check(TooManyReferences())
    TooManyReferences.references = 1
    assert check(TooManyReferences()).references == 1


def test_state_push_is_8bit_bounded_and_immutable():
    x = torch.rand(1, 6, 32, 64) * 1.2 - 0.1  # a 90x50 frame, padded to 128x64 luma
    state = DecodedPictures.intra(x, (90, 50))
    ref = state.ref
    assert torch.equal(ref * 255, (ref * 255).round()) and ref.min() >= 0 and ref.max() <= 1
    # padding is the visible part's edge, as the decoder's to_tensor(to_frame(.)) makes it
    assert torch.equal(ref, to_tensor(to_frame(x, 90, 50), 90, 50))
    states = [state]
    for k in range(DEPTH + 1):
        states.append(states[-1].push(torch.full_like(x, k / 10), torch.full((1, 2, 64, 128), float(k))))
    assert [len(s.frames) for s in states] == [1, 2, 3, 3, 3][:len(states)]
    assert len(states[0].frames) == 1 and states[0].ref is ref  # pushing made new states
    last = states[-1]
    assert [f.mean().item() for f in last.frames] == pytest.approx([0.3, 0.2, 0.1], abs=2e-3)
    assert [m[0, 0, 0, 0].item() for m in last.motion] == [3.0, 2.0, 1.0]
    # training: the rounding is straight through, the clamp is not
    y = (torch.rand(1, 6, 4, 4) * 1.4 - 0.2).requires_grad_()
    DecodedPictures.intra(y).ref.sum().backward()
    assert torch.equal(y.grad, ((y >= 0) & (y <= 1)).float())


@pytest.mark.parametrize("name", available())
def test_training_state_equals_the_coders_state(name):
    """The reference a training step passes on is the one encoder and decoder pass on (rounded coding,
    no noise): one state update, used by all three."""
    torch.manual_seed(0)
    codec = InterCodec(name, QUALITIES).eval()
    cur, ref = _pair(seed=12)
    state = DecodedPictures.intra(ref)
    for _ in range(2):  # a history of decoded motion, so every predictor of the module is usable
        state = state.push(ref, torch.randn(1, codec.motion.channels, 64, 64))
    fields = []
    for k in range(codec.motion.usable(state)):
        with torch.no_grad():
            enc = Encode(TAGS)
            after_enc = codec(cur, state, 3, enc, predictor=k)[3]
            fields.append(after_enc.motion[0])
            after_dec = codec(None, state, 3, Decode(TAGS, enc.payloads()))[3]  # reads k from the stream
            after_train = codec(cur, state, 3, Train(noise=False), predictor=k)[3]
        for other in (after_dec, after_train):
            assert len(other.frames) == DEPTH
            assert all(torch.equal(a, b) for a, b in zip(after_enc.frames, other.frames))
            assert all(torch.equal(a, b) for a, b in zip(after_enc.motion, other.motion))
    assert codec.motion.usable(state) == codec.motion.predictors
    assert all(not torch.equal(fields[0], f) for f in fields[1:])  # each predictor changes the field


@pytest.mark.parametrize("name", available())
def test_decoder_never_estimates_and_resets_at_intra_frames(name, tmp_path, monkeypatch):
    """Encode 7 frames with intra period 3; decode with every module's estimate() raising: the decoder
    runs no encoder-only analysis, and its state holds one frame after each intra frame."""
    from conftest import clip_frames
    from flowcodec.codec.decoder import SequenceDecoder
    from flowcodec.codec.encoder import SequenceEncoder
    from flowcodec.codec.model import VideoModel
    torch.manual_seed(0)
    model = VideoModel(name).eval()
    enc = SequenceEncoder(model, 40, 24, 3, intra_period=3, intra_mode="learned")
    coded = [enc.encode(f) for f in clip_frames(40, 24, 7, seed=4)]

    def refuse(*args, **kwargs):
        raise AssertionError("the decoder called estimate()")
    for cls in {type(m) for m in model.modules() if isinstance(m, MotionModel)}:
        monkeypatch.setattr(cls, "estimate", refuse)
    dec = SequenceDecoder(model, 40, 24, 3)
    depths = []
    for ftype, payload, recon in coded:
        frame = dec.decode(ftype, payload)
        assert all(np.array_equal(a, b) for a, b in zip(frame, recon))
        depths.append(len(dec.state.frames))
    assert depths == [1, 2, 3, 1, 2, 3, 1]


# --- approaches 4 (temporal) and 6 (higher order): what they predict from decoded motion ---------

def _photo(seed=0, size=400):
    """A smooth random YUV 4:4:4 'photograph' for rendered camera motion."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, size // 8, size // 8, generator=g), size=(size, size),
                                        mode="bicubic", align_corners=False)
    return (x[0].clamp(0, 1) * 255).to(torch.uint8).numpy()


def _camera(steps, frames=4, size=128):
    """Rendered camera clip whose pose advances by steps(t) = (dx, dy, zoom factor, angle) at frame t."""
    from flowcodec.train.data import camera_clip
    pose, poses = np.array([0.0, 0.0, 1.0, 0.0]), []
    for t in range(frames):
        poses.append(pose.copy())
        dx, dy, zoom, angle = steps(t)
        pose = np.array([pose[0] + dx, pose[1] + dy, pose[2] * zoom, pose[3] + angle])
    return camera_clip(_photo(), poses, size, size, origin=(130, 130))


def _history(flows, upto):
    """The decoder state before frame ``upto`` as far as motion goes: the ground-truth motion of the
    frames before it, newest first (a state holds DEPTH frames)."""
    frames = tuple(torch.zeros(1, 6, 64, 64) for _ in range(DEPTH))
    motion = tuple(flows[t - 1][None] for t in range(upto - 1, max(0, upto - DEPTH), -1))
    return DecodedPictures(frames, motion + (None,) * (DEPTH - len(motion)))


def _epe(a, b, border=16):
    return torch.linalg.vector_norm(a - b, dim=1)[..., border:-border, border:-border].mean().item()


def test_forward_backward_consistency_marks_the_disoccluded_area():
    """A 16x16 square moves 6 pixels right over a still background: the background it uncovers (6
    columns behind it) has no consistent motion; everything else has."""
    from flowcodec.motion.warp import occluded
    back, fwd = torch.zeros(1, 2, 64, 64), torch.zeros(1, 2, 64, 64)
    back[:, 0, 20:36, 26:42] = -6.0  # current -> reference, on the square's current pixels
    fwd[:, 0, 20:36, 20:36] = 6.0  # reference -> current, on its previous pixels
    want = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    want[:, :, 20:36, 20:26] = True
    assert torch.equal(occluded(back, fwd), want)


def test_higher_order_prediction_follows_acceleration():
    """Constant acceleration (pan speeding up by 1.5 px/frame, slight zoom and rotation): the quadratic
    predictor's end-point error is a fraction of the linear one's; at constant velocity both are small."""
    from flowcodec.motion.higher_order import HigherOrderFlow
    m = HigherOrderFlow()
    _, flows = _camera(lambda t: (1.0 + 1.5 * t, -0.5 - 0.75 * t, 1.004, 0.003))
    state = _history(flows, 3)
    assert m.usable(state) == 3 and m.usable(_history(flows, 2)) == 2 and m.usable(_history(flows, 1)) == 1
    linear, quadratic = (_epe(m.predict(state, k), flows[2][None]) for k in (1, 2))
    speed = torch.linalg.vector_norm(flows[2], dim=0).mean().item()
    assert quadratic < 0.25 * linear and quadratic < 0.05 * speed, (linear, quadratic, speed)
    _, steady = _camera(lambda t: (3.0, -1.5, 1.004, 0.003))
    state = _history(steady, 3)
    assert max(_epe(m.predict(state, k), steady[2][None]) for k in (1, 2)) < 0.1


def test_temporal_prediction_of_constant_velocity():
    """The temporal module's prediction (constant velocity carried along the flow, plus its correction,
    small at initialisation) leaves almost nothing to code on a constant-velocity pan/zoom/rotation."""
    from flowcodec.motion.temporal import TemporalFlow
    torch.manual_seed(0)
    m = TemporalFlow().eval()
    _, flows = _camera(lambda t: (3.0, -1.5, 1.004, 0.003))
    state = _history(flows, 2)
    assert m.usable(state) == 2 and m.predict(state, 0) is None
    with torch.no_grad():
        err = _epe(m.predict(state, 1), flows[1][None])
    assert err < 0.1 and err < 0.05 * torch.linalg.vector_norm(flows[1], dim=0).mean().item()
