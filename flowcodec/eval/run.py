"""Rate-distortion evaluation under EVAL.md: flowcodec (every motion approach and quality level) and
the standard-codec anchors on the same clips, per frame, with tables, BD-rates and RD plots.

flowcodec is run the way a user runs it: ``python -m flowcodec.cli encode --recon`` and ``decode`` as
separate processes on files in the output folder, and the decoded file must equal the encoder's
reconstruction byte for byte. Rate is the .fcb file size (container headers included); quality is
measured on the decoded file against the source with ``metrics.py``, exactly as for the anchors, so
the numbers agree with the independent ``../shared/tools/rdcheck.py``. Times are whole-process wall
seconds (start-up and model loading included), as EVAL.md asks for speed.

Output folder:
  results.json              everything, per frame (written by ``evaluate``; all else derives from it)
  summary.csv               one row per clip x codec x RD point
  bdrate.csv                BD-rate (%) of each flowcodec motion approach vs each anchor, per clip and mean
  rd_<clip>.png             RD curves, bpp vs PSNR-YUV
  README_table.md           the RD and BD-rate tables in markdown
  <clip>/source.y4m         the frames that were coded (the first --frames frames of the clip)
  <clip>/<motion>_q<Q>.fcb  flowcodec bitstreams (reconstructions and decoded files are deleted once
                            measured; anchor streams live in a temporary folder)
``report`` rebuilds everything but results.json, the clip folders and bitstreams without re-encoding.
"""
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from ..codec.bitstream import FrameType, Reader, stream_sizes
from ..codec.options import AUTO, QUALITIES
from ..errors import FlowcodecError
from ..io import Y4MWriter, atomic_output, open_video
from .anchors import ANCHORS, available_encoders, read_frames, run_anchor
from .metrics import bd_rate, msssim_rgb, psnr_yuv

DEFAULT_ANCHORS = ("x264-medium", "x265-medium", "x265-veryslow")
COLUMNS = ("bpp", "psnr_yuv", "psnr_y", "psnr_u", "psnr_v", "msssim", "enc_s", "dec_s")


def weights_for(weights, motion):
    """The --weights argument for one motion approach: a file as given, or <motion>.safetensors in a
    folder (so one folder serves several approaches; "auto" takes the folder itself); None means the
    shipped weights."""
    if weights and os.path.isdir(weights) and motion != AUTO:
        return os.path.join(weights, f"{motion}.safetensors")
    return weights


def _check_request(clips, motions, qualities, anchors, weights):
    """Refuse an impossible request before spending minutes on the possible part of it."""
    from ..api import load_model
    if not clips:
        raise FlowcodecError("no clips given")
    if len({_name(c) for c in clips}) < len(clips):
        raise FlowcodecError("two clips have the same file name; results are kept by name")
    for m in motions:
        try:
            load_model(m, weights_for(weights, m))
        except FlowcodecError as e:
            raise FlowcodecError(f"{e} (choose --motion, or pass a folder of <motion>.safetensors)") from None
        except Exception as e:  # safetensors and torch have their own errors for a bad file
            raise FlowcodecError(f"cannot load weights for motion '{m}': {e}") from None
    if not all(1 <= q <= QUALITIES for q in qualities):
        raise FlowcodecError(f"qualities must be 1..{QUALITIES}")
    for a in anchors:
        if a not in ANCHORS:
            raise FlowcodecError(f"unknown anchor {a!r}; known: {', '.join(ANCHORS)}")
        if ANCHORS[a].encoder not in available_encoders():
            raise FlowcodecError(f"anchor {a!r} needs encoder {ANCHORS[a].encoder}, "
                                 "which this ffmpeg build lacks")


def _name(clip):
    """A clip's name in the results: its file name without extension."""
    return os.path.basename(clip).rsplit(".", 1)[0]


def _prepare(clip, out, frames):
    """Write the frames to code (the first `frames`, or all) as DIR/<name>/source.y4m; return its info."""
    name = _name(clip)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    source = os.path.join(folder, "source.y4m")
    with open_video(clip, frames=frames) as src:
        info = src.info
        if info.bitdepth != 8 or info.chroma != "420":
            raise FlowcodecError(f"{clip}: EVAL.md clips are 8-bit 4:2:0")
        with Y4MWriter(source, info) as writer:
            count = 0
            for frame in src:
                writer.write(frame)
                count += 1
    if count == 0:
        raise FlowcodecError(f"{clip}: no frames")
    return {"name": name, "path": clip, "width": info.width, "height": info.height, "frames": count,
            "source": os.path.relpath(source, out)}


