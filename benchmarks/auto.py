"""``--motion auto`` measured on the validation split of the training sources (never the dev clips): the
held-out crops that ``flowcodec train`` validates on (``train/validate.py``: 8 frames of 256×192, an HEVC
intra frame then 7 P-frames). Each clip is coded by every single module and by the motion set with
each trial rule (``encoder.AUTO_TRIALS``: every N P-frames all members are tried, on the frames between
the K best of that trial; 1:0 tries all on every frame). Prints per clip the BD-rate of each rule against
the best single module there (least BD-rate against the pyramid), its encode time against the
pyramid's in the same run, and how often each module was chosen. This is where the presets' trial
rules are chosen:

    flowcodec data fetch --root data
    python benchmarks/auto.py --data data --trials 1:0 8:2 32:1 --levels 1 3 5 7 --json auto.json
    python benchmarks/auto.py --data data --trials 8:3 8:5 --singles auto.json   # more rules, same singles

(``--singles``: the single modules' curves of an earlier run's JSON; the pyramid is coded again, as the
time base of the run.)
"""
import argparse
import collections
import json
import time

import numpy as np
import torch

from flowcodec.api import load_model
from flowcodec.codec import encoder
from flowcodec.eval.metrics import bd_rate
from flowcodec.motion import available
from flowcodec.train.data import ClipSampler
from flowcodec.train.validate import clips, curve


def _rule(text):
    every, keep = text.split(":")
    return int(every), int(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data", help="folder of `flowcodec data fetch`")
    ap.add_argument("--trials", type=_rule, nargs="+", default=[(1, 0), (8, 2)],
                    help="trial rules EVERY:KEEP to measure (1:0 = every member on every P-frame)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5, 7])
    ap.add_argument("--clips", nargs="+", help="only these validation clips (e.g. vtest0 bikes1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the curves, times and choices here")
    ap.add_argument("--singles", help="take the single modules' curves (but the pyramid's) from this JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    val = {k: v for k, v in clips(ClipSampler(a.data)).items() if not a.clips or k in a.clips}
    models = {m: load_model(m)[0] for m in available()}
    auto = load_model("auto")[0]
    earlier = json.load(open(a.singles))["table"] if a.singles else {}
    table = {}
    for name, frames in val.items():
        row = table[name] = {}
        for m, model in models.items():
            if m != "pyramid" and m in earlier.get(name, {}):
                row[m] = earlier[name][m]
                continue
            t0 = time.time()
            row[m] = {"curve": curve(model, frames, a.levels), "seconds": time.time() - t0}
            print(name, m, [(round(b, 4), round(p, 2)) for b, p in row[m]["curve"]], flush=True)
        for every, keep in a.trials:
            encoder.AUTO_TRIALS["medium"] = (every, keep)
            chosen = []
            t0 = time.time()
            points = curve(auto, frames, a.levels, chosen=chosen)
            key = f"auto {every}:{keep}"
            row[key] = {"curve": points, "seconds": time.time() - t0,
                        "chosen": dict(collections.Counter(auto.names[i] for i in chosen).most_common())}
            print(name, key, [(round(b, 4), round(p, 2)) for b, p in points], row[key]["chosen"], flush=True)
    print("\n| clip | best single module (BD-rate vs pyramid) | "
          + " | ".join(f"auto {e}:{k} vs it (encode time × pyramid)" for e, k in a.trials) + " |")
    print("|---" * (2 + len(a.trials)) + "|")
    means = collections.defaultdict(list)
    for name, row in table.items():
        vs_pyramid = {m: bd_rate(*zip(*row["pyramid"]["curve"]), *zip(*row[m]["curve"])) for m in models}
        best = min(vs_pyramid, key=vs_pyramid.get)
        cells = []
        for every, keep in a.trials:
            key = f"auto {every}:{keep}"
            bd = bd_rate(*zip(*row[best]["curve"]), *zip(*row[key]["curve"]))
            ratio = row[key]["seconds"] / row["pyramid"]["seconds"]
            means[key].append((bd, ratio))
            cells.append(f"{bd:+.2f}% ({ratio:.1f}×)")
        print(f"| {name} | {best} ({vs_pyramid[best]:+.1f}%) | " + " | ".join(cells) + " |")
    print("| mean | | " + " | ".join(f"{np.mean([b for b, _ in v]):+.2f}% ({np.mean([r for _, r in v]):.1f}×)"
                                     for v in means.values()) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"levels": a.levels, "table": table}, f, indent=1)


if __name__ == "__main__":
    main()
