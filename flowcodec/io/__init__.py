"""Video input/output: y4m, raw yuv and ffmpeg-decoded inputs as 4:2:0 frames,
y4m output, and atomic file writing.

A frame is a tuple (y, u, v) of numpy planes; see `flowcodec.io.y4m`.
"""

from flowcodec.io.atomic import atomic_output
from flowcodec.io.video import open_video, parse_fps, parse_size
from flowcodec.io.y4m import FrameReader, VideoInfo, Y4MReader, Y4MWriter, to_8bit

__all__ = ["FrameReader", "VideoInfo", "Y4MReader", "Y4MWriter", "atomic_output",
           "open_video", "parse_fps", "parse_size", "to_8bit"]
