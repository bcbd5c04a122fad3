"""Encode / decode speed and peak memory of flowcodec beside x265-medium and ffmpeg (EVAL.md).

Whole-process numbers, as EVAL.md asks: every measured command runs as one fresh child process
(``python -m flowcodec.cli encode|decode --threads T``; ffmpeg encoding with the x265-medium anchor's
options at QP 32 and ``pools=T``, ffmpeg decoding with ``-threads T``), timed by wall clock; its peak
resident memory is the ru_maxrss that ``os.wait4`` reports for it (the largest of the process and the
helpers it ran, e.g. the ffmpeg of flowcodec's intra frames).

Clips: the bundled 192x144 clip upscaled (bicubic) to each size and looped to the frame count (default
9: one intra frame and 8 P-frames; the targets are for 64), or ``--clip`` at its own size. Targets (from
the issues), each with PASS/MISS and the margin relative to the limit: decode >= 25 fps at 384x288 and
>= 2 fps at 1920x1080 on 2 threads;
encode at most 3x slower than decode; peak memory <= 3 GiB at 1920x1080 for encode and decode; memory
flat in the number of frames (peak at 2N frames within 10% of the peak at N, at ``--flat-size``).
The N and 2N runs also give the speed without start-up (N frames / the difference in seconds), printed
for reference: the targets are on whole-process speed.

Where decode time goes: each size's stream is decoded once more under cProfile (in a child process),
and the wall time is split into start-up (importing torch and the codec, reading the bitstream: all
that is not one of the others), loading the weights, the networks (convolutions and everything between
them), warping, range decoding and y4m writing.

usage: python benchmarks/speed.py [--sizes 384x288 960x544 1920x1080] [--frames 9] [--clip Y4M]
       [--flat-size 960x544] [--motion pyramid] [--quality 3] [--weights W] [--threads 2]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import imageio_ffmpeg

from flowcodec.eval.anchors import ANCHORS
from flowcodec.io import BUNDLED_CLIP, open_video

BUNDLED = BUNDLED_CLIP
GIB = 2**30
DECODE_FPS = {"384x288": 25, "1920x1080": 2}  # decode targets per size (whole process, 2 threads)
FLAT_GROWTH = 1.10  # "flat": peak memory at 2N frames at most 10% above the peak at N frames


def measure(cmd):
    """Run cmd as a fresh child; return (wall seconds, peak resident bytes). Exits on failure."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
    return seconds, usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def make_clip(src, frames, path, size=None):
    """The first `frames` frames of src (looped if shorter), scaled to size=(w, h) if given, as y4m."""
    scale = ["-vf", f"scale={size[0]}:{size[1]}:flags=bicubic"] if size else []
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", src,
                    "-frames:v", str(frames), *scale, "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", path],
                   check=True)


def x265_args(threads):
    """The x265-medium anchor's options at QP 32, limited to `threads` worker threads."""
    return [s.replace("{qp}", "32") + (f":pools={threads}" if s.startswith("qp=") else "")
            for s in ANCHORS["x265-medium"].args]


def run_size(clip, work, a, anchors=True):
    """Measure flowcodec (and, with anchors, x265 / ffmpeg) on one clip; return a dict of results."""
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    fc = [sys.executable, "-m", "flowcodec.cli"]
    common = ["--threads", str(a.threads), "-q"] + (["--weights", a.weights] if a.weights else [])
    fcb, mkv, out = (os.path.join(work, n) for n in ("b.fcb", "b.mkv", "d.y4m"))
    with open_video(clip) as v:
        frames = sum(1 for _ in v)
    r = {"frames": frames}
    r["enc_s"], r["enc_mem"] = measure(fc + ["encode", clip, "-o", fcb, "--quality", str(a.quality),
                                             "--motion", a.motion, *common])
    r["dec_s"], r["dec_mem"] = measure(fc + ["decode", fcb, "-o", out, *common])
    r["profile"] = profile_decode(fcb, a.threads)
    if anchors:
        r["x265_s"], _ = measure([ff, "-v", "error", "-y", "-i", clip, *x265_args(a.threads), mkv])
        r["ffdec_s"], _ = measure([ff, "-v", "error", "-y", "-threads", str(a.threads), "-i", mkv,
                                   "-f", "yuv4mpegpipe", out])
    return r


# (column, function whose cumulative time it is: "file:function" as cProfile names them)
PARTS = (("weights", "codec/model.py:load"), ("range dec.", "entropy/coder.py:_read"),
         ("warp", "motion/warp.py:warp"), ("y4m write", "io/y4m.py:write"), ("decode()", "codec/decoder.py:decode"))
_PROFILE = """
import cProfile, json, pstats, sys, time
start = time.perf_counter()
from flowcodec.cli import main
prof = cProfile.Profile()
prof.runcall(main, sys.argv[1:])
total = time.perf_counter() - start
cum = {f"{'/'.join(k[0].split('/')[-2:])}:{k[2]}": v[3] for k, v in pstats.Stats(prof).stats.items()}
print(json.dumps({"total": total, **cum}))
"""


