"""The .fcb container: a header followed by CRC-protected frame records.

This module only moves bytes (no torch): it writes and reads the container
and checks everything a damaged or hostile file could get wrong before any
frame payload reaches a decoder. The format is specified in docs/bitstream.md;
keep the two in step.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import BinaryIO, Iterator, NamedTuple

from flowcodec.errors import BitstreamError
from flowcodec.codec.options import QUALITY_STEPS, quality_steps, snapped

MAGIC = b"FCDC"
VERSION = 6
STREAMS = ("intra", "motion", "residual", "global")
"""Sub-stream tags; a payload stores each as its index here (docs/bitstream.md, "Sub-streams")."""
MONOCHROME = 0x01
"""Header flag: every frame's chroma is gray (8-bit 128), stored and output so (docs/bitstream.md)."""
FLAGS = MONOCHROME  # every flag this version knows
UNKNOWN_FRAMES = 0xFFFFFFFF
"""frame_count value meaning "read records until end of file"."""

MAX_HEADER_LEN = 1024
MAX_SIDE = 16384
MAX_PIXELS = 2**26
MAX_MODEL_ID = 64
MAX_PAYLOAD = 64 * 2**20
HASH_LEN = 8

_PREFIX = struct.Struct("<4sBH")  # magic, version, header_len
_FIELDS = struct.Struct("<HHIIIHBBB")  # width .. flags, model_id length
_U32 = struct.Struct("<I")
_RECORD = struct.Struct("<BBII")  # frame type, quality (in 1/QUALITY_STEPS), payload length, record CRC
_MIN_HEADER_LEN = _FIELDS.size + HASH_LEN  # with an empty model id
_CHUNK = 2**20  # payloads are read in pieces no larger than this
_VARINT_BYTES = 4  # sub-stream lengths: 28 bits, enough for MAX_PAYLOAD
_MEMBER_SHIFT = 4
MEMBERS = 1 << _MEMBER_SHIFT
"""A payload's first byte holds its sub-stream count (low 4 bits) and the member of a motion set that
coded it (high 4 bits; 0 unless the stream's model is a set, ``--motion auto``): at most this many."""


class FrameType(IntEnum):
    """How a frame record's payload was coded."""

    INTRA_HEVC = 0
    INTRA_LEARNED = 1
    INTER = 2


class Record(NamedTuple):
    """One frame record: how its payload was coded, the payload, and the quality it was coded at."""

    type: FrameType
    payload: bytes
    quality: float


def _check_quality(quality: float, what: str) -> int:
    """``quality`` as stored (steps of 1/QUALITY_STEPS, 1 byte); BitstreamError unless it is a step from 1 up."""
    steps = quality_steps(quality)
    if not (QUALITY_STEPS <= steps <= 0xFF and snapped(quality) == quality):
        raise BitstreamError(f"invalid {what} quality {quality} (a multiple of 1/{QUALITY_STEPS} from 1 "
                             f"to {0xFF / QUALITY_STEPS})")
    return steps


