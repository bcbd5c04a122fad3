"""Video input/output: y4m, raw yuv and ffmpeg-decoded inputs as 4:2:0 frames,
y4m output, and atomic file writing.

A frame is a tuple (y, u, v) of numpy planes; see `flowcodec.io.y4m`.
"""
import os

from flowcodec.io.atomic import atomic_output
from flowcodec.io.video import open_video, parse_fps, parse_size
from flowcodec.io.y4m import FrameReader, VideoInfo, Y4MReader, Y4MWriter, to_8bit

BUNDLED_CLIP = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "vtest_192x144_33.y4m")
"""The clip shipped in the package (vtest.avi frames 700–732, 4× downscaled): demo, tests, benchmarks."""

__all__ = ["BUNDLED_CLIP", "FrameReader", "VideoInfo", "Y4MReader", "Y4MWriter", "atomic_output",
           "open_video", "parse_fps", "parse_size", "to_8bit"]