def _frame_metrics(source, decoded):
    """Per-frame PSNR (y, u, v, yuv) and MS-SSIM of decoded frames against the source y4m.

    MS-SSIM is None where the frame is too small for it (see ``msssim_rgb``), so the JSON stays valid.
    """
    result = []
    with open_video(source) as src:
        for s, d in zip(src, decoded):
            m = msssim_rgb(s, d)
            result.append({**psnr_yuv(s, d), "msssim": None if math.isnan(m) else m})
    return result


def _means(frames):
    """Point-level means of the per-frame metrics (MS-SSIM: None unless every frame has one)."""
    mean = lambda key: float(np.mean([f[key] for f in frames]))
    ssim = [f["msssim"] for f in frames]
    return {"psnr_yuv": mean("yuv"), "psnr_y": mean("y"), "psnr_u": mean("u"), "psnr_v": mean("v"),
            "msssim": None if None in ssim else float(np.mean(ssim))}


def payload_bytes(ftype, payload):
    """Rate of one frame record: {type, bytes, and for inter frames <tag>_bytes per sub-stream}.

    ``bytes`` is the whole payload; an inter payload is split into its tagged sub-streams (motion,
    residual, and any the motion module codes itself), whose sizes exclude the framing (count, tags,
    lengths).
    """
    frame = {"type": ftype.name, "bytes": len(payload)}
    if ftype == FrameType.INTER:
        frame.update({f"{tag}_bytes": n for tag, n in stream_sizes(ftype, payload).items()})
    return frame


def frame_bits(path):
    """Model id and per-frame ``payload_bytes`` of a .fcb (the rest of the file is container overhead)."""
    with open(path, "rb") as f:
        reader = Reader(f)
        frames = [payload_bytes(ftype, payload) for ftype, payload, _ in reader]
    return reader.header.model_id, frames


