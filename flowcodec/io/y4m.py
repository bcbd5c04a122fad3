"""YUV4MPEG2 (.y4m) reading and writing, and the frame model the codec works on.

A frame is a tuple ``(y, u, v)`` of 2-D numpy arrays: ``y`` is (H, W), ``u`` and
``v`` are ((H+1)//2, (W+1)//2); uint8 for 8-bit video, uint16 above.  y4m is the
native serialisation of that model, so the model (``VideoInfo``, ``to_8bit``,
the ``FrameReader`` base and the plane reader) lives here and ``video.py``
builds the other input kinds on top of it.

Reading is streamed one frame at a time and hardened against malformed input:
every problem is a ``VideoError`` with a one-line message; no read is unbounded
and no allocation is sized from an unchecked header field.
"""

import os
import re
import sys
from dataclasses import dataclass

import numpy as np

from flowcodec.errors import VideoError

MAX_DIM = 16384
MAX_PIXELS = 1 << 26
MAX_LINE = 4096
MAGIC = b"YUV4MPEG2"

# y4m C tag -> (chroma, bitdepth)
_CHROMA_TAGS = {
    **{t: ("420", 8) for t in ("420", "420jpeg", "420mpeg2", "420paldv")},
    **{f"420p{b}": ("420", b) for b in (9, 10, 12, 14, 16)},
    "mono": ("mono", 8),
    **{f"mono{b}": ("mono", b) for b in (9, 10, 12, 14, 16)},
}


@dataclass(frozen=True)
class VideoInfo:
    """Geometry, frame rate and sample format of a video; chroma is '420' or 'mono'."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    bitdepth: int = 8
    chroma: str = "420"

    @property
    def chroma_shape(self):
        """(rows, cols) of the u and v planes."""
        return (self.height + 1) // 2, (self.width + 1) // 2

    @property
    def dtype(self):
        return np.dtype(np.uint8) if self.bitdepth == 8 else np.dtype(np.uint16)

    @property
    def frame_bytes(self):
        """Size of one frame's planes as stored in y4m / raw yuv."""
        ch, cw = self.chroma_shape
        samples = self.width * self.height
        if self.chroma == "420":
            samples += 2 * ch * cw
        return samples * self.dtype.itemsize


def check_size(width, height):
    """Raise VideoError unless width x height is a sane frame size."""
    if width <= 0 or height <= 0:
        raise VideoError(f"bad frame size {width}x{height}")
    if width > MAX_DIM or height > MAX_DIM or width * height > MAX_PIXELS:
        raise VideoError(f"absurd frame size {width}x{height} "
                         f"(limit {MAX_DIM} per side, {MAX_PIXELS} pixels)")


def to_8bit(frame, bitdepth):
    """Round a frame of `bitdepth`-bit planes to uint8; 8-bit frames pass through."""
    if bitdepth == 8:
        return frame
    shift = bitdepth - 8
    half = 1 << (shift - 1)
    return tuple(np.minimum((p.astype(np.uint32) + half) >> shift, 255).astype(np.uint8)
                 for p in frame)


def _fill(stream, buf):
    """Read into bytearray `buf` until it is full or EOF; return the byte count."""
    got = 0
    with memoryview(buf) as view:
        while got < len(buf):
            with view[got:] as rest:
                k = stream.readinto(rest)
            if not k:
                break
            got += k
    return got


def _read_line(stream, limit, what):
    """Read bytes up to a newline (dropped), at most `limit`; None at EOF mid-line."""
    out = bytearray()
    while len(out) < limit:
        c = stream.read(1)
        if not c:
            return None
        if c == b"\n":
            return bytes(out)
        out += c
    raise VideoError(f"{what} longer than {MAX_LINE} bytes")


