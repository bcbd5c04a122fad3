"""Motion approaches on camera motion with exactly known flow, including acceleration.

``render`` writes clips of a still picture seen by a moving camera (``train.data.camera_clip``) as y4m,
with their ground-truth backward flows (.npy). The pictures are the first frames of the dev clips,
which no model is trained on; the camera pans at a speed that grows every frame (constant acceleration),
with a slight zoom and rotation that speed up too, or at constant velocity. Evaluate them like any clip:

    python benchmarks/accelerating.py render --dev ../shared/data/dev --out rendered
    flowcodec eval rendered/*.y4m --motion pyramid temporal higher_order --anchors x265-medium --out rendered/eval

``epe`` then decodes every bitstream of that evaluation and prints, per clip, motion approach and
quality, the end-point error of the decoded motion field against the ground truth (luma pixels, mean
over the P-frames, 16-pixel border excluded), for ``decomposed`` that of its global (camera) field alone
over the P-frames that code one, the share of P-frames using each motion predictor, and the motion
share of the P-frame bits (global parameters included):

    python benchmarks/accelerating.py epe rendered/eval
"""
import argparse
import json
import os

import numpy as np
import torch

from flowcodec.codec.bitstream import FrameType, Reader
from flowcodec.codec.decoder import SequenceDecoder
from flowcodec.codec.model import load, weights_path
from flowcodec.entropy.coder import Decode
from flowcodec.frames import to_frame
from flowcodec.io import VideoInfo, Y4MWriter, open_video
from flowcodec.motion.decomposed import global_field
from flowcodec.train.data import camera_clip

FRAMES = 33
BORDER = 16
# name: (dev clip, window width, height, origin (x, y), step at frame t as (dx, dy, zoom, angle))
CLIPS = {
    "accel_pan_bikes": ("bikes_640x272_25", 320, 192, (20, 40),
                        lambda t: (0.5 + 0.25 * t, 0.04 * t, 1.0, 0.0)),
    "accel_zoom_vtest": ("vtest_384x288_10", 256, 192, (40, 48),
                         lambda t: (0.1 * t, -0.05 * t, 1.0 + 0.0004 * t, 0.0002 * t)),
    "steady_pan_bikes": ("bikes_640x272_25", 320, 192, (20, 40),
                         lambda t: (3.0, 0.5, 1.0, 0.0)),
}


def _picture(path):
    """First frame of a y4m as YUV 4:4:4 uint8 (3,H,W); chroma repeated 2x2."""
    with open_video(path, frames=1) as src:
        y, u, v = next(iter(src))
    up = lambda c: np.repeat(np.repeat(c, 2, 0), 2, 1)[: y.shape[0], : y.shape[1]]
    return np.stack((y, up(u), up(v)))


def render(dev, out):
    os.makedirs(out, exist_ok=True)
    for name, (clip, w, h, origin, step) in CLIPS.items():
        pose, poses = np.array([0.0, 0.0, 1.0, 0.0]), []
        for t in range(FRAMES):
            poses.append(pose.copy())
            dx, dy, zoom, angle = step(t)
            pose = np.array([pose[0] + dx, pose[1] + dy, pose[2] * zoom, pose[3] + angle])
        frames, flows = camera_clip(_picture(os.path.join(dev, clip + ".y4m")), poses, w, h, origin)
        with Y4MWriter(os.path.join(out, name + ".y4m"), VideoInfo(w, h, 25, 1)) as writer:
            for f in frames:
                writer.write(to_frame(f[None], w, h))
        np.save(os.path.join(out, name + ".flow.npy"), flows.numpy().astype(np.float32))
        speed = np.linalg.norm(flows.numpy(), axis=1).mean((1, 2))
        print(f"{name}: {w}x{h}, {FRAMES} frames, speed {speed[0]:.1f} -> {speed[-1]:.1f} px/frame")


class _Choices(Decode):
    """Decode that remembers the motion predictor of each P-frame and the last global motion
    parameters decoded (``decomposed``)."""
    chosen, params = [], None

    def choice(self, value, n):
        k = super().choice(value, n)
        _Choices.chosen.append(k)
        return k

    def integers(self, values, scales, tag):
        _Choices.params = super().integers(values, scales, tag)
        return _Choices.params


class _Decoder(SequenceDecoder):
    coder = _Choices


def _epe(field, truth):
    """Mean end-point error (luma pixels) of a field against the ground truth, border excluded."""
    return torch.linalg.vector_norm(field - truth, dim=0)[BORDER:-BORDER, BORDER:-BORDER].mean().item()


def epe(folder):
    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)
    weights = results["protocol"]["weights"]
    print(f"{'clip':>18} {'motion':>13} {'q':>2} {'EPE px':>7} {'global EPE':>10} {'predictors 0/1/2':>17} "
          f"{'motion share':>12}")
    for name, clip in results["clips"].items():
        truth = torch.from_numpy(np.load(os.path.splitext(clip["path"])[0] + ".flow.npy"))
        for p in clip["points"]:
            if p["kind"] != "flowcodec":
                continue
            path = (os.path.join(weights, p["codec"] + ".safetensors") if weights and os.path.isdir(weights)
                    else weights or weights_path(p["codec"]))
            model, _ = load(path)
            errors, global_errors, _Choices.chosen = [], [], []
            with open(os.path.join(folder, p["bitstream"]), "rb") as f:
                reader = Reader(f)
                h = reader.header
                dec = _Decoder.for_header(model, h)
                for t, (ftype, payload, quality) in enumerate(reader):
                    _Choices.params = None
                    dec.decode(ftype, payload, quality)
                    if ftype == FrameType.INTER:
                        field = dec.last[2][0, :2, : h.height, : h.width]
                        errors.append(_epe(field, truth[t - 1]))
                        if _Choices.params is not None and _Choices.params.numel():
                            camera = global_field(_Choices.params, field.shape[-2:], (h.width, h.height))[0]
                            global_errors.append(_epe(camera, truth[t - 1]))
            counts = np.bincount(_Choices.chosen, minlength=3) if _Choices.chosen else np.zeros(3, int)
            inter = [fr for fr in p["frames"] if fr["type"] == "INTER"]
            motion = sum(fr["motion_bytes"] + fr.get("global_bytes", 0) for fr in inter)
            share = motion / max(1, sum(fr["bytes"] for fr in inter))
            camera = f"{np.mean(global_errors):10.3f}" if global_errors else f"{'-':>10}"
            print(f"{name:>18} {p['codec']:>13} {p['quality']:>2} {np.mean(errors):7.3f} {camera} "
                  f"{'/'.join(str(c) for c in counts):>17} {100 * share:11.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--dev", default="../shared/data/dev")
    r.add_argument("--out", default="rendered")
    e = sub.add_parser("epe")
    e.add_argument("folder")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with torch.no_grad():
        render(a.dev, a.out) if a.cmd == "render" else epe(a.folder)


if __name__ == "__main__":
    main()