def _cli(*args):
    """Run ``python -m flowcodec.cli ARGS -q``; return its wall seconds, FlowcodecError if it fails."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flowcodec.cli", *args, "-q"], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        raise FlowcodecError(f"{args[0]} failed: {lines[-1] if lines else f'exit code {proc.returncode}'}")
    return seconds


def _flowcodec_point(clip, out, motion, quality, intra_period, weights, threads, intra, adaptive_intra,
                     preset="medium"):
    """Encode, decode (separate processes), check bit-exactness and measure one flowcodec RD point."""
    folder = os.path.join(out, clip["name"])
    stem = os.path.join(folder, f"{motion}_q{quality}")
    fcb, recon, decoded = stem + ".fcb", stem + ".recon.y4m", stem + ".decoded.y4m"
    w = weights_for(weights, motion)
    common = ["--threads", str(threads)] + (["--weights", w] if w else [])
    what = f"{clip['name']} {motion} q{quality}"
    try:
        enc_s = _cli("encode", os.path.join(out, clip["source"]), "-o", fcb, "--recon", recon,
                     "--quality", str(quality), "--motion", motion, "--intra-period", str(intra_period),
                     "--intra", intra, *([] if adaptive_intra else ["--no-adaptive-intra"]),
                     "--preset", preset, *common)
        dec_s = _cli("decode", fcb, "-o", decoded, *common)
    except FlowcodecError as e:
        raise FlowcodecError(f"{what}: {e}") from None
    with open(recon, "rb") as r, open(decoded, "rb") as d:
        if r.read() != d.read():
            raise FlowcodecError(f"{what}: decoded file {decoded} differs from the encoder's "
                                 f"reconstruction {recon}")
    model_id, bits = frame_bits(fcb)
    with open_video(decoded) as dec:
        frames = _frame_metrics(os.path.join(out, clip["source"]), dec)
    os.remove(recon)
    os.remove(decoded)
    if len(frames) != clip["frames"]:
        raise FlowcodecError(f"{what}: {len(frames)} frames decoded, {clip['frames']} expected")
    size = os.path.getsize(fcb)
    return {"codec": motion, "kind": "flowcodec", "point": f"q{quality}", "quality": quality,
            "model_id": model_id, "bitstream": os.path.relpath(fcb, out), "bytes": size,
            "bpp": 8 * size / (clip["width"] * clip["height"] * clip["frames"]), **_means(frames),
            "enc_s": enc_s, "dec_s": dec_s, "frames": [{**b, **m} for b, m in zip(bits, frames)]}


def _anchor_point(clip, out, name, qp):
    """Run one anchor point; add MS-SSIM, which run_anchor does not measure, from its decoded file."""
    source = os.path.join(out, clip["source"])
    with tempfile.TemporaryDirectory(dir=out) as work:
        r = run_anchor(name, source, qp, workdir=work)
        decoded = os.path.join(work, f"{name}_qp{qp}.yuv")
        frames = _frame_metrics(source, read_frames(decoded, clip["width"], clip["height"],
                                                ANCHORS[name].pix_fmt))
    return {"codec": name, "kind": "anchor", "point": f"qp{qp}", "qp": qp, "bytes": r["bytes"],
            "bpp": r["bpp"], **_means(frames), "enc_s": r["enc_seconds"], "dec_s": r["dec_seconds"],
            "frames": frames}


def evaluate(clips, out, motions, qualities, anchors=DEFAULT_ANCHORS, frames=None, intra_period=32,
             weights=None, threads=2, log=None, intra="hevc", resume=False, adaptive_intra=True,
             preset="medium", tables=True):
    """Measure every clip x (anchor x QP, motion x quality) point into results.json, then ``report``
    (its tables printed unless ``tables`` is False).

    results.json is rewritten after every point, so a run that fails or is stopped keeps what it
    measured (``report`` renders it); with ``resume`` the points it already holds (same protocol) are
    kept and not measured again, so a stopped run can go on or another motion can be added.
    log: called with one progress line per point (default: stderr).
    """
    import torch
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    _check_request(clips, motions, qualities, anchors, weights)
    torch.set_num_threads(1)  # for MS-SSIM here; more threads crawl when training shares the cores
    os.makedirs(out, exist_ok=True)
    prepared = [_prepare(c, out, frames) for c in clips]  # an unreadable clip fails before any coding
    results = {"protocol": {"frames": frames, "intra_period": intra_period, "intra": intra,
                            "adaptive_intra": adaptive_intra, "threads": threads, "weights": weights,
                            "anchor_keyint": 32, "preset": preset},
               "clips": {}}
    path = os.path.join(out, "results.json")
    if resume and os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old.get("protocol") != results["protocol"]:
            raise FlowcodecError(f"{path} was measured under another protocol: {old.get('protocol')}")
        results = old
    done = {(name, p["codec"], p["point"]) for name, c in results["clips"].items() for p in c["points"]}

    def keep(clip, point):
        results["clips"].setdefault(clip["name"], {**clip, "points": []})["points"].append(point)
        log(_progress(clip, point))
        with atomic_output(path, "w") as f:
            json.dump(results, f, indent=1)

    todo = lambda clip, codec, point: (clip["name"], codec, point) not in done
    for clip in prepared:
        for name in anchors:
            for qp in ANCHORS[name].qps:
                if todo(clip, name, f"qp{qp}"):
                    keep(clip, _anchor_point(clip, out, name, qp))
        for motion in motions:
            for q in qualities:
                if todo(clip, motion, f"q{q}"):
                    keep(clip, _flowcodec_point(clip, out, motion, q, intra_period, weights, threads, intra,
                                                adaptive_intra, preset))
    report(out, tables)


def _progress(clip, p):
    return (f"{clip['name']} {p['codec']} {p['point']}: {p['bpp']:.4f} bpp, {p['psnr_yuv']:.3f} dB, "
            f"enc {p['enc_s']:.2f} s, dec {p['dec_s']:.2f} s")


def points_bd_rate(anchor, test):
    """BD-rate (%) of test vs anchor points; NaN when it is undefined (too few points, no overlap,
    repeated PSNR values)."""
    try:
        return bd_rate([p["bpp"] for p in anchor], [p["psnr_yuv"] for p in anchor],
                       [p["bpp"] for p in test], [p["psnr_yuv"] for p in test])
    except ValueError:
        return float("nan")


def _by_codec(points, kind):
    """{codec: [points]} for the points of one kind ("flowcodec" or "anchor"), in first-seen order."""
    groups = {}
    for p in points:
        if p["kind"] == kind:
            groups.setdefault(p["codec"], []).append(p)
    return groups


def _fmt(value, digits):
    """A number for the tables: fixed digits, "n/a" for None (no MS-SSIM) and NaN."""
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def rd_rows(results):
    """Header and rows of the RD table (also summary.csv): clip, codec, point, COLUMNS."""
    rows = [[name, p["codec"], p["point"], *(p[c] for c in COLUMNS)]
            for name, clip in results["clips"].items() for p in clip["points"]]
    return ["clip", "codec", "point", *COLUMNS], rows


def bd_rows(results):
    """Header and rows of the BD-rate table: one row per flowcodec motion x anchor, one column per
    clip, then the mean over the clips where it is defined."""
    clips = results["clips"]
    pairs = {}
    for name, clip in clips.items():
        tests, anchors = _by_codec(clip["points"], "flowcodec"), _by_codec(clip["points"], "anchor")
        for t, tp in tests.items():
            for a, ap in anchors.items():
                pairs.setdefault((t, a), {})[name] = points_bd_rate(ap, tp)
    rows = []
    for (t, a), per_clip in pairs.items():
        values = [per_clip.get(name, float("nan")) for name in clips]
        defined = [v for v in values if not math.isnan(v)]
        rows.append([t, a, *values, float(np.mean(defined)) if defined else float("nan"), len(defined)])
    return ["motion", "anchor", *clips, "mean", "clips_in_mean"], rows


def _text_table(header, rows):
    """Aligned plain-text table of already formatted cells."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))
    return "\n".join([line(header), *(line(r) for r in rows)])


