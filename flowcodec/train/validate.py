"""Validation inside ``flowcodec train``: the real rate-distortion of the weights being trained.

The validation split is the last ``HELD_OUT_FRAMES`` frames of every fetched video (``ClipSampler``
never draws them), so it comes from the training sources, never from the dev clips, the robustness
benchmark's photographs or the bundled clip. Every validation codes a few short crops of those frames
with the real encoder (``SequenceEncoder``: exact arithmetic, range-coded bytes, HEVC intra frames, block
modes; adaptive intra off, so that every frame after the first is a P-frame and the number measures the
P-frame codec) at several quality levels, with the weights as they would be exported (float16 through
``save``/``load``). A curve is (bpp from payload bytes, PSNR-YUV) per level; the score of a checkpoint
is the mean over clips of its BD-rate against the curve of the weights the run started from.
"""
import os
import tempfile

import numpy as np

from ..codec.encoder import SequenceEncoder
from ..codec.model import load, save
from ..eval.metrics import bd_rate, psnr_yuv
from .data import HELD_OUT_FRAMES, planes, trainable

CLIP = (256, 192)  # luma size of a validation crop
FRAMES = 8  # frames per validation clip: 1 intra + 7 P-frames, so that drift across P-frames counts
LEVELS = (1, 3, 5, 7, 9)  # quality levels of a validation curve (the ladder's ends and middle)


def clips(sampler) -> dict:
    """name -> list of 8-bit (y, u, v) frames: a centred crop of the first ``FRAMES`` held-out frames
    of each fetched video that has held-out frames (none: no validation)."""
    out = {}
    for name, (data, w, h) in zip(sampler.names, sampler.videos):
        if trainable(len(data)) == len(data):
            continue  # too short to hold frames out
        cw, ch = min(CLIP[0], w), min(CLIP[1], h)
        x0, y0 = (w - cw) // 4 * 2, (h - ch) // 4 * 2
        frames = []
        for t in range(len(data) - HELD_OUT_FRAMES, len(data) - HELD_OUT_FRAMES + FRAMES):
            y, u, v = planes(np.asarray(data[t]), w, h)
            frames.append((np.ascontiguousarray(y[y0:y0 + ch, x0:x0 + cw]),
                           *(np.ascontiguousarray(c[y0 // 2:(y0 + ch) // 2, x0 // 2:(x0 + cw) // 2]) for c in (u, v))))
        out[name] = frames
    return out


def curve(model, frames, levels=LEVELS, preset="medium", chosen: list | None = None) -> list[tuple[float, float]]:
    """(bpp, PSNR-YUV) of coding ``frames`` at each level with the real encoder (bytes of the payloads);
    ``chosen`` gets the motion-set member of every P-frame coded."""
    h, w = frames[0][0].shape
    points = []
    for q in levels:
        enc = SequenceEncoder(model, w, h, q, intra_period=len(frames), adaptive_intra=False, preset=preset)
        nbytes, psnr = 0, 0.0
        for frame in frames:
            _, payload, recon = enc.encode(frame)
            nbytes += len(payload)
            psnr += psnr_yuv(frame, recon)["yuv"] / len(frames)
        points.append((8 * nbytes / (w * h * len(frames)), psnr))
        if chosen is not None:
            chosen += enc.chosen
    return points


def exported(model):
    """The weights as ``--export`` would write them (transforms in float16), loaded for coding."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "val.safetensors")
        save(model, path)
        return load(path)[0]


def validate(model, val_clips: dict, start: dict | None) -> dict:
    """One validation: every clip's curve and, given the start's curves, BD-rates against them (%)."""
    coder = exported(model)
    # rounded as logged: a resumed run compares with the start's curves as its checkpoint stored them
    curves = {name: [[round(b, 6), round(p, 4)] for b, p in curve(coder, frames)]
              for name, frames in val_clips.items()}
    rec = {"curves": curves}
    if start is not None:
        bd = {k: bd_rate(*zip(*start[k]), *zip(*v)) for k, v in curves.items()}
        rec["bd_rate"] = {k: round(v, 3) for k, v in bd.items()}
        rec["score"] = round(float(np.mean(list(bd.values()))), 3)
    return rec


def plot(records: list[dict], path: str):
    """The validation curves of a run: BD-rate against the start per clip and their mean, by step."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    steps = [r["step"] for r in records if "score" in r]
    if not steps:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in records[-1]["bd_rate"]:
        ax.plot(steps, [r["bd_rate"][name] for r in records if "score" in r], label=name, alpha=0.7)
    ax.plot(steps, [r["score"] for r in records if "score" in r], "k-o", label="mean", lw=2)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("validation BD-rate vs start (%)")
    ax.legend()
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)

