"""Opening any video input as a stream of 4:2:0 frames.

`open_video` picks a reader from the path: y4m (or '-' for y4m on stdin), raw
planar yuv420p (.yuv, needs a size), or anything else decoded by the ffmpeg
binary shipped with imageio-ffmpeg into a y4m pipe.  All readers share the
`FrameReader` interface: `.info`, single-pass iteration, `.close()`.
"""

import os
import re
import subprocess
import tempfile
from dataclasses import replace
from fractions import Fraction
from stat import S_ISREG

from flowcodec.errors import VideoError
from flowcodec.io.ffmpeg import ffmpeg_exe
from flowcodec.io.y4m import FrameReader, VideoInfo, Y4MReader, check_size, open_file, read_planes

DEFAULT_FPS = (25, 1)


def parse_size(text):
    """'176x144' -> (176, 144); VideoError on anything else."""
    m = re.fullmatch(r"\s*([0-9]{1,12})\s*[xX]\s*([0-9]{1,12})\s*", str(text))
    if not m:
        raise VideoError(f"bad size '{str(text)[:40]}': expected WxH, e.g. 176x144")
    width, height = int(m[1]), int(m[2])
    check_size(width, height)
    return width, height


def parse_fps(value):
    """A frame rate given as a number or a 'num/den' string -> (num, den)."""
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/")
            rate = Fraction(int(num), int(den))
        else:
            rate = Fraction(value).limit_denominator(1001)
    except (ValueError, ZeroDivisionError, TypeError, OverflowError):
        raise VideoError(f"bad frame rate '{str(value)[:40]}': expected e.g. 25 or 30000/1001") from None
    if rate <= 0:
        raise VideoError(f"bad frame rate '{str(value)[:40]}': must be positive")
    return rate.numerator, rate.denominator


class RawYUVReader(FrameReader):
    """Reads headerless planar yuv420p 8-bit frames of a given size from a file."""

    def __init__(self, path, size, fps=DEFAULT_FPS, frames=None):
        super().__init__(frames)
        width, height = size
        check_size(width, height)
        self.info = VideoInfo(width, height, *fps)
        self._file = open_file(path, "rb")
        stat = os.fstat(self._file.fileno())
        need = self.info.frame_bytes
        if S_ISREG(stat.st_mode) and stat.st_size % need:
            self.close()
            raise VideoError(f"'{path}' is {stat.st_size} bytes, not a whole number of "
                             f"{width}x{height} yuv420p frames ({need} bytes each); check --size")

    def _read_frame(self, index):
        return read_planes(self._file, self.info, index)

    def close(self):
        self._file.close()


class FFmpegReader(Y4MReader):
    """Decodes any container/codec ffmpeg understands, streamed through a y4m pipe.

    ffmpeg's stderr goes to a temporary file (a pipe could fill up and stall
    it); its first line becomes the VideoError message when ffmpeg fails.
    `.close()` kills ffmpeg if it is still running.
    """

    def __init__(self, path, frames=None):
        if not os.path.exists(path):
            raise VideoError(f"cannot open '{path}': no such file")
        self._path = path
        cmd = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", os.fspath(path)]
        if frames is not None:
            cmd += ["-frames:v", str(frames)]
        cmd += ["-f", "yuv4mpegpipe", "-pix_fmt", "yuv420p", "-"]
        self._log = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=self._log)
        except OSError as e:
            self._log.close()
            raise VideoError(f"cannot run ffmpeg: {e.strerror or e}") from None
        try:
            super().__init__(self._proc.stdout, frames)
        except VideoError:
            try:
                self._raise_if_failed(timeout=2)
            finally:
                self.close()
            raise
        except BaseException:
            self.close()
            raise

    def _raise_if_failed(self, timeout):
        """Raise a VideoError with ffmpeg's first stderr line if it exits with an error.

        Errors found in the data while ffmpeg still runs keep their own message
        once `timeout` seconds pass.
        """
        try:
            code = self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return
        if code:
            self._log.seek(0)
            lines = self._log.read(4096).decode("utf-8", "replace").splitlines()
            first = next((ln.strip() for ln in lines if ln.strip()), f"ffmpeg exit code {code}")
            first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # drop "[in#0 @ 0x...]" context
            raise VideoError(f"cannot decode '{self._path}': {first}") from None

    def _read_frame(self, index):
        try:
            frame = super()._read_frame(index)
        except VideoError:
            self._raise_if_failed(timeout=2)
            raise
        if frame is None:
            self._raise_if_failed(timeout=10)
        return frame

    def close(self):
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._proc.stdout.close()
        self._log.close()


def open_video(path, size=None, fps=None, frames=None):
    """Open a video input for reading frames at its native bit depth.

    path: '-' (y4m on stdin), '*.y4m', '*.yuv' (raw yuv420p 8-bit; needs
    `size`, a (W, H) tuple or 'WxH' string), or any file ffmpeg decodes.
    fps: overrides the input's frame rate (number or 'num/den'); raw yuv
    defaults to 25.  frames: read at most this many frames.
    Returns a FrameReader; use it as a context manager or call `.close()`.
    """
    if frames is not None and frames < 0:
        raise VideoError(f"frame count must be >= 0, got {frames}")
    rate = parse_fps(fps) if fps is not None else None
    name = os.fspath(path)
    ext = os.path.splitext(name)[1].lower()
    if name == "-" or ext == ".y4m":
        reader = Y4MReader(name, frames)
    elif ext == ".yuv":
        if size is None:
            raise VideoError("raw .yuv needs --size WxH")
        size = parse_size(size) if isinstance(size, str) else size
        return RawYUVReader(name, size, rate or DEFAULT_FPS, frames)
    else:
        reader = FFmpegReader(name, frames)
    if rate is not None:
        reader.info = replace(reader.info, fps_num=rate[0], fps_den=rate[1])
    return reader