def profile_decode(fcb, threads):
    """Seconds of a decode of ``fcb`` spent per part (PARTS, plus start-up and the total, in-process)."""
    out = subprocess.run([sys.executable, "-c", _PROFILE, "decode", fcb, "-o", os.devnull, "--threads",
                          str(threads), "-q"], capture_output=True, text=True, check=True).stdout
    cum = json.loads(out.strip().splitlines()[-1])
    parts = {name: cum.get(key, 0.0) for name, key in PARTS}
    parts["networks"] = parts["decode()"] - parts["range dec."] - parts["warp"]
    parts["total"] = cum["total"]
    parts["start-up"] = parts["total"] - parts["decode()"] - parts["weights"] - parts["y4m write"]
    return parts


def check(name, measured, limit, at_least, unit):
    """One target row: name, measured, limit, PASS/MISS with the margin relative to the limit."""
    margin = (measured - limit) / limit if at_least else (limit - measured) / limit
    verdict = f"{'PASS' if margin >= 0 else 'MISS'} by {abs(margin):.0%}"
    return [name, f"{measured:.2f} {unit}", f"{'>=' if at_least else '<='} {limit:g} {unit}", verdict]


def table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in [header, *rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["384x288", "960x544", "1920x1080"])
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--clip", help="measure this y4m at its own size instead of the upscaled clips")
    ap.add_argument("--flat-size", default="960x544", help="size of the 2N-frame memory check")
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--quality", type=int, default=3)
    ap.add_argument("--weights")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as work:
        def prepared(frames, size):
            path = os.path.join(work, f"{size}_{frames}.y4m")
            make_clip(a.clip or BUNDLED, frames, path, None if a.clip else tuple(map(int, size.split("x"))))
            return path

        if a.clip:
            with open_video(a.clip) as v:
                a.flat_size = f"{v.info.width}x{v.info.height}"
            a.sizes = [a.flat_size]
        results = {}
        for size in a.sizes:
            print(f"measuring {size}, {a.frames} frames", file=sys.stderr, flush=True)
            results[size] = run_size(prepared(a.frames, size), work, a)
        print(f"measuring {a.flat_size}, {2 * a.frames} frames", file=sys.stderr, flush=True)
        flat = run_size(prepared(2 * a.frames, a.flat_size), work, a, anchors=False)
        base = results.get(a.flat_size) or run_size(prepared(a.frames, a.flat_size), work, a, anchors=False)

    rows, targets = [], []
    for size, r in results.items():
        n = r["frames"]
        enc, dec, x265, ffdec = (n / r[k] for k in ("enc_s", "dec_s", "x265_s", "ffdec_s"))
        rows.append([size, n, f"{enc:.2f}", f"{x265:.2f}", f"{enc / x265:.3f}", f"{dec:.2f}",
                     f"{ffdec:.2f}", f"{dec / ffdec:.3f}", f"{r['enc_s'] / r['dec_s']:.2f}",
                     f"{r['enc_mem'] / 2**20:.0f}", f"{r['dec_mem'] / 2**20:.0f}"])
        targets.append(check(f"encode time / decode time {size}", r["enc_s"] / r["dec_s"], 3, False, "x"))
        if size in DECODE_FPS:
            targets.append(check(f"decode {size}", dec, DECODE_FPS[size], True, "fps"))
        if size == "1920x1080":
            targets += [check("encode peak memory 1920x1080", r["enc_mem"] / GIB, 3, False, "GiB"),
                        check("decode peak memory 1920x1080", r["dec_mem"] / GIB, 3, False, "GiB")]
    for what in ("enc", "dec"):
        targets.append(check(f"{what}ode memory {2 * a.frames} / {a.frames} frames at {a.flat_size}",
                             flat[f"{what}_mem"] / base[f"{what}_mem"], FLAT_GROWTH, False, "x"))
    print(f"flowcodec {a.motion} q{a.quality} vs x265-medium QP 32 / ffmpeg decode, {a.threads} threads, "
          "whole process (start-up included); fps = frames / wall seconds")
    print(table(["size", "frames", "enc fps", "x265 fps", "ratio", "dec fps", "ffmpeg fps", "ratio",
                 "enc/dec time", "enc MiB", "dec MiB"], rows))
    def marginal(key):
        extra = flat[key] - base[key]
        return f"{a.frames / extra:.2f} fps" if extra > 0 else "n/a (timing noise exceeds the difference)"
    print(f"start-up excluded, from {a.frames} vs {2 * a.frames} frames at {a.flat_size}: "
          f"encode {marginal('enc_s')}, decode {marginal('dec_s')}\n")
    print("\nwhere decode time goes (seconds, one profiled decode per size; networks = decode() less range "
          "decoding and warping, so also the tables' set-up and the 8-bit conversion)")
    cols = ("start-up", "weights", "networks", "warp", "range dec.", "y4m write", "total")
    print(table(["size", *cols], [[size, *(f"{r['profile'][c]:.2f}" for c in cols)] for size, r in results.items()]))
    print()
    print(table(["target", "measured", "limit", "result"], targets))


if __name__ == "__main__":
    main()
