"""HEVC intra coding of single frames with x265, through the ffmpeg binary of imageio-ffmpeg.

Intra frames (frames 0, 32, 64, ... under EVAL.md) are coded by x265 like DVC and FVC used BPG/x265.
The encoder obtains its reconstruction by running `decode_intra` on the payload it just produced, so
encoder and decoder reconstructions are identical by construction. x265 codes only even sizes (4:2:0)
of at least 16x16 ("Image size is too small"): a frame is padded by edge replication to the
`coded_size` its size determines and cropped back on decode, so any frame size works, 1x1 included.
"""
import subprocess

import numpy as np

from flowcodec.errors import BitstreamError, VideoError
from flowcodec.io.ffmpeg import frame_to_raw, raw_to_frame, run_ffmpeg

TIMEOUT_S = 60
MIN_SIDE = 16  # the smallest picture x265 codes, in luma pixels per side


def coded_size(width, height):
    """(width, height) of the picture x265 codes for a frame: even, and at least MIN_SIDE per side."""
    return max(width + width % 2, MIN_SIDE), max(height + height % 2, MIN_SIDE)


def _check_frame(frame):
    """Raise VideoError unless frame is a (y, u, v) uint8 4:2:0 frame; return its (width, height)."""
    if len(frame) != 3 or any(np.asarray(p).dtype != np.uint8 or np.ndim(p) != 2 for p in frame):
        raise VideoError("a frame must be three 2-D uint8 planes (y, u, v)")
    height, width = frame[0].shape
    chroma = ((height + 1) // 2, (width + 1) // 2)
    if frame[1].shape != chroma or frame[2].shape != chroma:
        raise VideoError(f"chroma planes of a {width}x{height} frame must be {chroma[1]}x{chroma[0]}")
    return width, height


def _run_ffmpeg(args, data):
    """Run ffmpeg with args, data on stdin; return (returncode, stdout, first stderr line).

    A run that exceeds TIMEOUT_S is killed and reported as a failure rather than raised.
    """
    try:
        proc = run_ffmpeg(args, data, TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, b"", f"ffmpeg timed out after {TIMEOUT_S} s"
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    return proc.returncode, proc.stdout, lines[0] if lines else "no error message"


def encode_intra(frame, qp):
    """Code one frame as an HEVC IDR picture at fixed QP; return the elementary stream without SEI.

    The stream carries VPS/SPS/PPS and one IDR slice; x265's option-text SEI is both switched off
    (info=0) and filtered out, as EVAL.md counts bits without it.
    """
    width, height = _check_frame(frame)
    if not 0 <= qp <= 51:
        raise ValueError(f"HEVC QP must be in 0..51, got {qp}")
    pw, ph = coded_size(width, height)
    pad = lambda p, w, h: np.pad(p, ((0, h - p.shape[0]), (0, w - p.shape[1])), mode="edge")
    y, u, v = frame
    raw = frame_to_raw((pad(y, pw, ph), pad(u, pw // 2, ph // 2), pad(v, pw // 2, ph // 2)))
    args = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{pw}x{ph}", "-i", "-",
            "-frames:v", "1", "-c:v", "libx265", "-preset", "medium", "-tune", "psnr",
            "-x265-params", f"qp={qp}:info=0:keyint=1:log-level=none",
            "-bsf:v", "filter_units=remove_types=39", "-f", "hevc", "-"]
    code, out, err = _run_ffmpeg(args, raw)
    if code or not out:
        raise VideoError(f"x265 could not encode the frame: {err}")
    return out


def decode_intra(payload, width, height):
    """Decode an `encode_intra` payload into a (y, u, v) frame of width x height.

    Raises BitstreamError when ffmpeg fails or does not produce exactly one frame of the expected size.
    """
    pw, ph = coded_size(width, height)
    code, out, err = _run_ffmpeg(["-f", "hevc", "-i", "-", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
                                 bytes(payload))
    if code:
        raise BitstreamError(f"HEVC intra payload could not be decoded: {err}")
    if len(out) != pw * ph + 2 * (pw // 2) * (ph // 2):
        raise BitstreamError(f"HEVC intra payload decoded to {len(out)} bytes, "
                             f"not one {pw}x{ph} frame")
    y, u, v = raw_to_frame(out, pw, ph)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return tuple(np.ascontiguousarray(p) for p in (y[:height, :width], u[:ch, :cw], v[:ch, :cw]))
