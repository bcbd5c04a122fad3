"""Learned intra codec vs HEVC intra (x265) on single frames: the measurement behind the default of
``flowcodec encode --intra``.

For each clip, frames 0, 32, 64, … (the intra frames of the default GOP) are coded by the learned intra
codec at every quality level and by x265 at QPs 20…50; both are real payloads decoded by the decoder's
own functions. Prints bpp / PSNR-YUV per point and the BD-rate of the learned codec against x265
(negative = learned saves bits), and how often ``--intra auto`` would pick each codec.

    python benchmarks/intra_rd.py CLIP.y4m [CLIP ...] [--motion pyramid] [--weights W]
"""
import argparse
import os

import numpy as np
import torch

from flowcodec.codec.bitstream import FrameType
from flowcodec.codec.encoder import SequenceEncoder
from flowcodec.codec.hevc import decode_intra, encode_intra
from flowcodec.codec.model import load, weights_path
from flowcodec.codec.options import LAMBDAS
from flowcodec.eval.metrics import bd_rate, psnr_yuv
from flowcodec.io import BUNDLED_CLIP, open_video

CLIP = BUNDLED_CLIP
QPS = range(20, 51, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", default=[CLIP])
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--weights")
    ap.add_argument("--period", type=int, default=32, help="take every this many frames")
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load(a.weights or weights_path(a.motion))
    print(f"{'clip':>10} {'codec':>8} {'point':>5} {'bpp':>7} {'PSNR-YUV':>8}")
    for clip in a.clips:
        with open_video(clip) as src:
            w, h = src.info.width, src.info.height
            frames = [f for i, f in enumerate(src) if i % a.period == 0]
        pixels = w * h * len(frames)
        name = os.path.basename(clip).split("_")[0]
        curves, picks = {"learned": [], "x265": []}, []
        for q in range(1, len(LAMBDAS) + 1):
            nbytes, psnr = 0, []
            for f in frames:
                t, payload, recon = SequenceEncoder(model, w, h, q, intra_mode="auto").encode(f)
                picks.append(t)
                t, payload, recon = SequenceEncoder(model, w, h, q, intra_mode="learned").encode(f)
                nbytes, psnr = nbytes + len(payload), psnr + [psnr_yuv(f, recon)["yuv"]]
            curves["learned"].append((8 * nbytes / pixels, np.mean(psnr)))
        for qp in QPS:
            payloads = [encode_intra(f, qp) for f in frames]
            psnr = [psnr_yuv(f, decode_intra(p, w, h))["yuv"] for f, p in zip(frames, payloads)]
            curves["x265"].append((8 * sum(map(len, payloads)) / pixels, np.mean(psnr)))
        for codec, pts in curves.items():
            for k, (bpp, psnr) in enumerate(pts):
                point = f"q{k + 1}" if codec == "learned" else f"qp{QPS[k]}"
                print(f"{name:>10} {codec:>8} {point:>5} {bpp:7.4f} {psnr:8.2f}")
        (r1, p1), (r2, p2) = (zip(*curves[c]) for c in ("x265", "learned"))
        learned = sum(t == FrameType.INTRA_LEARNED for t in picks)
        print(f"{name:>10} BD-rate learned vs x265 intra: {bd_rate(r1, p1, r2, p2):+.1f}%; "
              f"--intra auto picks learned for {learned} of {len(picks)} (frame, quality) pairs")


if __name__ == "__main__":
    main()
