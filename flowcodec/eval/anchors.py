"""Standard-codec anchors of EVAL.md, run with the ffmpeg binary of imageio-ffmpeg.

Each anchor is coded at fixed QP in low-delay order with intra period 32 into Matroska; quality is
PSNR-YUV of the decoded 4:2:0 output against the source. Bits follow EVAL.md literally: the stream is
copied out of the container into an elementary stream with the SEI NAL units filtered out
(`-c copy -bsf:v filter_units=... -f hevc`). For H.264 and HEVC this also leaves out the parameter sets
(SPS/PPS/VPS, which sit in the container's codec private data and are not re-inserted), about 40 B
(x264) and 85 B (x265) per intra frame at 176x144. That is how ../shared/data/anchors_dev*.json were
measured (x264 reproduces them byte for byte), so the same is done here.

Optional anchors, beyond EVAL.md's three:
- av1-svt: SVT-AV1 preset 8, low-delay prediction structure, constant QP (rc=0, aq-mode=0). AV1
  quantizers (0..63) are not on HEVC's QP scale; the five points {20, 32, 43, 55, 63} are the AOM common
  test conditions' base-q values, which on the dev clips span about the bitrate range of HEVC QP 22..42.
  Its OBU stream keeps the 2-byte temporal delimiters, which the format requires.
- vvc-vvenc: VVenC medium, low-delay GOP without picture reordering, QP on HEVC's scale, perceptual
  QP adaptation off. vvenc codes 10-bit only: the 8-bit source is shifted up by ffmpeg and the decoded
  10-bit output is rounded back to 8 bits here (ffmpeg's own conversion would dither). vvenc's low-delay
  mode only accepts DecodingRefreshType=none, so frames 32, 64, ... are intra but not IDR (an open
  intra period: later frames may still reference earlier ones). AUD NAL units are stripped with SEI.
"""
import functools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flowcodec.errors import FlowcodecError, VideoError
from flowcodec.io.ffmpeg import raw_to_frame, run_ffmpeg
from flowcodec.io.y4m import Y4MReader
from flowcodec.eval.metrics import psnr_yuv

HEVC_QPS = (22, 27, 32, 37, 42)


@dataclass(frozen=True)
class Anchor:
    """How to run one anchor.

    encoder: the ffmpeg encoder it needs; args: encoder options, "{qp}" replaced by the QP; stream:
    options that copy the counted elementary stream out of the container; qps: its five RD points;
    pix_fmt: what the encoder is fed and the decoder outputs.
    """

    encoder: str
    args: tuple
    stream: tuple
    qps: tuple = HEVC_QPS
    pix_fmt: str = "yuv420p"


_H264 = ("-bsf:v", "filter_units=remove_types=6", "-f", "h264")
_HEVC = ("-bsf:v", "filter_units=remove_types=39", "-f", "hevc")
_X265 = "qp={qp}:bframes=0:keyint=32:min-keyint=32:scenecut=0"

ANCHORS = {
    "x264-medium": Anchor("libx264", (
        "-c:v", "libx264", "-preset", "medium", "-tune", "psnr", "-bf", "0", "-g", "32",
        "-keyint_min", "32", "-sc_threshold", "0", "-qp", "{qp}"), _H264),
    "x265-medium": Anchor("libx265", (
        "-c:v", "libx265", "-preset", "medium", "-tune", "psnr", "-x265-params", _X265), _HEVC),
    "x265-veryslow": Anchor("libx265", (
        "-c:v", "libx265", "-preset", "veryslow", "-tune", "psnr", "-x265-params", _X265), _HEVC),
    "av1-svt": Anchor("libsvtav1", (
        "-c:v", "libsvtav1", "-preset", "8",
        "-svtav1-params", "tune=1:pred-struct=1:keyint=32:scd=0:rc=0:aq-mode=0:qp={qp}"),
        ("-f", "obu"), qps=(20, 32, 43, 55, 63)),
    "vvc-vvenc": Anchor("libvvenc", (
        "-c:v", "libvvenc", "-preset", "medium", "-qpa", "0", "-qp", "{qp}",
        "-vvenc-params", "IntraPeriod=32:GOPSize=8:DecodingRefreshType=none:PicReordering=0"),
        ("-bsf:v", "filter_units=remove_types=20|23|24", "-f", "vvc"), pix_fmt="yuv420p10le"),
}


@functools.cache
def available_encoders():
    """Names of the video encoders compiled into imageio-ffmpeg's ffmpeg binary."""
    out = run_ffmpeg(["-hide_banner", "-encoders"]).stdout.decode()
    return frozenset(parts[1] for parts in (line.split() for line in out.splitlines())
                     if len(parts) > 1 and parts[0].startswith("V"))


