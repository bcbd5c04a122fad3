"""The motion approaches side by side (``flowcodec compare``): every module through the one evaluation
protocol (``eval/run.py``, EVAL.md) on the given clips, and the source document's questions about each
approach answered the same way for all of them on clips rendered from one source.

Per clip and module: BD-rate against x265-medium and against the pyramid, the motion share of the
P-frames' bits, the compensation PSNR (PSNR-YUV of the prediction, before the residual), decode frames
per second (whole process) and, per module, parameters and the decoder's multiply-adds per pixel.

Properties (``render``), each a BD-rate against a clean clip made from the first frames of the source
(centre crop of at most ``PROPERTY_SIZE``), so a positive number is what the property costs the module:

* ``noise2``, ``noise5``, ``noise10``: Gaussian noise of σ 2, 5, 10 (8-bit levels) on every plane,
  against ``clean`` (the codec is measured against the noisy frames it was given);
* ``ramp``: brightness rising 3% per frame; ``flash``: one frame in the middle 48 levels brighter;
* ``occlusion``: a textured square crossing the scene left to right (the area it uncovers is known);
* ``pan_fast``: a camera pan of 8, 4 pixels per frame over the first frame, against ``pan_slow`` (2, 2);
* ``boundary``: on both pans, PSNR of a 16-pixel band at the frame edges minus that of the interior
  (dB; negative: content entering at the edges is coded worse), at the middle quality.

With ``auto`` among the modules (``--motion auto``, each P-frame coded by one approach of the set), the
report also gives, per clip, its BD-rate against the best single module measured on that clip (least
BD-rate against x265-medium) and the share of P-frames each approach coded, over all qualities.

Output folder: ``clips/`` and ``properties/`` (``flowcodec eval`` folders, bitstreams included),
``compare.md`` and ``compare.json`` (the tables), ``rd.png`` (every module's curve per clip) and
``properties.png`` (one panel per property).
"""
import json
import math
import os

import numpy as np

from ..codec.options import AUTO
from ..errors import FlowcodecError
from ..io import VideoInfo, Y4MWriter, atomic_output, open_video
from .metrics import psnr, psnr_yuv
from .run import evaluate, points_bd_rate

ANCHOR = "x265-medium"
CONTROL = "pyramid"
PROPERTY_SIZE = (256, 192)  # largest property clip (a centre crop of the source)
PROPERTIES = {  # property: the clip it is measured against
    "noise2": "clean", "noise5": "clean", "noise10": "clean", "ramp": "clean", "flash": "clean",
    "occlusion": "clean", "pan_fast": "pan_slow"}
PANS = {"pan_slow": (2, 2), "pan_fast": (8, 4)}  # luma pixels per frame (x, y); even, so chroma moves whole
BAND = 16  # luma pixels of the edge band of the boundary measure


def _frames(path, count):
    with open_video(path, frames=count) as src:
        if src.info.bitdepth != 8 or src.info.chroma != "420":
            raise FlowcodecError(f"{path}: the property clips are made from 8-bit 4:2:0 video")
        return [tuple(np.asarray(p) for p in f) for f in src], src.info