@dataclass
class Header:
    """Stream-level parameters stored once at the start of a file."""

    width: int
    height: int
    fps_num: int
    fps_den: int
    frame_count: int
    intra_period: int
    quality: float  # the constant quality asked for; 0 where a rate control chose each frame's
    model_id: str
    weights_hash: bytes
    flags: int = 0

    def validate(self) -> None:
        """Raise BitstreamError unless every field is in its legal range.

        Applied both when writing (so we never produce a file we would
        refuse) and when reading (so callers can trust the values).
        """
        w, h = self.width, self.height
        if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE and w * h <= MAX_PIXELS):
            raise BitstreamError(f"invalid frame size {w}x{h}")
        if not (0 < self.fps_num <= 0xFFFFFFFF and 0 < self.fps_den <= 0xFFFFFFFF):
            raise BitstreamError(f"invalid frame rate {self.fps_num}/{self.fps_den}")
        if not 0 <= self.frame_count <= 0xFFFFFFFF:
            raise BitstreamError(f"invalid frame count {self.frame_count}")
        if not 0 < self.intra_period <= 0xFFFF:
            raise BitstreamError(f"invalid intra period {self.intra_period}")
        if self.quality != 0:
            _check_quality(self.quality, "header")
        if self.flags & ~FLAGS:
            raise BitstreamError(f"unknown header flags 0x{self.flags:02x}")
        mid = self.model_id
        if not (0 < len(mid) <= MAX_MODEL_ID and all(" " <= c <= "~" for c in mid)):
            raise BitstreamError(f"invalid model id {mid!r}")
        if not isinstance(self.weights_hash, bytes) or len(self.weights_hash) != HASH_LEN:
            raise BitstreamError(f"weights hash must be {HASH_LEN} bytes")

    @property
    def quality_text(self) -> str:
        """The header's quality as tools print it: the constant quality, or "per frame" (rate control)."""
        return f"{self.quality:g}" if self.quality else "per frame"

    def pack(self) -> bytes:
        """Serialise the whole header: magic, version, length, fields, CRC."""
        self.validate()
        mid = self.model_id.encode("ascii")
        fields = _FIELDS.pack(
            self.width, self.height, self.fps_num, self.fps_den, self.frame_count,
            self.intra_period, quality_steps(self.quality), self.flags, len(mid),
        ) + mid + self.weights_hash
        head = _PREFIX.pack(MAGIC, VERSION, len(fields)) + fields
        return head + _U32.pack(zlib.crc32(head))

    @classmethod
    def unpack_fields(cls, fields: bytes) -> Header:
        """Parse the CRC-checked field bytes that follow header_len."""
        (width, height, fps_num, fps_den, frame_count, intra_period, quality,
         flags, mid_len) = _FIELDS.unpack_from(fields)
        if _MIN_HEADER_LEN + mid_len != len(fields):
            raise BitstreamError("corrupted header (inconsistent header length)")
        mid = fields[_FIELDS.size:_FIELDS.size + mid_len]
        if not all(0x20 <= b <= 0x7E for b in mid):
            raise BitstreamError("invalid model id (not printable ASCII)")
        header = cls(width, height, fps_num, fps_den, frame_count, intra_period,
                     quality / QUALITY_STEPS, mid.decode("ascii"), fields[-HASH_LEN:], flags)
        header.validate()
        return header


def _record_crc(ftype: int, steps: int, payload: bytes) -> int:
    """CRC32 over frame type, quality, payload length and payload, so a flipped
    type, quality or length is caught as surely as a flipped payload byte."""
    return zlib.crc32(payload, zlib.crc32(struct.pack("<BBI", ftype, steps, len(payload))))


def _seekable(fileobj: BinaryIO) -> bool:
    """True for real files and BytesIO, False for pipes and sockets."""
    seekable = getattr(fileobj, "seekable", None)
    return bool(seekable and seekable())


