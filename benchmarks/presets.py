"""Encoder presets measured on the validation split of the training sources (never the dev clips):
the held-out crops that ``flowcodec train`` validates on (``train/validate.py``: 8 frames of 256×192,
HEVC intra frame then 7 P-frames), coded with each preset at the given levels; prints per clip and on
average the BD-rate against ``medium`` and the encode time per frame (its ratio to ``medium``'s in
the same run). This is where the presets' search settings are chosen (``--steps``, ``--step-size``
override them for a trial):

    flowcodec data fetch --root data
    python benchmarks/presets.py --data data --presets fast medium slow --levels 1 3 5 7
"""
import argparse
import json
import time

import numpy as np
import torch

from flowcodec.codec import encoder
from flowcodec.codec.model import load, weights_path
from flowcodec.codec.options import PRESETS
from flowcodec.eval.metrics import bd_rate
from flowcodec.train.data import ClipSampler
from flowcodec.train.validate import clips, curve


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data", help="folder of `flowcodec data fetch`")
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--presets", nargs="+", choices=PRESETS, default=["fast", "medium", "slow"])
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5, 7])
    ap.add_argument("--clips", nargs="+", help="only these validation clips (e.g. vtest0 bikes1)")
    ap.add_argument("--steps", type=int, help="search steps of slow and veryslow (default: encoder.SEARCH)")
    ap.add_argument("--step-size", type=float, help="search step size of slow and veryslow (default: encoder.SEARCH)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the table here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for preset in ("slow", "veryslow"):  # a trial's settings
        steps, size = encoder.SEARCH[preset]
        encoder.SEARCH[preset] = (a.steps or steps, a.step_size or size)
    model = load(weights_path(a.motion))[0]
    val = clips(ClipSampler(a.data))
    val = {k: v for k, v in val.items() if not a.clips or k in a.clips}
    table = {}
    for name, frames in val.items():
        for preset in ["medium"] + [p for p in a.presets if p != "medium"]:
            t0 = time.time()
            points = curve(model, frames, a.levels, preset)
            secs = (time.time() - t0) / (len(frames) * len(a.levels))
            table.setdefault(name, {})[preset] = {"curve": points, "sec_per_frame": secs}
            print(name, preset, [(round(b, 4), round(p, 2)) for b, p in points], f"{secs:.2f} s/frame",
                  flush=True)
    print("\n| preset | " + " | ".join(val) + " | mean BD-rate vs medium | encode s/frame (× medium) |")
    print("|---" * (len(val) + 3) + "|")
    for preset in a.presets:
        bd = [bd_rate(*zip(*table[n]["medium"]["curve"]), *zip(*table[n][preset]["curve"])) for n in val]
        secs = np.mean([table[n][preset]["sec_per_frame"] for n in val])
        ratio = secs / np.mean([table[n]["medium"]["sec_per_frame"] for n in val])
        print(f"| {preset} | " + " | ".join(f"{b:+.1f}%" for b in bd) + f" | {np.mean(bd):+.2f}% | {secs:.2f} ({ratio:.1f}×) |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"levels": a.levels, "search": encoder.SEARCH,
                       "table": table}, f, indent=1)


if __name__ == "__main__":
    main()
