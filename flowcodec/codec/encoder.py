"""Sequence encoder: the encoder-only decisions (frame types, intra QP, motion estimation and analysis
transforms) on top of the decoder.

Low-delay P: frame 0, intra_period, 2·intra_period, … are HEVC intra frames; every other frame is a
P-frame predicted from the previous decoded frame. Each frame's reconstruction is produced by the
decoder's own functions (``decode_intra`` on the payload; the inter path with the encoder's symbols), so
``--recon`` equals what ``flowcodec decode`` writes.
"""
import torch

from ..entropy.coder import Encode
from .bitstream import FrameType, payload_pack
from .decoder import SequenceDecoder
from .frames import to_frame, to_tensor
from .hevc import decode_intra, encode_intra
from .inter import TAGS
from .model import INTRA_QP


class SequenceEncoder(SequenceDecoder):
    def __init__(self, model, width, height, quality, intra_period=32):
        super().__init__(model, width, height, quality)
        self.intra_period = intra_period
        self.index = 0

    @torch.no_grad()
    def encode(self, frame):
        """Code one 8-bit 4:2:0 frame; return (frame type, payload, reconstruction)."""
        if self.index % self.intra_period == 0:
            ftype, payload = FrameType.INTRA_HEVC, encode_intra(frame, INTRA_QP[self.level])
            recon = decode_intra(payload, self.width, self.height)
        else:
            ftype, coder = FrameType.INTER, Encode(TAGS)
            x_hat = self.model.inter(to_tensor(frame, self.width, self.height), self.ref, self.level,
                                     coder)[0]
            payload = payload_pack(*coder.payloads())
            recon = to_frame(x_hat, self.width, self.height)
        self.index += 1
        return ftype, payload, self._accept(recon)
