"""Motion approaches side by side, from ``flowcodec eval`` results: per clip, each codec's BD-rate
against a control codec and against x265-medium, the motion share of its P-frame bits, its decoding
speed, and its P-frame codec's parameters.

    python benchmarks/approaches.py results/format3-finetuned/results.json:pyramid \\
        results/format4-pixel_to_feature/all.json:pixel_to_feature results/format4-feature/all.json:feature

The first ``FILE:CODEC`` is the control (e.g. the pyramid trained with the same budget); every run
must follow the same protocol (EVAL.md). Motion share: motion (+ global) bytes over all P-frame
payload bytes, at the lowest and the highest quality level. Decoding speed: frames over the summed
whole-process decode seconds of every level, with the threads of the protocol (printed).
"""
import argparse
import json

from flowcodec.codec.model import VideoModel
from flowcodec.eval.compare import motion_share
from flowcodec.eval.run import points_bd_rate


def _points(spec: str):
    path, codec = spec.rsplit(":", 1)
    results = json.load(open(path))
    return codec, results["protocol"], {
        name: (clip, sorted((p for p in clip["points"] if p["codec"] == codec), key=lambda p: p["quality"]))
        for name, clip in results["clips"].items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="FILE:CODEC, the control first")
    a = ap.parse_args()
    runs = [_points(spec) for spec in a.runs]
    control, protocol = runs[0][0], runs[0][1]
    for codec, other, _ in runs[1:]:
        differs = {k for k in protocol if k != "weights" and protocol.get(k) != other.get(k)}
        if differs:
            raise SystemExit(f"{codec}: another protocol than the control's ({', '.join(sorted(differs))})")
    print(f"decode threads: {protocol['threads']}")
    print("| codec | clip | vs " + control + " | vs x265-medium | motion share q-low…q-high | decode fps |")
    print("|---|---|---|---|---|---|")
    for codec, _, clips in runs:
        gains = []
        for name, (clip, points) in clips.items():
            if not points or name not in runs[0][2]:
                continue
            x265 = [p for p in clip["points"] if p["codec"] == "x265-medium"] or \
                [p for p in runs[0][2][name][0]["points"] if p["codec"] == "x265-medium"]
            bd = points_bd_rate(runs[0][2][name][1], points)
            gains.append(bd)
            fps = len(points) * clip["frames"] / sum(p["dec_s"] for p in points)
            print(f"| {codec} | {name} | {bd:+.1f}% | {points_bd_rate(x265, points):+.1f}% | "
                  f"{100 * motion_share(points[:1]):.0f}…{100 * motion_share(points[-1:]):.0f}% | {fps:.1f} |")
        params = sum(p.numel() for p in VideoModel(codec).inter.parameters())
        mean = f"{sum(gains) / len(gains):+.1f}%" if gains else "-"
        print(f"| {codec} | mean, {params / 1e6:.2f} M P-frame parameters | {mean} | | | |")


if __name__ == "__main__":
    main()
