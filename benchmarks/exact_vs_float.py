"""BD-rate of the exact codec (format 4, ``layers.exact``) against the float one it replaced, per clip.

    python benchmarks/exact_vs_float.py results/format4-pyramid/results.json results/dev/results.json --codec pyramid
    python benchmarks/exact_vs_float.py results/format4-decomposed/results.json results/format3-decomposed/results.json --codec decomposed

The first file holds the exact codec's points, the second the float codec's, both from ``flowcodec
eval`` under the same protocol with the same weights. A float run written in format 2 (``results/dev``)
is re-framed as format 3 first: the same coded symbols and pixels, each P-frame's two u32 stream lengths
replaced by format 3's count, tags and LEB128 lengths (docs/bitstream.md), so the comparison is
exact-vs-float arithmetic alone. Prints, per clip, the BD-rate (negative: the exact codec saves bits),
both codecs' BD-rate against x265-medium, and their total encode and decode seconds.
"""
import argparse
import json

from flowcodec.codec.bitstream import _varint
from flowcodec.eval.run import points_bd_rate


def as_format3(point: dict, pixels: int) -> dict:
    """A format-2 point with its file size as format 3 would have written it."""
    saved = 0
    for frame in point["frames"]:
        if frame["type"] == "INTER":
            streams = [frame["motion_bytes"], frame["residual_bytes"]]
            assert 4 * len(streams) + sum(streams) == frame["bytes"], frame
            saved += 4 * len(streams) - (1 + sum(1 + len(_varint(s)) for s in streams))
    size = point["bytes"] - saved
    return {**point, "bytes": size, "bpp": 8 * size / pixels}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exact")
    ap.add_argument("float")
    ap.add_argument("--codec", default="pyramid")
    a = ap.parse_args()
    exact, float_ = (json.load(open(path)) for path in (a.exact, a.float))
    found = []
    for name, clip in exact["clips"].items():
        test = sorted((p for p in clip["points"] if p["codec"] == a.codec), key=lambda p: p["quality"])
        ref = [p for p in float_["clips"].get(name, {"points": []})["points"] if p["codec"] == a.codec]
        pixels = clip["width"] * clip["height"] * clip["frames"]
        ref = sorted((as_format3(p, pixels) if p["model_id"].endswith("-v2") else p for p in ref),
                     key=lambda p: p["quality"])
        if not test or [p["quality"] for p in test] != [p["quality"] for p in ref]:
            print(f"{name}: the two runs do not hold the same quality levels of {a.codec}; skipped")
            continue
        x265 = [p for p in clip["points"] if p["codec"] == "x265-medium"]
        bd = points_bd_rate(ref, test)
        found.append(bd)
        seconds = lambda points, key: sum(p[key] for p in points)
        print(f"{name}: exact vs float {bd:+.2f}% | vs x265-medium: exact {points_bd_rate(x265, test):+.1f}%, "
              f"float {points_bd_rate(x265, ref):+.1f}% | encode {seconds(ref, 'enc_s'):.0f} -> "
              f"{seconds(test, 'enc_s'):.0f} s, decode {seconds(ref, 'dec_s'):.0f} -> {seconds(test, 'dec_s'):.0f} s")
    if found:
        print(f"mean over {len(found)} clips: {sum(found) / len(found):+.2f}%")


if __name__ == "__main__":
    main()
