"""Sequence decoder: turns frame records back into frames and keeps the decoder state.

The state (``motion.DecodedPictures``) is exactly what the bitstream lets a decoder rebuild: the last
decoded frames (8-bit, re-padded by edge replication from the visible frame) and their motion, started
anew at every intra frame. The encoder (``encoder.py``) derives from this class and takes its states
from the same calls, so its references are the decoder's.
"""
from ..entropy.coder import Decode
from ..errors import BitstreamError
from . import intra
from .bitstream import MONOCHROME, FrameType, payload_chunks, payload_member
from ..frames import padded_size, to_frame, to_tensor
from ..layers.exact import exact
from ..motion import DecodedPictures
from .hevc import decode_intra


class SequenceDecoder:
    coder = Decode  # reads learned payloads; analysis substitutes a subclass that also measures the bits

    def __init__(self, model, width: int, height: int, mono: bool = False):
        self.model, self.width, self.height, self.mono = model, width, height, mono
        self.level = None  # quality index of the frame being coded: its quality - 1 (fractional between levels)
        wp, hp = padded_size(width, height)
        self.packed = (hp // 2, wp // 2)  # size of the packed frame tensors
        self.state = None  # DecodedPictures; None until the first intra frame
        self.last = None  # (coder, prediction, motion field, member) of the last inter frame, for analysis

    @classmethod
    def for_header(cls, model, header):
        """The decoder of a stream with this header (``bitstream.Header``)."""
        return cls(model, header.width, header.height, bool(header.flags & MONOCHROME))

    def _intra_state(self, x_hat):
        """The state after an intra frame whose (padded, packed) reconstruction is ``x_hat``."""
        return DecodedPictures.intra(x_hat.double(), (self.width, self.height), self.mono)

    def _accept(self, state):
        """Make ``state`` the decoder's; return its newest frame, the one just decoded, as 8-bit planes."""
        self.state = state
        return to_frame(state.ref, self.width, self.height)

    def _streams(self, tags, payload: bytes, run, optional=(), member=0):
        """Range-decode a learned frame: ``run(coder)`` is its codec's one coding path, with no input.
        The payload holds the sub-streams ``tags`` in that order, where those in ``optional`` (a motion
        module's own) are left out when empty, and names ``member`` of a motion set (0 otherwise). The
        coder raises BitstreamError for a damaged sub-stream (``entropy.coder.Decode``)."""
        coder = self.coder(tags, payload_chunks(payload, tags, optional, member))
        out = run(coder)
        coder.finish()
        return coder, out

    def _at(self, quality: float):
        """Code the next frame at ``quality`` (1 … the model's levels, any step between)."""
        if not 1 <= quality <= self.model.levels:
            raise BitstreamError(f"quality {quality} is outside this model's range (1..{self.model.levels})")
        self.level = quality - 1

    @exact()
    def decode(self, ftype: FrameType, payload: bytes, quality: float):
        """The frame of a record (``bitstream.Record``: type, payload, quality) as 8-bit planes."""
        self._at(quality)
        if ftype == FrameType.INTRA_HEVC:
            frame = decode_intra(payload, self.width, self.height)
            return self._accept(self._intra_state(to_tensor(frame, self.width, self.height)))
        if ftype == FrameType.INTRA_LEARNED:
            _, x_hat = self._streams(intra.TAGS, payload,
                                     lambda c: self.model.intra(None, self.level, c, self.packed))
            return self._accept(self._intra_state(x_hat))
        if ftype == FrameType.INTER:
            if self.state is None:
                raise BitstreamError("inter frame without a preceding intra frame")
            member, choices = payload_member(payload), self.model.choices
            if member >= len(choices):
                raise BitstreamError(f"payload names motion set member {member}; this model has {len(choices)}")
            inter = choices[member]
            coder, (_, pred, field, state) = self._streams(
                inter.tags, payload, lambda c: inter(None, self.state, self.level, c), inter.motion.streams, member)
            self.last = (coder, pred, field, member)
            return self._accept(state)
        raise BitstreamError(f"frame type {int(ftype)} is not supported by this decoder")
