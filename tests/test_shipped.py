"""Properties of the shipped weights (the product), on the bundled clip."""

import numpy as np
import pytest
import torch

from flowcodec.codec.bitstream import FrameType
from flowcodec.codec.decoder import SequenceDecoder
from flowcodec.codec.encoder import SequenceEncoder
from flowcodec.frames import pack
from flowcodec.codec.model import load, weights_path
from flowcodec.motion import DecodedPictures
from flowcodec.codec.options import LAMBDAS
from flowcodec.eval.metrics import psnr_yuv
from flowcodec.io import BUNDLED_CLIP, open_video
from flowcodec.motion import available

CLIP = BUNDLED_CLIP


@pytest.fixture(scope="module")
def clip():
    with open_video(CLIP, frames=4) as src:
        return list(src), src.info


@pytest.mark.parametrize("motion", available())
def test_rate_falls_and_quality_rises_with_level(motion, clip):
    frames, info = clip
    frames = frames[:2]  # an intra frame and a P-frame at each of the nine levels, for seven modules
    model, _ = load(weights_path(motion))
    points = []
    for quality in range(1, len(LAMBDAS) + 1):
        enc = SequenceEncoder(model, info.width, info.height, quality)
        size, psnrs = 0, []
        for f in frames:
            _, payload, recon = enc.encode(f)
            size += len(payload)
            psnrs.append(psnr_yuv(f, recon)["yuv"])
        points.append((size, np.mean(psnrs)))
    sizes, psnrs = zip(*points)
    assert list(sizes) == sorted(sizes) and len(set(sizes)) == len(sizes), points
    assert list(psnrs) == sorted(psnrs), points