def read_planes(stream, info, index):
    """Read frame `index`'s planes from `stream`; None at a clean EOF."""
    need = info.frame_bytes
    buf = bytearray(need)
    got = _fill(stream, buf)
    if got == 0:
        return None
    if got < need:
        raise VideoError(f"truncated frame {index}: expected {need} bytes, got {got}")
    dtype = info.dtype.newbyteorder("<")
    h, w = info.height, info.width
    ch, cw = info.chroma_shape
    y = np.frombuffer(buf, dtype, h * w).reshape(h, w)
    if info.chroma == "mono":
        mid = 1 << (info.bitdepth - 1)
        u, v = np.full((ch, cw), mid, info.dtype), np.full((ch, cw), mid, info.dtype)
    else:
        off = h * w * dtype.itemsize
        u = np.frombuffer(buf, dtype, ch * cw, off).reshape(ch, cw)
        v = np.frombuffer(buf, dtype, ch * cw, off + ch * cw * dtype.itemsize).reshape(ch, cw)
    return tuple(p.astype(info.dtype, copy=False) for p in (y, u, v))


class FrameReader:
    """Base of every reader: a single-pass frame iterator with `.info`, an optional
    frame limit, and `.close()` / context-manager support.

    Subclasses set `self.info` and implement `_read_frame(index)` (None at end).
    """

    def __init__(self, frames=None):
        self._left = frames
        self._index = 0

    def _read_frame(self, index):
        raise NotImplementedError

    def __iter__(self):
        return self

    def __next__(self):
        if self._left == 0:
            raise StopIteration
        frame = self._read_frame(self._index)
        if frame is None:
            self._left = 0
            raise StopIteration
        self._index += 1
        if self._left is not None:
            self._left -= 1
        return frame

    def close(self):
        """Release what the reader opened; the base owns nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_file(path, mode):
    """Open a file, turning OS errors into one-line VideoErrors."""
    try:
        return open(path, mode)
    except FileNotFoundError:
        raise VideoError(f"cannot open '{path}': no such file") from None
    except OSError as e:
        raise VideoError(f"cannot open '{path}': {e.strerror or e}") from None


def open_stream(stream_or_path, mode):
    """(stream, owned): ``-`` is stdin/stdout, a path is opened here (and owned, so the caller closes
    it), anything else is an already open binary stream."""
    if stream_or_path == "-":
        return (sys.stdin.buffer if "r" in mode else sys.stdout.buffer), None
    if isinstance(stream_or_path, (str, os.PathLike)):
        f = open_file(stream_or_path, mode)
        return f, f
    return stream_or_path, None


def _number(token, what):
    value = token[1:]
    if not re.fullmatch(r"[0-9]{1,12}", value) or int(value) == 0:
        raise VideoError(f"bad y4m {what} '{token[:20]}'")
    return int(value)


def _parse_header(fields):
    """Build a VideoInfo from the y4m header tokens after the magic."""
    tokens = {}
    for tok in fields.split():
        tokens[tok[0]] = tok
    if "W" not in tokens or "H" not in tokens:
        raise VideoError("y4m header lacks W (width) or H (height)")
    width, height = _number(tokens["W"], "width"), _number(tokens["H"], "height")
    check_size(width, height)
    fps_num, fps_den = 25, 1
    if "F" in tokens:
        m = re.fullmatch(r"F([0-9]{1,9}):([0-9]{1,9})", tokens["F"])
        if not m or int(m[1]) == 0 or int(m[2]) == 0:
            raise VideoError(f"bad y4m frame rate '{tokens['F'][:20]}'")
        fps_num, fps_den = int(m[1]), int(m[2])
    tag = tokens.get("C", "C420")
    if tag[1:] not in _CHROMA_TAGS:
        raise VideoError(f"unsupported y4m chroma format '{tag[:20]}' (flowcodec codes 4:2:0)")
    chroma, bitdepth = _CHROMA_TAGS[tag[1:]]
    return VideoInfo(width, height, fps_num, fps_den, bitdepth, chroma)


class Y4MReader(FrameReader):
    """Streaming y4m reader from a path, '-' (stdin) or a binary stream.

    `.info` is parsed on construction; iterating yields frames one at a time.
    Only a file opened here is closed by `.close()`.
    """

    def __init__(self, stream_or_path, frames=None):
        super().__init__(frames)
        self._stream, self._owned = open_stream(stream_or_path, "rb")
        try:
            self.info = self._read_header()
        except BaseException:
            Y4MReader.close(self)  # only the file opened here; subclasses clean up their own
            raise

    def _read_header(self):
        head = bytearray(len(MAGIC))
        got = _fill(self._stream, head)
        if got == 0:
            raise VideoError("empty input: not a y4m stream")
        if head[:got] != MAGIC:
            raise VideoError(f"not a y4m stream: starts with {bytes(head[:got])!r}, "
                             f"expected 'YUV4MPEG2'")
        line = _read_line(self._stream, MAX_LINE - len(head), "y4m header line")
        if line is None:
            raise VideoError("truncated y4m header")
        if line and not line.startswith(b" "):
            raise VideoError("not a y4m stream: no space after 'YUV4MPEG2'")
        return _parse_header(line.decode("latin-1"))

    def _read_frame(self, index):
        buf = bytearray(5)
        marker = bytes(buf[:_fill(self._stream, buf)])
        if not marker:
            return None
        if marker != b"FRAME":
            if b"FRAME".startswith(marker):
                raise VideoError(f"truncated frame {index}: incomplete FRAME marker")
            raise VideoError(f"frame {index}: expected 'FRAME' marker, got {marker!r}")
        if _read_line(self._stream, MAX_LINE, f"frame {index} header") is None:
            raise VideoError(f"truncated frame {index}: incomplete FRAME line")
        frame = read_planes(self._stream, self.info, index)
        if frame is None:
            raise VideoError(f"truncated frame {index}: expected "
                             f"{self.info.frame_bytes} bytes, got 0")
        return frame

    def close(self):
        if self._owned is not None:
            self._owned.close()
            self._owned = None


def _chroma_tag(info):
    if info.chroma not in ("420", "mono"):
        raise ValueError(f"cannot write chroma {info.chroma!r}")
    if info.bitdepth == 8:
        return "420jpeg" if info.chroma == "420" else "mono"
    tag = f"{'420p' if info.chroma == '420' else 'mono'}{info.bitdepth}"
    if tag not in _CHROMA_TAGS:
        raise ValueError(f"cannot write bit depth {info.bitdepth}")
    return tag


class Y4MWriter:
    """Writes frames as y4m to a path, '-' (stdout) or a binary stream.

    The header (W, H, F, Ip, A1:1, C tag from `info`: C420jpeg for 8-bit 4:2:0)
    is written on construction, so a writer closed with no frames still leaves a
    valid y4m.  Only a file opened here is closed by `.close()`.
    """

    def __init__(self, stream_or_path, info):
        tag = _chroma_tag(info)
        self.info = info
        self._stream, self._owned = open_stream(stream_or_path, "wb")
        self._stream.write(f"YUV4MPEG2 W{info.width} H{info.height} "
                           f"F{info.fps_num}:{info.fps_den} Ip A1:1 C{tag}\n".encode())

    def write(self, frame):
        """Append one (y, u, v) frame; shapes and dtype must match `info`."""
        info = self.info
        shapes = [(info.height, info.width), info.chroma_shape, info.chroma_shape]
        for name, plane, shape in zip("yuv", frame, shapes):
            if plane.shape != shape or plane.dtype != info.dtype:
                raise ValueError(f"plane {name} is {plane.dtype}{plane.shape}, "
                                 f"expected {info.dtype}{shape}")
        self._stream.write(b"FRAME\n")
        planes = frame[:1] if info.chroma == "mono" else frame
        for plane in planes:
            self._stream.write(np.ascontiguousarray(plane, info.dtype.newbyteorder("<")))

    def close(self):
        if self._owned is not None:
            self._owned.close()
            self._owned = None
        else:
            self._stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
