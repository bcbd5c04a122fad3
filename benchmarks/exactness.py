"""Does a stream decode to the encoder's reconstruction under other CPU features and thread counts?

Encodes a clip once (default CPU features, ``--recon``), then decodes it in separate processes under
each instruction-set restriction a user can set without another machine — oneDNN's
(``ONEDNN_MAX_CPU_ISA``), ATen's (``ATEN_CPU_CAPABILITY``) and MKL's (``MKL_ENABLE_INSTRUCTIONS``) —
with 1 and 2 threads, and compares every decoded frame with the reconstruction byte for byte:

    python benchmarks/exactness.py flowcodec/data/vtest_192x144_33.y4m --motion pyramid --intra learned

prints per setting whether the decode is identical, how many frames differ, the first differing frame
and the largest sample difference. Since format 4 the codec computes exactly (``layers.exact``,
docs/bitstream.md "What a decoder computes"), so every setting must say "yes"; before it, float kernels
rounded differently per instruction set and the streams drifted or desynchronised.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

from flowcodec.io import open_video

SETTINGS = (  # (name, environment overrides)
    ("default", {}),
    ("oneDNN SSE4.1", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    ("oneDNN AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    ("ATen default", {"ATEN_CPU_CAPABILITY": "default"}),
    ("both restricted", {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}),
    ("MKL SSE4.2", {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}),  # the BLAS under float64 convolutions
)


def _cli(*args, env=None):
    proc = subprocess.run([sys.executable, "-m", "flowcodec.cli", *args, "-q"], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})
    if proc.returncode:
        raise SystemExit(f"flowcodec {args[0]} failed: {proc.stderr.strip().splitlines()[-1]}")


def compare(recon, decoded):
    """(frames that differ, first differing frame or None, largest absolute sample difference)."""
    with open_video(recon) as a, open_video(decoded) as b:
        differ, first, largest = 0, None, 0
        for k, (fa, fb) in enumerate(zip(a, b)):
            diff = max(int(np.abs(pa.astype(np.int16) - pb).max()) for pa, pb in zip(fa, fb))
            if diff:
                differ += 1
                first = k if first is None else first
                largest = max(largest, diff)
    return differ, first, largest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip")
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--quality", type=int, default=5)
    ap.add_argument("--intra", default="hevc")
    ap.add_argument("--intra-period", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        fcb, recon = os.path.join(work, "c.fcb"), os.path.join(work, "recon.y4m")
        _cli("encode", a.clip, "-o", fcb, "--recon", recon, "--motion", a.motion, "--quality", str(a.quality),
             "--intra", a.intra, "--intra-period", str(a.intra_period))
        print(f"{'setting':>16} {'threads':>7} {'identical':>9} {'frames differ':>13} {'first':>5} {'max diff':>8}")
        for name, env in SETTINGS:
            for threads in (1, 2):
                out = os.path.join(work, "d.y4m")
                _cli("decode", fcb, "-o", out, "--threads", str(threads), env=env)
                differ, first, largest = compare(recon, out)
                print(f"{name:>16} {threads:>7} {'yes' if not differ else 'NO':>9} {differ:>13} "
                      f"{'—' if first is None else first:>5} {largest:>8}")


if __name__ == "__main__":
    main()