def _crop(frame, x, y, w, h):
    """A (y, u, v) window at even luma position (x, y) of even size w×h."""
    return (frame[0][y:y + h, x:x + w], frame[1][y // 2:(y + h) // 2, x // 2:(x + w) // 2],
            frame[2][y // 2:(y + h) // 2, x // 2:(x + w) // 2])


def _clip8(planes):
    return tuple(np.clip(np.round(p), 0, 255).astype(np.uint8) for p in planes)


def render(source, out, frames: int) -> dict:
    """Write the property clips of ``source`` (its first ``frames`` frames; the pans over its first
    frame, windows of at most ``PROPERTY_SIZE``) into ``out``; returns {name: path}."""
    src, info = _frames(source, frames)
    if len(src) < 3:
        raise FlowcodecError(f"{source}: a property clip needs at least 3 frames, it has {len(src)}")
    w, h = (min(a, b) // 2 * 2 for a, b in zip((info.width, info.height), PROPERTY_SIZE))
    x0, y0 = (info.width - w) // 4 * 2, (info.height - h) // 4 * 2
    clean = [_crop(f, x0, y0, w, h) for f in src]
    n, rng = len(clean), np.random.default_rng(0)
    f64 = [tuple(p.astype(np.float64) for p in f) for f in clean]
    clips = {"clean": clean}
    for sigma in (2, 5, 10):
        clips[f"noise{sigma}"] = [_clip8(p + rng.normal(0, sigma, p.shape) for p in f) for f in f64]
    clips["ramp"] = [_clip8((f[0] * (1 + 0.03 * t), f[1], f[2])) for t, f in enumerate(f64)]
    clips["flash"] = [_clip8((f[0] + (48 if t == n // 2 else 0), f[1], f[2])) for t, f in enumerate(f64)]
    side = max(8, min(w, h) // 3) // 2 * 2
    checks = np.indices((side, side)).sum(0) // 4 % 2 * 160.0 + 40  # the crossing object's texture
    occluded = []
    for t, f in enumerate(f64):
        x = round((t * (w + side) / (n - 1) - side) / 2) * 2
        y = (h - side) // 4 * 2
        a, b = max(x, 0), min(x + side, w)
        luma, u, v = (p.copy() for p in f)
        if b > a:
            luma[y:y + side, a:b] = checks[:, a - x:b - x]
            u[y // 2:(y + side) // 2, a // 2:b // 2] = 90
            v[y // 2:(y + side) // 2, a // 2:b // 2] = 170
        occluded.append(_clip8((luma, u, v)))
    clips["occlusion"] = occluded
    step = PANS["pan_fast"]
    pw, ph = (min(s - d * (n - 1), m) // 2 * 2 for s, d, m in zip((info.width, info.height), step, PROPERTY_SIZE))
    if min(pw, ph) < 16:
        raise FlowcodecError(f"{source}: {info.width}x{info.height} is too small for a pan of {n} frames")
    for name, (dx, dy) in PANS.items():
        clips[name] = [_crop(src[0], dx * t, dy * t, pw, ph) for t in range(n)]
    os.makedirs(out, exist_ok=True)
    paths = {}
    for name, fs in clips.items():
        paths[name] = os.path.join(out, f"{name}.y4m")
        ch, cw = fs[0][0].shape
        with Y4MWriter(paths[name], VideoInfo(cw, ch, info.fps_num, info.fps_den)) as writer:
            for f in fs:
                writer.write(f)
    return paths


def compare(clips, out, motions, qualities, frames=None, source=None, property_frames=9, threads=1,
            weights=None, log=None):
    """Measure everything the module docstring lists into ``out``; returns the report (a dict, also
    written as compare.json and compare.md). Stopped runs resume: measured points are kept."""
    from .run import _check_request
    if len(qualities) < 4:
        raise FlowcodecError("compare needs at least 4 qualities (a BD-rate needs 4 points per curve)")
    _check_request(clips, motions, qualities, (ANCHOR,), weights)
    paths = render(source or clips[0], os.path.join(out, "property_clips"), property_frames)
    common = dict(qualities=qualities, threads=threads, weights=weights, log=log, resume=True, tables=False)
    evaluate(clips, os.path.join(out, "clips"), motions, anchors=(ANCHOR,), frames=frames, **common)
    evaluate(list(paths.values()), os.path.join(out, "properties"), motions, anchors=(), **common)
    result = _report(out, motions, qualities, weights)
    with atomic_output(os.path.join(out, "compare.json"), "w") as f:
        json.dump(result, f, indent=1)
    with atomic_output(os.path.join(out, "compare.md"), "w") as f:
        f.write(markdown(result))
    _plots(out, result)
    return result


def _load(folder):
    with open(os.path.join(folder, "results.json")) as f:
        return json.load(f)


def _curve(clip, codec):
    return sorted((p for p in clip["points"] if p["codec"] == codec), key=lambda p: p.get("quality", -p.get("qp", 0)))


def _bd(anchor, test):
    bd = points_bd_rate(anchor, test) if anchor and test else math.nan
    return None if math.isnan(bd) else round(bd, 2)


def motion_share(points) -> float:
    """Motion (and global motion) bytes over all P-frame payload bytes of some RD points."""
    inter = [f for p in points for f in p["frames"] if f["type"] == "INTER"]
    motion = sum(f.get("motion_bytes", 0) + f.get("global_bytes", 0) for f in inter)
    return motion / max(1, sum(f["bytes"] for f in inter))


def _report(out, motions, qualities, weights):
    from ..api import load_model
    from .run import weights_for
    clips, props = _load(os.path.join(out, "clips")), _load(os.path.join(out, "properties"))
    middle = sorted(qualities)[len(qualities) // 2]
    result = {"protocol": clips["protocol"], "qualities": sorted(qualities), "inspected_quality": middle,
              "modules": {}, "clips": {}, "properties": {}, "boundary": {}}
    for m in motions:
        model = load_model(m, weights_for(weights, m))[0]
        result["modules"][m] = {"parameters": sum(p.numel() for c in model.choices for p in c.parameters())}
        for name, clip in clips["clips"].items():
            points = _curve(clip, m)
            mid = next(p for p in points if p["quality"] == middle)
            seen = _inspect(os.path.join(out, "clips", mid["bitstream"]), os.path.join(out, "clips", clip["source"]),
                            model)
            result["modules"][m].setdefault("macs_per_pixel", seen["macs_per_pixel"])
            result["clips"].setdefault(name, {})[m] = {
                "bd_vs_x265": _bd(_curve(clip, ANCHOR), points),
                "bd_vs_pyramid": _bd(_curve(clip, CONTROL), points) if m != CONTROL else 0.0,
                "motion_share": round(motion_share(points), 4),
                "compensation_psnr": seen["compensation_psnr"],
                "decode_fps": round(len(points) * clip["frames"] / sum(p["dec_s"] for p in points), 3)}
        curves = {name: _curve(c, m) for name, c in props["clips"].items()}
        result["properties"][m] = {p: _bd(curves[base], curves[p]) for p, base in PROPERTIES.items()}
        for pan in PANS:
            clip = props["clips"][pan]
            mid = next(p for p in curves[pan] if p["quality"] == middle)
            seen = _inspect(os.path.join(out, "properties", mid["bitstream"]),
                            os.path.join(out, "properties", clip["source"]), model)
            result["boundary"].setdefault(m, {})[pan] = seen["band_db"]
    if AUTO in motions:
        result["auto"] = {name: _auto_row(out, clip, result["clips"][name]) for name, clip in clips["clips"].items()}
    result["summary"] = {m: _mean_row([result["clips"][c][m] for c in result["clips"]]) for m in motions}
    return result


def _auto_row(out, clip, rows):
    """``auto`` on one clip against the best single module measured there, and each approach's share of
    its P-frames (read from the bitstreams: the member each payload names)."""
    from ..codec.bitstream import FrameType, Reader, payload_member
    from ..codec.model import auto_members
    singles = {m: r["bd_vs_x265"] for m, r in rows.items() if m != AUTO and r["bd_vs_x265"] is not None}
    best = min(singles, key=singles.get) if singles else None
    members = auto_members()
    counts = dict.fromkeys(members, 0)
    for p in _curve(clip, AUTO):
        with open(os.path.join(out, "clips", p["bitstream"]), "rb") as f:
            for ftype, payload, _ in Reader(f):
                if ftype == FrameType.INTER:
                    counts[members[payload_member(payload)]] += 1
    total = max(1, sum(counts.values()))
    return {"best": best, "bd_vs_best": _bd(_curve(clip, best), _curve(clip, AUTO)) if best else None,
            "shares": {m: round(n / total, 3) for m, n in counts.items()}}


def _mean_row(rows):
    """Each column's mean over the clips where it is defined (BD-rates may not be)."""
    mean = lambda k: (lambda v: round(float(np.mean(v)), 3) if v else None)([r[k] for r in rows if r[k] is not None])
    return {k: mean(k) for k in rows[0]}


def _conv_counter():
    """A stand-in for ``layers.exact.conv`` that counts the multiply-adds of every convolution the
    codec computes (its one entry point for them) in ``count[0]``."""
    from ..layers import exact
    real, count = exact.conv, [0]

    def counted(x, weight, bias=None, transposed=False, **options):
        y = real(x, weight, bias, transposed, **options)
        count[0] += (x if transposed else y).numel() * weight[0].numel()
        return y
    return counted, count


def _inspect(fcb, source, model):
    """Decode ``fcb`` in this process, keeping each P-frame's prediction: its mean compensation
    PSNR-YUV against the source, the decoder's multiply-adds per pixel and P-frame, and the luma PSNR of
    a BAND-pixel edge band minus that of the interior (dB; None for frames too small for it)."""
    from ..codec.bitstream import FrameType, Reader
    from ..codec.decoder import SequenceDecoder
    from ..frames import to_frame
    from ..layers import exact
    src, _ = _frames(source, None)
    counted, count = _conv_counter()
    real, exact.conv = exact.conv, counted
    comp, gaps, macs, inter = [], [], 0, 0
    try:
        with open(fcb, "rb") as f:
            reader = Reader(f)
            h = reader.header
            dec = SequenceDecoder.for_header(model, h)
            for i, (ftype, payload, quality) in enumerate(reader):
                before = count[0]
                frame = dec.decode(ftype, payload, quality)
                if ftype != FrameType.INTER:
                    continue
                macs, inter = macs + count[0] - before, inter + 1
                comp.append(psnr_yuv(src[i], to_frame(dec.last[1], h.width, h.height))["yuv"])
                if min(h.width, h.height) > 4 * BAND:
                    edge = np.ones((h.height, h.width), bool)
                    edge[BAND:-BAND, BAND:-BAND] = False
                    gaps.append(psnr(src[i][0][edge], frame[0][edge]) - psnr(src[i][0][~edge], frame[0][~edge]))
    finally:
        exact.conv = real
    return {"compensation_psnr": round(float(np.mean(comp)), 3) if comp else None,
            "macs_per_pixel": round(macs / max(1, inter) / (h.width * h.height)),
            "band_db": round(float(np.mean(gaps)), 3) if gaps else None}


def _cell(v, fmt):
    return "–" if v is None else format(v, fmt)


def markdown(result) -> str:
    """The report's tables in markdown."""
    p = result["protocol"]
    lines = [f"Every module through one protocol: {'first ' + str(p['frames']) if p['frames'] else 'all'} "
             f"frames, intra period {p['intra_period']}, preset {p['preset']}, qualities "
             f"{', '.join(map(str, result['qualities']))}, {p['threads']} thread(s); every point a real file "
             "decoded in another process to the encoder's reconstruction. BD-rate: negative saves bits. "
             f"Compensation PSNR, multiply-adds and the boundary gap at quality {result['inspected_quality']}.",
             "", "| clip | module | BD-rate vs x265-medium | vs pyramid | motion share | compensation PSNR dB "
             "| decode fps | parameters | decoder multiply-adds per pixel |", "|---" * 9 + "|"]
    for name, by_motion in result["clips"].items():
        for m, r in by_motion.items():
            mod = result["modules"][m]
            lines.append(f"| {name} | {m} | {_cell(r['bd_vs_x265'], '+.1f')}% | {_cell(r['bd_vs_pyramid'], '+.1f')}% "
                         f"| {100 * r['motion_share']:.0f}% | {_cell(r['compensation_psnr'], '.2f')} "
                         f"| {r['decode_fps']:.2f} | {mod['parameters'] / 1e6:.2f} M | {mod['macs_per_pixel']:,} |")
    lines += ["", "Mean over the clips:", "", "| module | BD-rate vs x265-medium | vs pyramid | motion share "
              "| compensation PSNR dB | decode fps | parameters | decoder multiply-adds per pixel |", "|---" * 8 + "|"]
    for m, r in result["summary"].items():
        mod = result["modules"][m]
        lines.append(f"| {m} | {_cell(r['bd_vs_x265'], '+.1f')}% | {_cell(r['bd_vs_pyramid'], '+.1f')}% "
                     f"| {100 * r['motion_share']:.0f}% | {_cell(r['compensation_psnr'], '.2f')} "
                     f"| {r['decode_fps']:.2f} | {mod['parameters'] / 1e6:.2f} M | {mod['macs_per_pixel']:,} |")
    if AUTO in result:
        names = list(next(iter(result[AUTO].values()))["shares"])
        lines += ["", "auto (each P-frame coded by one approach) against the best single module on each clip, "
                  "and the share of P-frames each approach coded:", "",
                  "| clip | best single module | BD-rate vs it | " + " | ".join(names) + " |", "|---" * (3 + len(names)) + "|"]
        for name, r in result[AUTO].items():
            lines.append(f"| {name} | {r['best']} | {_cell(r['bd_vs_best'], '+.1f')}% | "
                         + " | ".join(f"{100 * r['shares'][m]:.0f}%" for m in names) + " |")
    heads = list(PROPERTIES) + [f"boundary {pan}" for pan in PANS]
    lines += ["", "Properties: BD-rate (%) against the clean clip (noise, lighting, occlusion) or the slow pan "
              "(pan_fast); boundary: edge-band PSNR minus interior PSNR (dB).", "",
              "| module | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for m, props in result["properties"].items():
        cells = [f"{_cell(props[k], '+.1f')}" for k in PROPERTIES] + \
                [_cell(result["boundary"][m][pan], '+.2f') for pan in PANS]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(out, result):
    """rd.png (each clip's curves, every module and x265-medium) and properties.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    clips = _load(os.path.join(out, "clips"))["clips"]
    fig, axes = plt.subplots(1, len(clips), figsize=(5 * len(clips), 4), squeeze=False)
    for ax, (name, clip) in zip(axes[0], clips.items()):
        for codec in [ANCHOR] + list(result["properties"]):
            points = _curve(clip, codec)
            ax.plot([p["bpp"] for p in points], [p["psnr_yuv"] for p in points], "o-" if codec != ANCHOR else "k--",
                    label=codec, markersize=3)
        ax.set(title=name, xlabel="bpp", ylabel="PSNR-YUV (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "rd.png"), dpi=110)
    plt.close(fig)
    heads = list(PROPERTIES) + [f"boundary {pan}" for pan in PANS]
    fig, axes = plt.subplots(1, len(heads), figsize=(2.2 * len(heads), 3.2), sharey=False)
    motions = list(result["properties"])
    for ax, head in zip(axes, heads):
        values = [result["properties"][m].get(head) if head in PROPERTIES else
                  result["boundary"][m][head.split()[1]] for m in motions]
        ax.bar(range(len(motions)), [np.nan if v is None else v for v in values], color="C0")
        ax.set_xticks(range(len(motions)), motions, rotation=90, fontsize=7)
        ax.set_title(head + (" (dB)" if head.startswith("boundary") else " (%)"), fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "properties.png"), dpi=110)
    plt.close(fig)