def test_trained_pyramid_flow_recovers_a_shift():
    """A global shift of a real frame is estimated to within a pixel away from the borders."""
    model, _ = load(weights_path("pyramid"))
    with open_video(CLIP, frames=1) as src:
        y, u, v = next(iter(src))
    y = torch.from_numpy(y.astype(np.float32) / 255)[None, None]
    uv = torch.from_numpy(np.stack((u, v)).astype(np.float32) / 255)[None]
    dx, dy = 4, -2  # ref is the frame moved by (dx, dy): cur(p) = ref(p + (dx, dy))
    ref = pack(torch.roll(y, (dy, dx), (2, 3)), torch.roll(uv, (dy // 2, dx // 2), (2, 3)))
    cur = pack(y, uv)
    with torch.no_grad():
        flow = model.inter.motion.estimate(cur[..., :64, :96], DecodedPictures.intra(ref[..., :64, :96]))
    inner = flow[0, :, 24:-24, 24:-24]
    assert abs(inner[0].median().item() - dx) < 1.0 and abs(inner[1].median().item() - dy) < 1.0


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_intra_at_a_scene_cut(clip, adaptive):
    """A cut to unrelated content (the clip's negative) costs more as a P-frame than as an intra frame:
    adaptive intra codes it as intra, starts a new intra period there and leaves the continuous frames
    as P-frames; the decoder rebuilds exactly the encoder's frames. Without it the cut is a P-frame."""
    frames, info = clip
    cut = [tuple(255 - p for p in f) for f in frames[:3]]
    model, _ = load(weights_path("pyramid"))
    enc = SequenceEncoder(model, info.width, info.height, 3, intra_period=4, adaptive_intra=adaptive)
    dec = SequenceDecoder(model, info.width, info.height)
    types = []
    for f in frames[:3] + cut + frames[:2]:
        ftype, payload, recon = enc.encode(f)
        types.append(ftype)
        assert all(np.array_equal(a, b) for a, b in zip(dec.decode(ftype, payload, 3), recon))
    intra = [i for i, t in enumerate(types) if t != FrameType.INTER]
    assert intra == ([0, 3, 6] if adaptive else [0, 4])


def test_a_shorter_ladder_file_loads_with_its_levels_unchanged(tmp_path, clip):
    """Weights saved with 6 quality levels (the shipped files) load into the 9-level ladder: the file
    and its hash stay as they are, levels 1-6 code exactly as the 6-level model does (so streams written
    before the ladder grew decode unchanged), and levels 7-9 continue the gains' trend."""
    from flowcodec.codec.model import VideoModel, load_part, save
    frames, info = clip
    torch.manual_seed(5)
    path = str(tmp_path / "six.safetensors")
    save(VideoModel("pyramid", 6), path)
    six = VideoModel("pyramid", 6)
    load_part(six, path)
    nine, _ = load(path)
    assert six.levels == 6 and nine.levels == len(LAMBDAS) == 9
    for quality in (1, 6):
        coded = []
        for model in (six.eval(), nine):
            enc = SequenceEncoder(model, info.width, info.height, quality, adaptive_intra=False)
            coded.append([enc.encode(f)[1] for f in frames[:3]])
        assert coded[0] == coded[1]
    gains = nine.inter.res.gain.detach().abs().mean(1)
    assert (gains[1:] > gains[:-1]).all()  # finer quantization at every further level


def test_decomposed_codes_a_camera_pan_as_global_motion(clip):
    """A camera panning over the bundled clip's first frame (2 px/frame right, 1 down, slight zoom):
    the shipped decomposed model codes P-frames with a global model in its own sub-stream (1 of the 7
    with the shipped weights since format 4, 2 before; chosen in R + λ·D), whose mean motion is the pan's to half a pixel (the
    flow estimator itself is off by about a quarter pixel on this 128×96 crop, and the fit follows it),
    and the decoder reproduces the encoder."""
    from flowcodec.codec.bitstream import payload_unpack
    from flowcodec.entropy.coder import Decode
    from flowcodec.frames import to_frame
    from flowcodec.motion.decomposed import global_field
    from flowcodec.train.data import camera_clip
    frames, info = clip
    y, u, v = frames[0]
    up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)
    poses = [np.array([2.0 * t, 1.0 * t, 1.002 ** t, 0.0]) for t in range(8)]
    packed, truth = camera_clip(np.stack((y, up(u), up(v))), poses, 128, 96, origin=(20, 16))
    model, _ = load(weights_path("decomposed"))
    enc = SequenceEncoder(model, 128, 96, 4, adaptive_intra=False)

    class Params(Decode):
        last = None

        def integers(self, values, scales, tag):
            Params.last = super().integers(values, scales, tag)
            return Params.last

    dec = SequenceDecoder(model, 128, 96)
    dec.coder = Params
    errors = []
    for t, f in enumerate(to_frame(packed[i:i + 1], 128, 96) for i in range(len(packed))):
        ftype, payload, recon = enc.encode(f)
        Params.last = None
        assert all(np.array_equal(a, b) for a, b in zip(dec.decode(ftype, payload, 4), recon))
        if t and "global" in payload_unpack(payload)[0]:
            field = global_field(Params.last, (96, 128), (128, 96))[0]
            errors.append((field - truth[t - 1]).mean((1, 2)).abs().max().item())
    assert len(errors) >= 1 and max(errors) < 0.5, errors


def test_slow_preset_searches_latents_to_a_lower_cost(clip):
    """The latent search (``codec/search.py``) finds, on the shipped pyramid, P-frames of lower real
    R + λ·D (payload bytes, decoded frame) than the medium preset codes, and a decoder given only the
    payloads reconstructs the slow encoder's frames."""
    frames, info = clip
    model, _ = load(weights_path("pyramid"))
    costs = {}
    for preset in ("medium", "slow"):
        enc = SequenceEncoder(model, info.width, info.height, 4, adaptive_intra=False, preset=preset)
        dec = SequenceDecoder(model, info.width, info.height)
        costs[preset] = []
        for f in frames:
            ftype, payload, recon = enc.encode(f)
            assert all(np.array_equal(a, b) for a, b in zip(recon, dec.decode(ftype, payload, 4)))
            if ftype == FrameType.INTER:
                costs[preset].append(enc._cost(f, (ftype, payload, enc.state)))
    assert len(costs["slow"]) == 3
    assert sum(costs["slow"]) < 0.98 * sum(costs["medium"]), costs
