"""Motion: backward warping in pixel units, the packed-frame warp, the registry, that the P-frame
codec is trainable end to end (gradients reach every parameter) and exactly decodable, and the motion
contract and decoder state over every registered module."""
import os

import numpy as np
import pytest
import torch

from flowcodec.codec.inter import InterCodec
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
        pred = m.compensate(state, field)
        assert pred.shape == (2, m.features_width, 32, 48) and m.reconstruct(pred).shape == ref.shape


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
        assert set(coder.bits) == set(codec.tags)
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
        enc = Encode(codec.tags)
        state = DecodedPictures.intra(ref)
        x_enc, pred_enc, field_enc, _ = codec(cur, state, q, enc)
        dec = Decode(codec.tags, enc.payloads())
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
        pred = m.reconstruct(m.compensate(state, torch.zeros(1, m.channels, 64, 96)))
    # pixel space: bilinear sampling at whole pixels, float rounding only; feature space: the identity
    # alignment and reconstruction of a fresh module, up to their small initial corrections
    assert (pred - state.ref).abs().max() < (1e-5 if m.space == "pixels" else 0.02)


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
            enc = Encode(codec.tags)
            after_enc = codec(cur, state, 3, enc, predictor=k)[3]
            fields.append(after_enc.motion[0])
            after_dec = codec(None, state, 3, Decode(codec.tags, enc.payloads()))[3]  # reads k from the stream
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
    dec = SequenceDecoder(model, 40, 24)
    depths = []
    for ftype, payload, recon in coded:
        frame = dec.decode(ftype, payload, 3)
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


# --- approach 5 (decomposed): the global camera model ------------------------------------------

def _affine_params(flow):
    """Ground-truth parameters (a, b, c) in 1/PEL pixel of an affine flow (2,H,W): the flow at the
    top-left pixel and its change across the width and the height."""
    from flowcodec.motion.decomposed import PEL
    h, w = flow.shape[-2:]
    a = flow[:, 0, 0]
    b = (flow[:, 0, -1] - a) * w / (w - 1)
    c = (flow[:, -1, 0] - a) * h / (h - 1)
    return torch.cat((a, b, c)) * PEL


def test_global_fit_recovers_camera_motion():
    """Pan + zoom + rotation (exactly affine): the fitted affine parameters match the ground truth to
    1/8 pixel, the field they give matches the flow everywhere, and translation-only gets the mean."""
    from flowcodec.motion.decomposed import PEL, fit, global_field
    _, flows = _camera(lambda t: (3.0, -1.5, 1.01, 0.01), frames=2, size=128)
    gt = flows[:1]
    params = fit(gt, None, 6)
    assert (params[0] - _affine_params(gt[0])).abs().max() < 1.0, (params, _affine_params(gt[0]))
    assert _epe(global_field(params.round(), (128, 128), None), gt, border=1) < 0.1
    shift = fit(gt, None, 2)[0] / PEL
    assert torch.allclose(shift, gt[0].mean((1, 2)), atol=0.1), (shift, gt[0].mean((1, 2)))


def test_global_fit_ignores_an_object_that_moves_on_its_own():
    """A camera zoom/pan field with a 40%-of-the-frame object moving its own way, plus noise: the robust
    fit returns the camera's parameters; a plain least-squares fit (no reweighting) would not."""
    from flowcodec.motion.decomposed import fit, global_field
    torch.manual_seed(0)
    truth = torch.tensor([[24.0, -12.0, -20.0, 6.0, -4.0, -18.0]])  # 1/8 px: pan, zoom out, rotation
    flow = global_field(truth, (96, 160), None).clone()
    flow[:, :, 10:70, 20:125] = torch.tensor([-5.0, 4.0])[:, None, None]  # the object
    flow += 0.2 * torch.randn_like(flow)
    assert (fit(flow, None, 6) - truth).abs().max() < 1.0
    # one weighted round from the median: close to plain least squares, and pulled by the object
    assert (fit(flow, None, 6, rounds=1) - truth).abs().max() > 4.0


def test_global_fit_reads_only_the_visible_frame():
    """Padding replicated past the visible size must not pull the fit: the visible 100×70 of a rotating
    field, padded with garbage, gives the parameters of the visible part (in its own W×H units)."""
    from flowcodec.motion.decomposed import fit, global_field
    truth = torch.tensor([[8.0, 16.0, -24.0, 12.0, 10.0, 30.0]])
    flow = torch.full((1, 2, 128, 128), 50.0)
    flow[..., :70, :100] = global_field(truth, (128, 128), (100, 70))[..., :70, :100]
    assert (fit(flow, (100, 70), 6) - truth).abs().max() < 0.5


def test_global_parameters_round_trip_exactly():
    """Side parameters through the range coder: decoded exactly, clamped to the documented range; the
    training rate estimate is what the range coder spends."""
    from flowcodec.entropy.coder import PARAM_RANGE
    from flowcodec.motion.decomposed import PARAM_SCALES
    values = torch.tensor([[0.4, -37.6, 3.0, PARAM_RANGE + 900.0, -5.0, 2.0 * PARAM_RANGE]])
    want = torch.tensor([[0.0, -38.0, 3.0, PARAM_RANGE, -5.0, PARAM_RANGE]])
    enc = Encode(("global",))
    assert torch.equal(enc.integers(values, PARAM_SCALES, "global"), want)
    dec = Decode(("global",), enc.payloads())
    assert torch.equal(dec.integers(None, PARAM_SCALES, "global"), want)
    dec.finish()
    typical = torch.tensor([[70.0, -30.0, 9.0, -4.0, 0.0, 12.0]] * 8)  # 8 frames' parameters
    enc, train = Encode(("global",)), Train()
    for row in typical:
        enc.integers(row[None], PARAM_SCALES, "global")
    train.integers(typical, PARAM_SCALES, "global")
    bits = train.bits["global"].sum().item()
    coded = 8 * len(enc.payloads()[0])  # whole 32-bit words
    assert coded - 64 < bits <= coded, (bits, coded)


