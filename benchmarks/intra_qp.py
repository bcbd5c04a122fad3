"""Match each quality level's x265 intra QP to what its P-frames deliver (how INTRA_QP was chosen).

For every quality level, code the bundled clip (training-side footage, not a dev clip) with the current
ladder, take the mean PSNR-YUV of the P-frames, and find the intra QP whose picture lands ``--margin`` dB
above it (intra frames are the references of everything after them, so they get a little more
quality, as x265's I/P QP offset does). Prints the table and the suggested ``INTRA_QP`` tuple.

    python benchmarks/intra_qp.py [--motion pyramid] [--weights W] [--margin 0.5]
"""
import argparse

import numpy as np
import torch

from flowcodec.codec.bitstream import FrameType
from flowcodec.codec.encoder import SequenceEncoder
from flowcodec.codec.hevc import decode_intra, encode_intra
from flowcodec.codec.model import load, weights_path
from flowcodec.codec.options import INTRA_QP
from flowcodec.eval.metrics import psnr_yuv
from flowcodec.io import BUNDLED_CLIP, open_video

CLIP = BUNDLED_CLIP


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--motion", default="pyramid")
    ap.add_argument("--weights")
    ap.add_argument("--clip", default=CLIP)
    ap.add_argument("--margin", type=float, default=0.5)
    a = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = load(a.weights or weights_path(a.motion))
    with open_video(a.clip) as src:
        frames, (w, h) = list(src), (src.info.width, src.info.height)
    intra = {qp: np.mean([psnr_yuv(f, decode_intra(encode_intra(f, qp), w, h))["yuv"] for f in frames[::8]])
             for qp in range(18, 48)}
    chosen = []
    print(f"{'level':>5} {'QP now':>6} {'P-frame PSNR':>12} {'P bytes':>8} {'I bytes':>8} {'QP suggested':>12}")
    for level, qp in enumerate(INTRA_QP):
        enc = SequenceEncoder(model, w, h, level + 1, intra_period=len(frames))
        p_psnr, p_bytes, i_bytes = [], [], []
        for f in frames:
            ftype, payload, recon = enc.encode(f)
            if ftype == FrameType.INTER:
                p_psnr.append(psnr_yuv(f, recon)["yuv"])
                p_bytes.append(len(payload))
            else:
                i_bytes.append(len(payload))
        target = np.mean(p_psnr) + a.margin
        best = min(intra, key=lambda q: abs(intra[q] - target))
        chosen.append(best)
        print(f"{level + 1:5d} {qp:6d} {np.mean(p_psnr):12.2f} {np.mean(p_bytes):8.0f} {np.mean(i_bytes):8.0f} "
              f"{best:12d}")
    print("INTRA_QP =", tuple(chosen))


if __name__ == "__main__":
    main()
