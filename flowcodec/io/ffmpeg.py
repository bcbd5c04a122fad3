"""The one place that finds and runs the ffmpeg binary shipped by imageio-ffmpeg (x264, x265, AV1 and
VVC encoders and every common decoder, with no system package). Callers decide what a failure means:
HEVC intra coding turns it into a bitstream or video error, the anchors into an evaluation error,
``data fetch`` into a stop. Frames cross the pipes in rawvideo yuv420p layout."""
import subprocess

import numpy as np

from ..errors import VideoError


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary; VideoError if imageio-ffmpeg has none for this platform."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise VideoError(f"no ffmpeg available ({e})") from None


def run_ffmpeg(args, data: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ``ffmpeg -v error ARGS`` with ``data`` on stdin (none: stdin closed), capturing stdout and
    stderr as bytes; subprocess.TimeoutExpired after ``timeout`` seconds."""
    return subprocess.run([ffmpeg_exe(), "-v", "error", *args], input=data, capture_output=True,
                          timeout=timeout, stdin=None if data is not None else subprocess.DEVNULL)


def frame_to_raw(frame):
    """Bytes of a (y, u, v) uint8 frame in ffmpeg's rawvideo yuv420p layout (planes back to back)."""
    return b"".join(np.ascontiguousarray(p, dtype=np.uint8).tobytes() for p in frame)


def raw_to_frame(buf, width, height):
    """Split one rawvideo yuv420p frame of width x height into (y, u, v) arrays (copies)."""
    cw, ch = (width + 1) // 2, (height + 1) // 2
    data = np.frombuffer(buf, np.uint8)
    y = data[:width * height].reshape(height, width)
    u = data[width * height:width * height + cw * ch].reshape(ch, cw)
    v = data[width * height + cw * ch:width * height + 2 * cw * ch].reshape(ch, cw)
    return y.copy(), u.copy(), v.copy()