def test_decomposed_leaves_little_local_motion_on_camera_motion():
    """With the shipped pyramid's flow estimator, a rendered pan + zoom + rotation is nearly all global:
    the affine parameters are within a quarter pixel of the truth and the local flow left to code
    averages under a quarter pixel."""
    from flowcodec.codec.model import VideoModel, load_part
    from flowcodec.motion.decomposed import PEL, fit, global_field
    model = VideoModel("decomposed")
    load_part(model, os.path.join(os.path.dirname(__file__), "..", "flowcodec", "weights", "pyramid.safetensors"),
              "inter.motion.")
    frames, flows = _camera(lambda t: (2.5, -1.25, 1.008, 0.006), frames=2, size=192)
    with torch.no_grad():
        est = model.inter.motion.estimate(frames[1:2], DecodedPictures.intra(frames[:1]))
    params = fit(est, None, 6).round()
    assert (params[0] - _affine_params(flows[0])).abs().max() < 0.25 * PEL, (params, _affine_params(flows[0]))
    local = est - global_field(params, (192, 192), None)
    assert torch.linalg.vector_norm(local, dim=1)[..., 16:-16, 16:-16].mean() < 0.25


def test_hyperparameters_travel_in_the_weights_file(tmp_path):
    """A module's hyperparameters are stored in the weights' config and restored when loaded; an
    unknown one is refused when the module is built."""
    from flowcodec.codec.model import VideoModel, load, save
    model = VideoModel("temporal", hyper={"step": 8})
    assert model.inter.motion.hyper == {**type(model.inter.motion).hyper, "step": 8}
    save(model, str(tmp_path / "t.safetensors"))
    loaded, _ = load(str(tmp_path / "t.safetensors"))
    assert loaded.inter.motion.hyper["step"] == 8 and loaded.config() == model.config()
    with pytest.raises(TypeError, match="no hyperparameter radius"):
        create("pyramid", radius=4)


def test_a_module_stream_is_left_out_when_empty():
    """decomposed without a global model (predictor 0) codes nothing in its 'global' sub-stream: the
    payload leaves it out, and the decoder refuses the same frame with the empty stream written in (one
    frame, one coding)."""
    from flowcodec.codec.bitstream import FrameType, payload_pack
    from flowcodec.codec.decoder import SequenceDecoder
    from flowcodec.codec.model import VideoModel
    from flowcodec.errors import BitstreamError
    from flowcodec.layers.exact import exact
    torch.manual_seed(0)
    model = VideoModel("decomposed").eval()
    cur, ref = _pair(seed=13)
    state = DecodedPictures.intra(ref.double())
    with exact():  # as the sequence coders compute
        enc = Encode(model.inter.tags)
        x_hat = model.inter(cur, state, 2, enc, predictor=0)[0]
    chunks = dict(zip(model.inter.tags, enc.payloads()))
    assert chunks["global"] == b""
    dec = SequenceDecoder(model, 64, 64)
    for tags, ok in ((("motion", "residual"), True), (("motion", "residual", "global"), False)):
        dec.state = state
        payload = payload_pack(tags, [chunks[t] for t in tags])
        if ok:
            dec.decode(FrameType.INTER, payload, 3)
            assert torch.equal(dec.state.ref, state.push(x_hat).ref)
        else:
            with pytest.raises(BitstreamError, match="empty global sub-stream"):
                dec.decode(FrameType.INTER, payload, 3)


def test_decomposed_refines_its_global_translation_to_the_true_shift():
    """A frame moved by exactly (3, 1) pixels and a flow estimate 0.15 pixel off: the encoder codes the
    translation (3, 1) exactly (24, 8 in 1/8 pixel), found by the prediction error of nearby values,
    where the fit alone codes the estimate's (25, 9)."""
    from flowcodec.entropy.coder import Encode
    from flowcodec.layers.exact import exact
    from flowcodec.motion.decomposed import PEL
    torch.manual_seed(0)
    module = create("decomposed").eval()
    ref = _image(1, 6, 48, 64, seed=5)  # packed: luma 96x128
    cur = warp_frame(ref, _flow(1, 96, 128, 3.0, 1.0))  # cur(p) = ref(p + (3, 1))
    state = DecodedPictures.intra(ref.double())
    estimate = _flow(1, 96, 128, 3.15, 1.15)
    with exact():
        fitted = module.predict(state, 1, Encode(("global",)), estimate)
        refined = module.predict(state, 1, Encode(("global",)), estimate, cur.double())
    assert torch.allclose(fitted[:, :, 10, 10].float(), torch.tensor([[25 / PEL, 9 / PEL]]))
    assert torch.equal(refined[:, :, 10, 10].float(), torch.tensor([[3.0, 1.0]]))
