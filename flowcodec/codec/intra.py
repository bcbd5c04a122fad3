"""Learned intra codec: a mean-scale hyperprior image codec (Minnen et al. 2018, without context model)
on the packed YUV 4:2:0 frame, variable-rate through the same per-level gains as the P-frame coders.

``IntraCodec.forward`` is the one coding path (train, encode and decode pass different coders), exactly
as for P-frames. It is the alternative to HEVC intra (``hevc.py``); which one codes a given intra frame
is signalled per frame in the container (FrameType.INTRA_LEARNED / INTRA_HEVC).
"""
import torch.nn as nn

from ..entropy.hyper import HyperCodec

TAGS = ("intra",)


class IntraCodec(nn.Module):
    def __init__(self, levels: int):
        super().__init__()
        self.codec = HyperCodec(6, 6, n=96, m=128, nz=48, levels=levels)

    def forward(self, x, q, coder, size=None):
        """Code one packed frame ``x`` (None when decoding; then ``size`` gives its packed (H, W))."""
        return self.codec(x, q, coder, "intra", size if x is None else x.shape[-2:])
