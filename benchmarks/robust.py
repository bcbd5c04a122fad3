"""Robustness on content outside the dev clips: camera motion over sharp photographs and flat scenes.

``render`` writes 960×544 clips of registry photographs that no model trains on (the Plasma wallpapers
in ``train.data.HELD_OUT``, fetched by ``flowcodec data fetch``) seen by a camera that pans slowly or
fast with a slight rotation and zoom (``train.data.camera_clip``), and a flat synthetic scene (smooth
gradient and soft shapes, where x265 reaches 55–60 dB). Evaluate them beside the dev clips like any
clip, then ``report``:

    python benchmarks/robust.py render --src data/src --out robust
    flowcodec eval robust/*.y4m ../shared/data/dev/*.y4m --frames 33 --motion pyramid \\
        --anchors x265-medium --out robust/eval
    python benchmarks/robust.py report robust/eval

``report`` prints per clip and motion: the BD-rate against x265-medium (empty where the PSNR ranges do
not overlap), both PSNR ranges, and the P-frames that fall more than ``DROP_DB`` below the preceding
intra frame while costing at least as many bytes as it did (coded worse than intra would code them).
"""
import argparse
import json
import os

import numpy as np
from PIL import Image

from flowcodec.eval.run import points_bd_rate
from flowcodec.frames import to_frame
from flowcodec.io import VideoInfo, Y4MWriter
from flowcodec.train.data import PLASMA, _rgb_to_yuv, camera_clip

WIDTH, HEIGHT, FRAMES = 960, 544, 33
DROP_DB = 3.0
ANCHOR = "x265-medium"
# name: (picture: a held-out Plasma wallpaper or "flat", window origin (x, y), per-frame camera step
# (dx, dy, zoom, angle))
CLIPS = {
    "foliage_slow": ("OneStandsOut", (700, 500), (4.0, 0.5, 1.001, 0.001)),
    "forest_fast": ("Path", (300, 400), (12.0, 2.0, 1.003, 0.003)),
    "harbour_slow": ("EveningGlow", (800, 600), (3.0, -1.0, 0.999, -0.001)),
    "flat_pan": ("flat", (300, 200), (2.0, 0.3, 1.0, 0.0)),
}


def flat_picture(width=1800, height=1200) -> np.ndarray:
    """A flat synthetic scene, YUV 4:4:4 uint8: a luma gradient with a slow wave, three soft blobs,
    and chroma that drifts slowly."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    y = 60 + 120 * xs / width + 30 * np.sin(ys / 300.0)
    for cx, cy, r, v in ((500, 400, 150, 60), (1200, 700, 220, -40), (900, 300, 90, 30)):
        y += v * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * r * r))
    u, v = 128 + 20 * np.cos(xs / 400.0), 128 - 15 * np.sin(ys / 250.0)
    return np.stack((y, u, v)).round().clip(0, 255).astype(np.uint8)


def render(src, out, frames):
    os.makedirs(out, exist_ok=True)
    for name, (picture, origin, step) in CLIPS.items():
        if picture == "flat":
            yuv = flat_picture()
        else:
            path = os.path.join(src, PLASMA.format(picture))
            if not os.path.exists(path):
                raise SystemExit(f"{path} missing: run 'flowcodec data fetch' first (or pass --src)")
            yuv = _rgb_to_yuv(np.asarray(Image.open(path).convert("RGB")))
        dx, dy, zoom, angle = step
        poses = [np.array([dx * t, dy * t, zoom ** t, angle * t]) for t in range(frames)]
        clip, _ = camera_clip(yuv, poses, WIDTH, HEIGHT, origin)
        with Y4MWriter(os.path.join(out, name + ".y4m"), VideoInfo(WIDTH, HEIGHT, 25, 1)) as writer:
            for f in clip:
                writer.write(to_frame(f[None], WIDTH, HEIGHT))
        print(f"{name}: {picture}, {frames} frames, step {step}")


def worse_than_intra(frames):
    """P-frames more than DROP_DB below the preceding intra frame that cost at least its bytes."""
    bad, intra = 0, None
    for f in frames:
        if f["type"] != "INTER":
            intra = f
        elif f["yuv"] < intra["yuv"] - DROP_DB and f["bytes"] >= intra["bytes"]:
            bad += 1
    return bad


def report(folder):
    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)
    print(f"{'clip':>22} {'motion':>13} {'BD-rate':>8} {'flowcodec dB':>13} {ANCHOR + ' dB':>15} "
          f"{'P worse than intra':>18} {'intra share':>11}")
    for name, clip in results["clips"].items():
        anchor = [p for p in clip["points"] if p["codec"] == ANCHOR]
        for motion in sorted({p["codec"] for p in clip["points"] if p["kind"] == "flowcodec"}):
            points = [p for p in clip["points"] if p["codec"] == motion]
            bd = points_bd_rate(anchor, points)
            bad = sum(worse_than_intra(p["frames"]) for p in points)
            p_frames = sum(f["type"] == "INTER" for p in points for f in p["frames"])
            intra = sum(f["type"] != "INTER" for p in points for f in p["frames"])
            span = lambda c: f"{min(p['psnr_yuv'] for p in c):.1f}–{max(p['psnr_yuv'] for p in c):.1f}" \
                if c else "—"
            print(f"{name:>22} {motion:>13} {'—' if np.isnan(bd) else f'{bd:+.1f}%':>8} {span(points):>13} "
                  f"{span(anchor):>15} {f'{bad} of {p_frames}':>18} "
                  f"{100 * intra / max(1, intra + p_frames):10.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("--src", default="data/src", help="the sources folder of 'flowcodec data fetch'")
    r.add_argument("--out", default="robust")
    r.add_argument("--frames", type=int, default=FRAMES)
    e = sub.add_parser("report")
    e.add_argument("folder")
    a = ap.parse_args()
    render(a.src, a.out, a.frames) if a.cmd == "render" else report(a.folder)


if __name__ == "__main__":
    main()