def _ffmpeg(args, what):
    """Run ffmpeg quietly with args; return the wall time in seconds, or raise FlowcodecError."""
    start = time.perf_counter()
    proc = run_ffmpeg(["-y", *args])
    seconds = time.perf_counter() - start
    if proc.returncode:
        # encoder libraries print their own info/warning lines on stderr; report the first other line
        lines = [l for l in proc.stderr.decode(errors="replace").splitlines()
                 if l.strip() and "info]" not in l and "warn" not in l]
        reason = lines[0] if lines else f"ffmpeg exit code {proc.returncode}"
        raise FlowcodecError(f"{what} failed: {reason}")
    return seconds


def _y4m_size(path):
    """Width and height from a y4m header (read by ``io.y4m``); VideoError unless the file is 8-bit
    4:2:0 y4m, the format the anchors' encoders are fed."""
    with Y4MReader(path) as src:
        info = src.info
    if info.bitdepth != 8 or info.chroma != "420":
        raise VideoError(f"{path}: only 8-bit 4:2:0 y4m is supported")
    return info.width, info.height


def _frame_bytes(width, height, pix_fmt):
    """Size in bytes of one raw 4:2:0 frame in pix_fmt (yuv420p or yuv420p10le)."""
    samples = width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)
    return samples * (1 if pix_fmt == "yuv420p" else 2)


def read_frames(path, width, height, pix_fmt):
    """Yield (y, u, v) 8-bit frames from a raw yuv420p file, or from yuv420p10le rounded to 8 bits."""
    with open(path, "rb") as f:
        while buf := f.read(_frame_bytes(width, height, pix_fmt)):
            if pix_fmt != "yuv420p":
                buf = np.minimum((np.frombuffer(buf, "<u2") + 2) >> 2, 255).astype(np.uint8).tobytes()
            yield raw_to_frame(buf, width, height)


def run_anchor(name, y4m_path, qp, frames=None, workdir=None):
    """Code a y4m clip (its first `frames` frames if given) with anchor `name` at `qp` and measure it.

    Returns dict(bytes=elementary stream size, frames=[psnr_yuv dict per frame], psnr_yuv=mean of the
    per-frame yuv values, bpp=8*bytes/(W*H*frames), enc_seconds=, dec_seconds=). Files go to workdir,
    or to a temporary directory that is removed afterwards.
    """
    if name not in ANCHORS:
        raise FlowcodecError(f"unknown anchor {name!r}; known: {', '.join(ANCHORS)}")
    anchor = ANCHORS[name]
    if anchor.encoder not in available_encoders():
        raise FlowcodecError(
            f"anchor {name!r} needs encoder {anchor.encoder}, which this ffmpeg build lacks")
    width, height = _y4m_size(y4m_path)
    limit = ["-frames:v", str(frames)] if frames else []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        mkv, stream, dec = (work / f"{name}_qp{qp}{ext}" for ext in (".mkv", ".bin", ".yuv"))
        src = work / "src.yuv"
        args = [a.replace("{qp}", str(qp)) for a in anchor.args]
        enc_seconds = _ffmpeg(["-i", str(y4m_path), *limit, "-pix_fmt", anchor.pix_fmt, *args,
                               str(mkv)], f"{name} encoding at QP {qp}")
        _ffmpeg(["-i", str(mkv), "-c", "copy", *anchor.stream, str(stream)], f"{name} stream copy")
        dec_seconds = _ffmpeg(["-i", str(mkv), "-f", "rawvideo", "-pix_fmt", anchor.pix_fmt, str(dec)],
                              f"{name} decoding at QP {qp}")
        _ffmpeg(["-i", str(y4m_path), *limit, "-f", "rawvideo", "-pix_fmt", "yuv420p", str(src)],
                "reading the source")
        count = src.stat().st_size // _frame_bytes(width, height, "yuv420p")
        if dec.stat().st_size != count * _frame_bytes(width, height, anchor.pix_fmt):
            raise FlowcodecError(f"{name} at QP {qp} did not decode to {count} frames of {width}x{height}")
        per_frame = [psnr_yuv(s, d) for s, d in zip(read_frames(src, width, height, "yuv420p"),
                                                    read_frames(dec, width, height, anchor.pix_fmt))]
        size = stream.stat().st_size
    return {"bytes": size, "frames": per_frame,
            "psnr_yuv": float(np.mean([p["yuv"] for p in per_frame])),
            "bpp": 8 * size / (width * height * len(per_frame)),
            "enc_seconds": enc_seconds, "dec_seconds": dec_seconds}
