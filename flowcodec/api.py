"""Python interface: encode and decode flowcodec streams frame by frame, with the command line's options.

    import flowcodec
    with flowcodec.Encoder("clip.fcb", 352, 288, quality=4, preset="slow") as enc:
        for y, u, v in frames:            # 8-bit 4:2:0 planes (numpy uint8)
            recon = enc.encode((y, u, v))  # what every decoder will output for this frame
    with flowcodec.Decoder("clip.fcb") as dec:
        print(dec.header.width, dec.header.height, dec.motion)
        for y, u, v in dec:
            ...

The command line (``cli.py``) is a thin layer on these two classes. Every failure a user can cause
(options, weights, frames, damaged streams) is a ``FlowcodecError`` with a one-line message; a path
output is written atomically (complete, or not at all when the ``with`` block fails).
"""
import contextlib
import os

import numpy as np

from .codec.bitstream import FrameType
from .codec.options import AUTO, INTRA_MODES, PRESETS, QUALITIES, snapped
from .errors import BitstreamError, FlowcodecError

MAX_PIXELS = 7680 * 4320  # 8K UHD: the largest frame a decoder takes unless max_pixels says otherwise


def load_model(motion: str, weights: str | None = None):
    """A motion approach's codec (the shipped weights unless ``weights`` names a file) and the hash
    of its weights. ``motion`` "auto" is the set of every registered approach (``codec.model.MotionSet``),
    from the shipped files or from a folder ``weights`` of <motion>.safetensors."""
    from .codec.model import auto_members, load, load_set, weights_path
    from .motion import require
    if motion == AUTO:
        if weights and not os.path.isdir(weights):
            raise FlowcodecError(f"motion 'auto' takes a folder of <motion>.safetensors as weights, not {weights}")
        return load_set({m: os.path.join(weights, f"{m}.safetensors") if weights else weights_path(m)
                         for m in auto_members()})
    require(motion)
    model, digest = load(weights or weights_path(motion))
    if model.motion_name != motion:
        raise FlowcodecError(f"weights {weights} are for motion '{model.motion_name}', not '{motion}'")
    return model, digest


def _threads(threads):
    if threads is not None:
        import torch
        torch.set_num_threads(threads)


