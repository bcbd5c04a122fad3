"""Does scale-space flow blur where motion fails? Mean decoded scale on occluded vs visible pixels.

Renders clips with known occlusion from the training photographs (``flowcodec data fetch`` first;
``render_clip`` gives the occlusion mask), codes each frame pair with the scale-space P-frame codec
(rounding, as the real encoder), and prints, per quality level, the mean decoded scale z (blur-stack
level, 0 = sharp) over occluded and over visible pixels, and the share of bits spent on motion.

    python benchmarks/scale_occlusion.py [--weights flowcodec/weights/scale_space.safetensors] [--clips 40]
"""
import argparse
import os

import numpy as np
import torch

from flowcodec.codec.model import load, weights_path
from flowcodec.entropy.coder import Train
from flowcodec.motion import DecodedPictures
from flowcodec.motion.scale_space import LEVELS
from flowcodec.train.data import render_clip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=weights_path("scale_space"))
    ap.add_argument("--data", default="data")
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--size", type=int, default=192)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load(a.weights)
    photos = np.load(os.path.join(a.data, "photos.npz"))
    photos = [photos[k] for k in photos.files]
    rng = np.random.default_rng(1234)  # fixed clips, different from any training step's draws
    pairs = []
    for _ in range(a.clips):
        i, j = rng.integers(0, len(photos), 2)
        frames, _, occluded = render_clip(photos[i], photos[j], 2, a.size, rng)
        pairs.append((frames, occluded[0]))
    print(f"{a.clips} rendered clips {a.size}x{a.size}, occluded share "
          f"{np.mean([o.float().mean().item() for _, o in pairs]):.3f}")
    print(f"{'quality':>7} {'z occluded':>11} {'z visible':>10} {'ratio':>6} {'motion bits':>12}")
    with torch.no_grad():
        for level in range(model.levels):
            occ, vis, mv, total = [], [], 0.0, 0.0
            for frames, mask in pairs:
                coder = Train(noise=False)
                field = model.inter(frames[1:2], DecodedPictures.intra(frames[0:1]), level, coder)[2]
                z = field[0, 2].clamp(0, LEVELS - 1)  # as the warp uses it
                occ.append(z[mask].mean().item() if mask.any() else np.nan)
                vis.append(z[~mask].mean().item())
                mv += coder.bits["motion"].sum().item()
                total += coder.total().sum().item()
            o, v = np.nanmean(occ), np.mean(vis)
            print(f"{level + 1:7d} {o:11.3f} {v:10.3f} {o / max(v, 1e-9):6.2f} {mv / total:11.1%}")


if __name__ == "__main__":
    main()
