"""Rate control (``flowcodec encode --bitrate``) against its targets: per clip and target, the achieved
bit rate from the file on disk, PSNR-YUV of the decoded file, the range of qualities the controller
chose, the encode time, and that a decoder in another process gives the encoder's reconstruction.

    python benchmarks/ratecontrol.py CLIPS... [--bpp 0.04 0.08 0.16] [--motion pyramid] [--json OUT]
        [--against results/format5/results.json]

Targets are given in bits per pixel and turned into kilobits per second by each clip's size and frame
rate (bpp · width · height · fps / 1000), so one set fits clips of any size. Rate is the whole file,
headers included, over the clip's duration (EVAL.md's bits); the encoder runs with its defaults
(preset medium, intra period 32, adaptive intra) and one thread. ``--against`` an ``eval`` results.json
of the same clips at constant qualities adds the PSNR-YUV of that curve at the achieved rate (pchip in
log-rate, as BD-rate interpolates) and the difference: what choosing the quality per frame costs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.interpolate import PchipInterpolator

from flowcodec.codec.bitstream import Reader
from flowcodec.eval.metrics import psnr_yuv
from flowcodec.io import open_video


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "flowcodec.cli", *map(str, args), "-q", "--threads", "1"],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr.strip())


def _frames(path):
    with open_video(path) as src:
        return list(src), src.info


def _constant(clip, motion, bpp):
    """PSNR-YUV of a clip's constant-quality curve (eval results) at ``bpp``; None outside its range."""
    if clip is None:
        return None
    points = sorted((p["bpp"], p["psnr_yuv"]) for p in clip["points"] if p["codec"] == motion)
    rates, psnrs = zip(*points) if points else ((), ())
    if len(points) < 2 or not rates[0] <= bpp <= rates[-1]:
        return None
    return float(PchipInterpolator(np.log(rates), psnrs)(np.log(bpp)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="+", help="y4m clips")
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.04, 0.08, 0.16], help="targets, bits per pixel")
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--against", help="eval results.json of the clips at constant qualities")
    a = ap.parse_args()
    curves = json.load(open(a.against))["clips"] if a.against else {}
    rows = []
    print("| clip | target kbit/s (bpp) | achieved kbit/s | error | PSNR-YUV dB | constant quality dB (Δ) | qualities "
          "| encode s | exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in a.clips:
            source, info = _frames(clip)
            fps, name = info.fps_num / info.fps_den, os.path.basename(clip).split("_")[0]
            for bpp in a.bpp:
                kbps = round(bpp * info.width * info.height * fps / 1000, 1)
                fcb, recon, out = (os.path.join(tmp, n) for n in ("c.fcb", "recon.y4m", "dec.y4m"))
                t0 = time.time()
                _cli("encode", clip, "-o", fcb, "--recon", recon, "--bitrate", kbps, "--motion", a.motion)
                secs = time.time() - t0
                _cli("decode", fcb, "-o", out)
                with open(recon, "rb") as r, open(out, "rb") as d:
                    exact = r.read() == d.read()
                with open(fcb, "rb") as f:
                    qualities = [q for _, _, q in Reader(f)]
                achieved = 8 * os.path.getsize(fcb) * fps / len(source) / 1000
                decoded, _ = _frames(out)
                psnr = float(np.mean([psnr_yuv(s, d)["yuv"] for s, d in zip(source, decoded)]))
                constant = _constant(curves.get(os.path.basename(clip).rsplit(".", 1)[0]), a.motion,
                                     8 * os.path.getsize(fcb) / (info.width * info.height * len(source)))
                row = dict(clip=name, frames=len(source), target_kbps=kbps, bpp=bpp, kbps=achieved,
                           error=achieved / kbps - 1, psnr_yuv=psnr, constant_psnr_yuv=constant,
                           qualities=qualities, encode_s=secs, exact=exact)
                versus = "–" if constant is None else f"{constant:.2f} ({psnr - constant:+.2f})"
                rows.append(row)
                print(f"| {name} | {kbps:g} ({bpp:g}) | {achieved:.1f} | {100 * row['error']:+.1f}% | {psnr:.2f} | "
                      f"{versus} | {min(qualities):g} … {max(qualities):g} | {secs:.0f} | {'yes' if exact else 'NO'} |",
                      flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
