"""An exact camera translation: the cost floor of coding motion that a predictor already knows.

``render`` cuts a WIDTH x HEIGHT window out of a y4m's first frame and moves it by whole pixels each
frame (default 3 right, 1 down), so every P-frame is an exact translation of the one before, plus the
content entering at the edges. ``run`` codes it with flowcodec at the given qualities (HEVC intra,
adaptive intra off, so every frame after the first is a P-frame) and with x265-medium at QP 22 … 42
(EVAL.md settings), each stream decoded in a separate process and checked equal to ``--recon``, and
prints bytes per P-frame, bpp and PSNR-YUV per point and the BD-rate against x265-medium:

    python benchmarks/translation.py render ../shared/data/dev/bikes_640x272_25.y4m --out translation.y4m
    python benchmarks/translation.py run translation.y4m --motion decomposed --qualities 1 2 3 4 5 6
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from flowcodec.eval.anchors import run_anchor
from flowcodec.eval.metrics import bd_rate, psnr_yuv
from flowcodec.io import VideoInfo, Y4MWriter, open_video

WIDTH, HEIGHT, FRAMES, STEP = 384, 256, 12, (3, 1)
ANCHOR_QPS = (22, 27, 32, 37, 42)


def render(src: str, out: str, frames: int = FRAMES, step=STEP):
    with open_video(src) as video:
        y, u, v = next(iter(video))
    need_w, need_h = WIDTH + step[0] * (frames - 1), HEIGHT + step[1] * (frames - 1)
    if y.shape[1] < need_w or y.shape[0] < need_h:
        sys.exit(f"translation: {src} is {y.shape[1]}x{y.shape[0]}, the pan needs {need_w}x{need_h}")
    # chroma at luma resolution (each sample repeated 2x2), moved with the luma, then averaged 2x2:
    # for even steps that is the source's chroma exactly, for odd steps the nearest 4:2:0 rendering
    full = [np.repeat(np.repeat(c, 2, 0), 2, 1).astype(np.float64) for c in (u, v)]
    with open(out, "wb") as f:
        w = Y4MWriter(f, VideoInfo(WIDTH, HEIGHT, 25, 1))
        for t in range(frames):
            x0, y0 = step[0] * t, step[1] * t
            window = lambda p: p[y0:y0 + HEIGHT, x0:x0 + WIDTH]
            chroma = [np.floor(window(c).reshape(HEIGHT // 2, 2, WIDTH // 2, 2).mean((1, 3)) + 0.5)
                      .astype(np.uint8) for c in full]
            w.write((np.ascontiguousarray(window(y)), *chroma))
        w.close()


def _flowcodec(clip, motion, quality, work):
    fcb, rec, dec = (os.path.join(work, f"{motion}_q{quality}.{e}") for e in ("fcb", "rec.y4m", "dec.y4m"))
    cli = [sys.executable, "-m", "flowcodec.cli"]
    subprocess.run(cli + ["encode", clip, "-o", fcb, "--recon", rec, "--motion", motion, "--quality", str(quality),
                          "--no-adaptive-intra", "-q"], check=True)
    subprocess.run(cli + ["decode", fcb, "-o", dec, "-q"], check=True)
    if open(rec, "rb").read() != open(dec, "rb").read():
        sys.exit(f"translation: {fcb} does not decode to its --recon")
    info = subprocess.run(cli + ["info", fcb, "--frames"], capture_output=True, text=True, check=True).stdout
    p_bytes = [int(line.split()[3]) for line in info.splitlines() if "INTER" in line]
    return os.path.getsize(fcb), dec, p_bytes


def _psnr(clip, decoded):
    with open_video(clip) as a, open_video(decoded) as b:
        return float(np.mean([psnr_yuv(x, y)["yuv"] for x, y in zip(a, b)]))


def run(clip, motion, qualities, out=None):
    with open_video(clip) as v:
        info, n = v.info, sum(1 for _ in v)
    pixels = info.width * info.height * n
    rows = {"flowcodec": [], "x265-medium": []}
    with tempfile.TemporaryDirectory() as work:
        for q in qualities:
            size, dec, p_bytes = _flowcodec(clip, motion, q, work)
            rows["flowcodec"].append({"quality": q, "bpp": 8 * size / pixels, "psnr": _psnr(clip, dec),
                                      "p_frame_bytes": float(np.mean(p_bytes))})
        for qp in ANCHOR_QPS:
            r = run_anchor("x265-medium", clip, qp, workdir=work)
            rows["x265-medium"].append({"qp": qp, "bpp": r["bpp"], "psnr": r["psnr_yuv"]})
    print(f"{clip}: {info.width}x{info.height}, {n} frames, motion {motion}")
    for name, pts in rows.items():
        for p in pts:
            label = f"q{p['quality']}" if "quality" in p else f"QP{p['qp']}"
            extra = f"  {p['p_frame_bytes']:.0f} B per P-frame" if p.get("p_frame_bytes") else ""
            print(f"  {name:12s} {label:5s} {p['bpp']:.4f} bpp  {p['psnr']:.2f} dB{extra}")
    f, a = rows["flowcodec"], rows["x265-medium"]
    if len(f) >= 4:
        bd = bd_rate([p["bpp"] for p in a], [p["psnr"] for p in a], [p["bpp"] for p in f], [p["psnr"] for p in f])
        rows["bd_rate_vs_x265_medium"] = bd
        print(f"  BD-rate vs x265-medium: {bd:+.1f}%")
    if out:
        with open(out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render")
    r.add_argument("source", help="y4m whose first frame is panned over")
    r.add_argument("--out", required=True)
    g = sub.add_parser("run")
    g.add_argument("clip")
    g.add_argument("--motion", default="decomposed")
    g.add_argument("--qualities", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    g.add_argument("--json", help="write the points here")
    a = p.parse_args()
    if a.cmd == "render":
        render(a.source, a.out)
    else:
        run(a.clip, a.motion, a.qualities, a.json)


if __name__ == "__main__":
    main()