class Encoder:
    """Encodes 8-bit 4:2:0 frames into a stream written to ``output`` (a path, "-" for stdout, or a
    binary file object that the caller keeps open).

    ``quality``: 1 (lowest rate) … 9, any multiple of 1/16 between (others are rounded to one), the same
    for every frame. ``bitrate``: instead, a target in kilobits per second, met by choosing each frame's
    quality (``codec/rate.py``); ``frames``, the number of frames to come if known, lets it meet the
    target over exactly those. ``mono``: a monochrome stream (chroma exactly 128 in every frame); None
    decides from the first frame (monochrome when its chroma is all 128)."""

    def __init__(self, output, width: int, height: int, *, fps=(25, 1), quality: float = 3,
                 bitrate: float | None = None, frames: int | None = None, motion: str = "pyramid",
                 preset: str = "medium", intra_period: int = 32, intra: str = "hevc", adaptive_intra: bool = True,
                 mono: bool | None = None, weights: str | None = None, threads: int | None = None):
        if not 1 <= quality <= QUALITIES:
            raise FlowcodecError(f"quality (--quality) must be 1..{QUALITIES}, not {quality}")
        if bitrate is not None and not 0 < bitrate < 10**7:
            raise FlowcodecError(f"bit rate (--bitrate) must be a positive number of kilobits per second, "
                                 f"not {bitrate}")
        if not 1 <= intra_period <= 65535:
            raise FlowcodecError(f"intra period (--intra-period) must be 1..65535, not {intra_period}")
        if preset not in PRESETS or intra not in INTRA_MODES:
            raise FlowcodecError(f"preset must be one of {', '.join(PRESETS)} and intra one of "
                                 f"{', '.join(INTRA_MODES)}")
        _threads(threads)
        self.width, self.height, self.fps = width, height, fps
        self.quality = snapped(quality)
        self.rate = None
        if bitrate is not None:
            from .codec.rate import RateControl
            self.rate = RateControl(bitrate, fps[0] / fps[1], width, height, intra_period, frames)
        self.intra_period, self.intra, self.adaptive_intra = intra_period, intra, adaptive_intra
        self.preset, self.mono = preset, mono
        self.model, self._digest = load_model(motion, weights)
        self._files = contextlib.ExitStack()
        if isinstance(output, (str, os.PathLike)):
            from .io import atomic_output
            output = self._files.enter_context(atomic_output(output))
        self._out, self._writer, self._coder = output, None, None
        self.frames = 0
        self.qualities = []  # the quality of each frame coded

    def _start(self, frame):
        """The header and the sequence encoder, once the first frame says whether it is monochrome."""
        from .codec.bitstream import MONOCHROME, UNKNOWN_FRAMES, Header, Writer
        from .codec.encoder import SequenceEncoder
        mono = self.mono if self.mono is not None else all(np.all(c == 128) for c in frame[1:])
        header = Header(self.width, self.height, *self.fps, UNKNOWN_FRAMES, self.intra_period,
                        0 if self.rate else self.quality, self.model.model_id, self._digest,
                        MONOCHROME if mono else 0)
        self._writer = Writer(self._out, header)
        self._coder = SequenceEncoder(self.model, self.width, self.height, self.quality, self.intra_period,
                                      self.intra, self.adaptive_intra, mono, self.preset)

    def encode(self, frame, quality: float | None = None) -> tuple:
        """Code one frame (y, u, v: uint8 arrays of (H, W) and twice ((H+1)//2, (W+1)//2)); returns its
        reconstruction, which is what a decoder of the stream outputs for it. ``quality`` codes this
        frame at another quality than the encoder's (rounded to a 1/16 step; not with ``bitrate``)."""
        expect = [(self.height, self.width)] + [((self.height + 1) // 2, (self.width + 1) // 2)] * 2
        if len(frame) != 3 or [np.shape(p) for p in frame] != expect or any(
                np.asarray(p).dtype != np.uint8 for p in frame):
            raise FlowcodecError(f"a frame is 3 uint8 planes of shapes {expect}")
        before = self.bytes_written
        if self._writer is None:
            self._start(frame)
        if quality is not None:
            if self.rate or not 1 <= quality <= QUALITIES:
                raise FlowcodecError(f"a frame's quality must be 1..{QUALITIES}, and is chosen by the rate "
                                     "control when a bit rate is set")
            quality = snapped(quality)
        elif self.rate:
            quality = self.rate.quality(self._coder.since_intra)
        else:
            quality = self.quality
        ftype, payload, recon = self._coder.encode(tuple(np.asarray(p) for p in frame), quality)
        self._writer.write_frame(ftype, payload, quality)
        if self.rate:
            self.rate.update(ftype != FrameType.INTER, 8 * (self.bytes_written - before), quality)
        self.frames += 1
        self.qualities.append(quality)
        return recon

    @property
    def chosen(self) -> list:
        """The motion approach that coded each P-frame so far (with motion "auto", each frame's choice)."""
        if self._coder is None:
            return []
        return [self.model.names[m] for m in self._coder.chosen]

    @property
    def bytes_written(self) -> int:
        return 0 if self._writer is None else self._writer.bytes_written

    def close(self):
        """Finish the stream (an encoder that coded no frame writes nothing and raises)."""
        if self._writer is None:
            self._files.__exit__(FlowcodecError, None, None)  # a path output is not created
            raise FlowcodecError("nothing to encode: no frames")
        self._writer.close()
        self._files.close()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            self.close()
        else:  # a failed run leaves no output file behind
            self._files.__exit__(kind, error, trace)


class Decoder:
    """Decodes a stream from ``input`` (a path, "-" for stdin, or a binary file object); iterating
    gives its frames as (y, u, v) uint8 arrays. ``header`` holds the stream's parameters (size, frame
    rate, quality, model), ``reader`` the stream's frame records (``codec.bitstream.Reader``, bound to
    ``model``); streams with frames over ``max_pixels`` pixels are refused before any decoding."""

    def __init__(self, input, *, weights: str | None = None, threads: int | None = None,
                 max_pixels: int = MAX_PIXELS):
        from .codec.bitstream import Reader
        from .codec.decoder import SequenceDecoder
        from .codec.model import motion_of
        from .motion import available
        _threads(threads)
        self._files = contextlib.ExitStack()
        if isinstance(input, (str, os.PathLike)):
            input = self._files.enter_context(open_input(input))
        try:
            self.reader = Reader(input)
            h = self.header = self.reader.header
            if h.width * h.height > max_pixels:
                raise FlowcodecError(f"frame size {h.width}x{h.height} ({h.width * h.height} pixels) is over "
                                     f"this decoder's limit of {max_pixels} pixels (max_pixels; --max-pixels on the command line)")
            self.motion = motion_of(h.model_id)
            if self.motion not in available() + [AUTO]:
                raise FlowcodecError(f"bitstream was made by model '{h.model_id}', unknown to this decoder")
            self.model, digest = load_model(self.motion, weights)
            self.reader.bind(self.model.model_id, digest)
            self._coder = SequenceDecoder.for_header(self.model, h)
        except BaseException:
            self._files.close()
            raise

    def __iter__(self):
        for n, record in enumerate(self.reader):
            try:
                yield self._coder.decode(*record)
            except BitstreamError as e:
                raise BitstreamError(f"frame {n}: {e}") from None

    def close(self):
        self._files.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_input(path):
    """A stream to read: a path, or "-" for stdin (a FlowcodecError naming the path if it cannot open)."""
    if os.fspath(path) == "-":
        import sys
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")
    except OSError as e:
        raise FlowcodecError(f"cannot open '{path}': {e.strerror}") from None