class Writer:
    """Writes a header, then frame records, to a binary file object.

    The caller owns ``fileobj``: close() finalises the stream but does not
    close the file. If the header's frame_count is UNKNOWN_FRAMES and the
    file is seekable, close() patches in the real count.
    """

    def __init__(self, fileobj: BinaryIO, header: Header):
        self.header = header
        self.frames_written = 0
        self.bytes_written = 0
        self._file = fileobj
        self._start = fileobj.tell() if _seekable(fileobj) else None
        self._closed = False
        self._write(header.pack())

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self.bytes_written += len(data)

    def write_frame(self, ftype: FrameType, payload: bytes, quality: float) -> None:
        """Append one frame record, coded at ``quality`` (ValueError for a type not in FrameType)."""
        if self._closed:
            raise BitstreamError("write to a closed bitstream writer")
        ftype = FrameType(ftype)
        if len(payload) > MAX_PAYLOAD:
            raise BitstreamError(f"frame payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        count = self.header.frame_count
        if count != UNKNOWN_FRAMES and self.frames_written >= count:
            raise BitstreamError(f"header declares {count} frames, cannot write more")
        steps = _check_quality(quality, "frame")
        payload = bytes(payload)
        self._write(_RECORD.pack(ftype, steps, len(payload), _record_crc(ftype, steps, payload)))
        self._write(payload)
        self.frames_written += 1

    def close(self) -> None:
        """Finalise: patch an unknown frame_count if possible, then flush.

        Raises BitstreamError if a known frame_count was not met, since the
        file would be rejected as truncated. Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        count = self.header.frame_count
        if count == UNKNOWN_FRAMES and self._start is not None:
            self.header = replace(self.header, frame_count=self.frames_written)
            end = self._file.tell()
            self._file.seek(self._start)
            self._file.write(self.header.pack())  # same length: only the count changed
            self._file.seek(end)
        elif count not in (UNKNOWN_FRAMES, self.frames_written):
            raise BitstreamError(f"header declares {count} frames, {self.frames_written} written")
        self._file.flush()

    finish = close  # the encoder's name for the same step

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


class Reader:
    """Reads and validates a header, then yields ``Record``s (type, payload, quality).

    ``expected_model_id`` / ``expected_hash`` bind the file to the decoder's
    weights: a mismatch is refused up front rather than decoded to garbage.
    Iterate once; every record is CRC-checked before it is yielded.
    """

    def __init__(self, fileobj: BinaryIO, expected_model_id: str | None = None,
                 expected_hash: bytes | None = None):
        self._file = fileobj
        self._end = None  # file size when known, to reject impossible lengths early
        self._pos = 0
        if _seekable(fileobj):
            self._pos = fileobj.tell()
            self._end = fileobj.seek(0, 2)
            fileobj.seek(self._pos)
        self.frames_read = 0
        self.header = self._read_header()
        self.bind(expected_model_id, expected_hash)

    def bind(self, expected_model_id: str | None, expected_hash: bytes | None) -> None:
        """Refuse the file unless it was made by this model id / these weights (None: not checked)."""
        if expected_model_id is not None and self.header.model_id != expected_model_id:
            raise BitstreamError(f"bitstream was made by model '{self.header.model_id}', "
                                 f"this decoder has '{expected_model_id}'")
        if expected_hash is not None and self.header.weights_hash != expected_hash:
            raise BitstreamError(
                f"bitstream was made with different weights (hash {self.header.weights_hash.hex()}, "
                f"this decoder has {expected_hash.hex()})")

    def _read(self, n: int) -> bytes:
        """Read up to n bytes (fewer only at EOF), in bounded chunks so a
        lying length on a pipe costs no more memory than the data present."""
        parts = []
        while n > 0:
            part = self._file.read(min(n, _CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
            self._pos += len(part)
        return b"".join(parts)

    def _read_header(self) -> Header:
        prefix = self._read(_PREFIX.size)
        if not prefix:
            raise BitstreamError("empty file: not a flowcodec bitstream")
        if prefix[:4] != MAGIC[:len(prefix)]:
            raise BitstreamError("not a flowcodec bitstream (bad magic)")
        if len(prefix) < _PREFIX.size:
            raise BitstreamError("truncated bitstream: incomplete header")
        _, version, header_len = _PREFIX.unpack(prefix)
        if version > VERSION:
            raise BitstreamError(f"bitstream format version {version} is newer "
                                 f"than this decoder ({VERSION})")
        if version < 1:
            raise BitstreamError(f"invalid bitstream format version {version}")
        if version < VERSION:
            raise BitstreamError(f"bitstream format version {version} is older than this decoder "
                                 f"({VERSION}): re-encode the source")
        if not _MIN_HEADER_LEN <= header_len <= MAX_HEADER_LEN:
            raise BitstreamError(f"corrupted header (header length {header_len} out of bounds)")
        rest = self._read(header_len + _U32.size)
        if len(rest) < header_len + _U32.size:
            raise BitstreamError("truncated bitstream: incomplete header")
        fields, (crc,) = rest[:header_len], _U32.unpack(rest[header_len:])
        if zlib.crc32(prefix + fields) != crc:
            raise BitstreamError("corrupted header (CRC mismatch)")
        return Header.unpack_fields(fields)

    def __iter__(self) -> Iterator[Record]:
        count = self.header.frame_count
        while True:
            i = self.frames_read
            if count != UNKNOWN_FRAMES and i == count:
                if self._read(1):
                    raise BitstreamError(f"corrupted bitstream: data after the "
                                         f"{count} frames the header declares")
                return
            record = self._read_record(i)
            if record is None:
                return
            self.frames_read += 1
            yield record

    def _read_record(self, i: int) -> Record | None:
        """Read and check record i. Returns None at a clean EOF, which ends
        the stream only when frame_count is unknown."""
        head = self._read(_RECORD.size)
        if not head:
            if self.header.frame_count == UNKNOWN_FRAMES:
                return None
            raise BitstreamError(f"truncated bitstream: expected "
                                 f"{self.header.frame_count} frames, found {i}")
        if len(head) < _RECORD.size:
            raise BitstreamError(f"truncated bitstream: frame {i} record header is incomplete")
        ftype, steps, length, crc = _RECORD.unpack(head)
        if ftype not in FrameType._value2member_map_:
            raise BitstreamError(f"corrupted frame {i} (unknown frame type {ftype})")
        if steps < QUALITY_STEPS:
            raise BitstreamError(f"corrupted frame {i} (quality {steps}/{QUALITY_STEPS} is below 1)")
        if length > MAX_PAYLOAD:
            raise BitstreamError(f"corrupted frame {i} (payload length {length} "
                                 f"exceeds {MAX_PAYLOAD})")
        if self._end is not None and length > self._end - self._pos:
            raise BitstreamError(f"truncated bitstream: frame {i} declares {length} "
                                 f"payload bytes, only {self._end - self._pos} remain")
        payload = self._read(length)
        if len(payload) < length:
            raise BitstreamError(f"truncated bitstream: frame {i} has {len(payload)} "
                                 f"of {length} payload bytes")
        if _record_crc(ftype, steps, payload) != crc:
            raise BitstreamError(f"corrupted frame {i} (CRC mismatch)")
        return Record(FrameType(ftype), payload, steps / QUALITY_STEPS)


def _varint(n: int) -> bytes:
    """``n`` as an unsigned LEB128 number: 7 bits per byte, low first, the high bit set on all but the
    last byte."""
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int, k: int) -> tuple[int, int]:
    """The LEB128 number at ``pos`` and the position after it; at most ``_VARINT_BYTES`` bytes, no
    needless trailing zero byte (so each length has one encoding)."""
    n = 0
    for i in range(_VARINT_BYTES):
        if pos + i >= len(data):
            raise BitstreamError(f"corrupted payload: sub-stream {k} length is cut off")
        byte = data[pos + i]
        n |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if i and not byte:
                raise BitstreamError(f"corrupted payload: sub-stream {k} length is not minimally coded")
            return n, pos + i + 1
    raise BitstreamError(f"corrupted payload: sub-stream {k} length has more than {_VARINT_BYTES} bytes")


def payload_pack(tags, chunks, optional=(), member: int = 0) -> bytes:
    """Join a frame's sub-streams into one payload: their count (with the set ``member`` that coded it
    in the high 4 bits), then per sub-stream its tag's id in ``STREAMS``, its length (LEB128) and its
    bytes. Those named in ``optional`` (a motion module's own) are left out when empty;
    ``payload_chunks`` reads them back as empty."""
    tags, chunks = list(tags), list(chunks)
    if len(tags) != len(chunks) or not tags or len(set(tags)) != len(tags) or not set(tags) <= set(STREAMS):
        raise ValueError(f"sub-streams {tags} with {len(chunks)} chunks: each tag one of {STREAMS}, "
                         "once, with one chunk")
    if not 0 <= member < MEMBERS:
        raise ValueError(f"set member {member} is outside 0..{MEMBERS - 1}")
    kept = [(t, c) for t, c in zip(tags, chunks) if c or t not in optional]
    return bytes([len(kept) | member << _MEMBER_SHIFT]) + b"".join(bytes([STREAMS.index(t)]) + _varint(len(c)) + bytes(c)
                                         for t, c in kept)


def payload_unpack(data: bytes) -> tuple[list[str], list[bytes]]:
    """Split a ``payload_pack`` result into its tags and sub-streams.

    Every tag must be known and appear once, every length must fit in the bytes that remain, and
    leftover bytes are an error, so a damaged payload never yields wrong slices."""
    if not data:
        raise BitstreamError("corrupted payload: no sub-stream count")
    n, pos, tags, chunks = data[0] & (MEMBERS - 1), 1, [], []
    if not 0 < n <= len(STREAMS):
        raise BitstreamError(f"corrupted payload: {n} sub-streams (1..{len(STREAMS)} exist)")
    for k in range(n):
        if pos >= len(data):
            raise BitstreamError(f"corrupted payload: sub-stream {k} is missing")
        tag = data[pos]
        if tag >= len(STREAMS) or STREAMS[tag] in tags:
            kind = "a repeated" if tag < len(STREAMS) else "an unknown"
            raise BitstreamError(f"corrupted payload: sub-stream {k} has {kind} tag {tag}")
        length, pos = _read_varint(data, pos + 1, k)
        if length > len(data) - pos:
            raise BitstreamError(f"corrupted payload: sub-stream {k} declares {length} "
                                 f"bytes, only {len(data) - pos} remain")
        tags.append(STREAMS[tag])
        chunks.append(bytes(data[pos:pos + length]))
        pos += length
    if pos != len(data):
        raise BitstreamError(f"corrupted payload: {len(data) - pos} bytes after {n} sub-streams")
    return tags, chunks


def payload_member(data: bytes) -> int:
    """The member of a motion set that coded a payload (0 in a stream of one model)."""
    if not data:
        raise BitstreamError("corrupted payload: no sub-stream count")
    return data[0] >> _MEMBER_SHIFT


def payload_chunks(data: bytes, tags, optional=(), member: int = 0) -> list[bytes]:
    """The sub-streams ``tags`` of a payload, in that order, as ``payload_pack(tags, chunks, optional,
    member)`` writes them (b"" for an optional one left out). Any other list of sub-streams or member is
    a BitstreamError, an empty optional one written in included: a frame has one coding."""
    if payload_member(data) != member:
        raise BitstreamError(f"payload names motion set member {payload_member(data)}, not {member} "
                             "(damaged payload)")
    found, chunks = payload_unpack(data)
    if found != [t for t in tags if t in found or t not in optional]:
        raise BitstreamError(f"payload holds the sub-streams {', '.join(found)}; this model codes "
                             f"{', '.join(tags)} (damaged payload)")
    streams = dict(zip(found, chunks))
    empty = [t for t in optional if streams.get(t) == b""]
    if empty:
        raise BitstreamError(f"payload holds an empty {empty[0]} sub-stream, which is left out when empty "
                             "(damaged payload)")
    return [streams.get(t, b"") for t in tags]


def stream_sizes(ftype: FrameType, payload: bytes) -> dict[str, int]:
    """Bytes of each sub-stream of a frame record's payload, by tag (an HEVC intra payload is one
    stream, "hevc"); the framing bytes are not counted."""
    if ftype == FrameType.INTRA_HEVC:
        return {"hevc": len(payload)}
    return {t: len(c) for t, c in zip(*payload_unpack(payload))}
