"""What unchanged content costs: P-frames of a still clip (one frame repeated), flowcodec vs x265.

EVAL.md asks that static and well-predicted regions cost almost nothing (the anchor's P-frames are
9–16× smaller than its intra frames). Here the whole picture is static: each clip's first frame is
repeated ``--frames`` times and coded as I P P …; the table gives the I-frame and mean P-frame bytes per
quality level, beside x265-medium at the intra frames' QP.

    python benchmarks/still.py CLIP.y4m [CLIP ...] [--motion pyramid] [--weights W] [--frames 6]
"""
import argparse
import os
import subprocess
import tempfile

import imageio_ffmpeg

import numpy as np
import torch

from flowcodec.codec.encoder import SequenceEncoder
from flowcodec.codec.model import load, weights_path
from flowcodec.codec.options import INTRA_QP
from flowcodec.eval.anchors import run_anchor
from flowcodec.io import BUNDLED_CLIP, VideoInfo, Y4MWriter, open_video

CLIP = BUNDLED_CLIP


def packet_bytes(stream: str) -> list[int]:
    """Size of every packet (frame) of an HEVC elementary stream, from ffmpeg's framecrc listing."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "hevc", "-i", stream, "-c", "copy",
                          "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    return [int(line.split(",")[4]) for line in out.splitlines() if line and not line.startswith("#")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", default=[CLIP])
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--weights")
    ap.add_argument("--frames", type=int, default=6)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load(a.weights or weights_path(a.motion))
    print(f"{'clip':>10} {'q':>2} {'QP':>3} {'I bytes':>8} {'P bytes':>8} {'I/P':>6} "
          f"{'x265 I':>8} {'x265 P':>8} {'x265 I/P':>8}")
    for clip in a.clips:
        with open_video(clip) as src:
            info, first = src.info, next(iter(src))
        name = os.path.basename(clip).split("_")[0]
        with tempfile.TemporaryDirectory() as tmp:
            still = os.path.join(tmp, "still.y4m")
            with open(still, "wb") as f:
                w = Y4MWriter(f, VideoInfo(info.width, info.height, info.fps_num, info.fps_den))
                for _ in range(a.frames):
                    w.write(first)
                w.close()
            for q, qp in enumerate(INTRA_QP, 1):
                enc = SequenceEncoder(model, info.width, info.height, q)
                sizes = [len(enc.encode(first)[1]) for _ in range(a.frames)]
                run_anchor("x265-medium", still, qp, workdir=tmp)
                x265 = packet_bytes(os.path.join(tmp, f"x265-medium_qp{qp}.bin"))
                xi, xp = x265[0], np.mean(x265[1:])
                p = np.mean(sizes[1:])
                print(f"{name:>10} {q:2d} {qp:3d} {sizes[0]:8d} {p:8.0f} {sizes[0] / p:6.1f} "
                      f"{xi:8.0f} {xp:8.0f} {xi / xp:8.1f}")


if __name__ == "__main__":
    main()