def _md_table(header, rows):
    """Markdown table of already formatted cells."""
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(str(c) for c in r) + " |" for r in rows)])


def _formatted(results):
    """The RD and BD-rate tables with their numbers formatted for reading."""
    digits = {"bpp": 4, "psnr_yuv": 3, "psnr_y": 3, "psnr_u": 3, "psnr_v": 3, "msssim": 5,
              "enc_s": 2, "dec_s": 2}
    rd_head, rd = rd_rows(results)
    rd = [r[:3] + [_fmt(v, digits[c]) for v, c in zip(r[3:], COLUMNS)] for r in rd]
    bd_head, bd = bd_rows(results)
    pct = lambda v: "n/a" if math.isnan(v) else f"{v:+.1f}%"
    bd = [r[:2] + [pct(v) for v in r[2:-2]] + [f"{pct(r[-2])} ({r[-1]}/{len(r) - 4})"] for r in bd]
    return (rd_head, rd), (bd_head[:-1], bd)


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def _plot(clip, name, path):
    """RD curves (bpp vs PSNR-YUV) of every codec on one clip."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    for kind, style in (("flowcodec", "-o"), ("anchor", "--s")):
        for codec, pts in _by_codec(clip["points"], kind).items():
            pts = sorted(pts, key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in pts], [p["psnr_yuv"] for p in pts], style, label=codec, ms=4)
    ax.set(xlabel="bpp", ylabel="PSNR-YUV (dB, 6:1:1)",
           title=f"{name} ({clip['width']}x{clip['height']}, {clip['frames']} frames)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out, show=True):
    """From DIR/results.json: print the RD and BD-rate tables (if ``show``); write summary.csv,
    bdrate.csv, README_table.md and rd_<clip>.png."""
    path = os.path.join(out, "results.json")
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as e:
        raise FlowcodecError(f"cannot read {path}: {e}") from None
    _write_csv(os.path.join(out, "summary.csv"), *rd_rows(results))
    _write_csv(os.path.join(out, "bdrate.csv"), *bd_rows(results))
    for name, clip in results["clips"].items():
        _plot(clip, name, os.path.join(out, f"rd_{name}.png"))
    (rd_head, rd), (bd_head, bd) = _formatted(results)
    frames = results["protocol"]["frames"]
    note = (f"{'first ' + str(frames) if frames else 'all'} frames, intra period "
            f"{results['protocol']['intra_period']}"
            f"{', adaptive intra frames' if results['protocol'].get('adaptive_intra') else ''}"
            f", preset {results['protocol'].get('preset', 'medium')}"
            "; bpp from the file size (headers included); "
            "PSNR-YUV = (6Y+U+V)/8 per frame, averaged; enc/dec: whole-process wall seconds.\n"
            "BD-rate: pchip over the overlapping PSNR-YUV range, negative = flowcodec saves bits; "
            "mean over the clips where it is defined (count in brackets).")
    with open(os.path.join(out, "README_table.md"), "w") as f:
        f.write(f"{note}\n\n{_md_table(rd_head, rd)}\n\n{_md_table(bd_head, bd)}\n")
    if show:
        print(f"{_text_table(rd_head, rd)}\n\nBD-rate (flowcodec vs anchor)\n{_text_table(bd_head, bd)}\n\n"
              f"{note}\nwritten to {out}")
