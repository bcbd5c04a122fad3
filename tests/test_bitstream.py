"""Tests for the .fcb container: round trips, frame-count patching, and that
every kind of damage (bad fields, truncation, bit flips, lying lengths)
surfaces as BitstreamError and nothing else."""
import io
import os
import struct
import threading
import tracemalloc
import zlib

import pytest

from flowcodec.codec.bitstream import (
    MAX_PAYLOAD, UNKNOWN_FRAMES, FrameType, Header, Reader, Writer,
    MEMBERS, STREAMS, payload_chunks, payload_member, payload_pack, payload_unpack,
)
from flowcodec.errors import BitstreamError

HASH = bytes.fromhex("0123456789abcdef")
FRAMES = [  # (type, payload, quality): qualities step by 1/16, from 1 up
    (FrameType.INTRA_HEVC, b"hevc-intra-picture" * 2, 3.0),
    (FrameType.INTER, payload_pack(("motion", "residual"), (b"motion-latent", b"residual")), 3.5625),
    (FrameType.INTER, b"", 1.0),
    (FrameType.INTRA_LEARNED, bytes(range(40)), 255 / 16),
]


class OneWay:
    """A non-seekable stream (like a pipe) backed by memory."""

    def __init__(self, data=b""):
        self.buf = io.BytesIO(data)

    def read(self, n=-1):
        return self.buf.read(n)

    def write(self, data):
        return self.buf.write(data)

    def flush(self):
        pass

    def seekable(self):
        return False


def make_header(**changes):
    fields = dict(width=64, height=48, fps_num=30000, fps_den=1001, frame_count=len(FRAMES),
                  intra_period=8, quality=3, model_id="pyramid-v6", weights_hash=HASH)
    fields.update(changes)
    return Header(**fields)


def raw_header(magic=b"FCDC", version=6, header_len=None, width=64, height=48, fps_num=30000,
               fps_den=1001, frame_count=len(FRAMES), intra_period=8, quality=48, flags=0,
               model_id=b"pyramid-v6", weights_hash=HASH, crc=None):
    """Header bytes built straight from the spec in docs/bitstream.md."""
    fields = struct.pack("<HHIIIHBBB", width, height, fps_num, fps_den, frame_count,
                         intra_period, quality, flags, len(model_id)) + model_id + weights_hash
    head = magic + struct.pack("<BH", version, len(fields) if header_len is None else header_len)
    head += fields
    return head + struct.pack("<I", zlib.crc32(head) if crc is None else crc)


def raw_record(ftype, payload, quality=3.0, length=None, crc=None, steps=None):
    """Record bytes built from the spec (quality stored in sixteenths); the CRC covers type, quality,
    length and payload."""
    length = len(payload) if length is None else length
    steps = round(16 * quality) if steps is None else steps
    if crc is None:
        crc = zlib.crc32(struct.pack("<BBI", ftype, steps, length) + payload)
    return struct.pack("<BBII", ftype, steps, length, crc) + payload


def encode(frames=FRAMES, header=None, seekable=True):
    out = io.BytesIO() if seekable else OneWay()
    with Writer(out, header or make_header(frame_count=len(frames))) as writer:
        for frame in frames:
            writer.write_frame(*frame)
    data = out.buf.getvalue() if not seekable else out.getvalue()
    assert writer.bytes_written == len(data)
    return data


def decode(data, seekable=True, **expect):
    reader = Reader(io.BytesIO(data) if seekable else OneWay(data), **expect)
    return reader.header, list(reader)


# --- round trips ---------------------------------------------------------------

def test_header_matches_spec_layout():
    assert make_header().pack() == raw_header()
    assert len(raw_header()) == 40 + len("pyramid-v5")


def test_round_trip_bytesio():
    data = encode()
    header, records = decode(data, expected_model_id="pyramid-v6", expected_hash=HASH)
    assert header == make_header()
    assert records == FRAMES
    assert all(type(r.type) is FrameType for r in records)
    assert data == raw_header() + b"".join(raw_record(*f) for f in FRAMES)


def test_round_trip_real_file(tmp_path):
    path = tmp_path / "clip.fcb"
    with open(path, "wb") as f:
        writer = Writer(f, make_header())
        for frame in FRAMES:
            writer.write_frame(*frame)
        writer.finish()
    assert path.stat().st_size == writer.bytes_written
    with open(path, "rb") as f:
        reader = Reader(f, expected_model_id="pyramid-v6", expected_hash=HASH)
        assert list(reader) == FRAMES
        assert reader.frames_read == len(FRAMES)


@pytest.mark.parametrize("offset", [0, 5])
def test_unknown_frame_count_patched_on_seekable_file(offset):
    out = io.BytesIO(b"x" * offset)
    out.seek(offset)
    writer = Writer(out, make_header(frame_count=UNKNOWN_FRAMES))
    for frame in FRAMES:
        writer.write_frame(*frame)
    writer.close()
    writer.close()  # idempotent
    assert writer.header.frame_count == len(FRAMES)
    data = out.getvalue()
    assert data[:offset] == b"x" * offset
    assert data[offset:] == encode()  # identical to a file written with the count known
    out.seek(offset)
    reader = Reader(out)
    assert reader.header.frame_count == len(FRAMES)
    assert list(reader) == FRAMES


def test_unknown_frame_count_on_pipe_reads_until_eof():
    data = encode(header=make_header(frame_count=UNKNOWN_FRAMES), seekable=False)
    header, records = decode(data, seekable=False)
    assert header.frame_count == UNKNOWN_FRAMES
    assert records == FRAMES
    assert decode(data)[1] == FRAMES


def test_real_pipe_round_trip():
    r, w = os.pipe()
    with open(r, "rb") as rf:
        def produce():
            with open(w, "wb") as wf:
                writer = Writer(wf, make_header(frame_count=UNKNOWN_FRAMES))
                for frame in FRAMES:
                    writer.write_frame(*frame)
                writer.close()
        thread = threading.Thread(target=produce)
        thread.start()
        reader = Reader(rf)
        assert reader.header.frame_count == UNKNOWN_FRAMES
        assert list(reader) == FRAMES
        thread.join()


def test_writer_enforces_declared_frame_count():
    writer = Writer(io.BytesIO(), make_header(frame_count=1))
    writer.write_frame(FrameType.INTRA_HEVC, b"a", 3)
    with pytest.raises(BitstreamError, match="declares 1 frames"):
        writer.write_frame(FrameType.INTER, b"b", 3)
    writer = Writer(io.BytesIO(), make_header(frame_count=2))
    writer.write_frame(FrameType.INTRA_HEVC, b"a", 3)
    with pytest.raises(BitstreamError, match="2 frames, 1 written"):
        writer.close()


def test_writer_refuses_invalid_header():
    for bad in [dict(width=0), dict(model_id="x" * 65), dict(model_id="é"),
                dict(weights_hash=b"short"), dict(flags=2), dict(intra_period=0), dict(quality=0.5),
                dict(quality=3.01), dict(quality=16)]:
        with pytest.raises(BitstreamError):
            Writer(io.BytesIO(), make_header(**bad))
    assert Writer(io.BytesIO(), make_header(quality=0)).header.quality == 0  # rate control: per frame


def test_writer_refuses_a_quality_the_record_cannot_hold():
    writer = Writer(io.BytesIO(), make_header())
    for bad in (0, 0.9375, 2.01, 16):
        with pytest.raises(BitstreamError, match="invalid frame quality"):
            writer.write_frame(FrameType.INTER, b"b", bad)
    assert writer.frames_written == 0


# --- header errors -------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"RIFF" + raw_header()[4:], r"not a flowcodec bitstream \(bad magic\)"),
    (b"FC", "truncated"),
    (b"FX", "bad magic"),
    (raw_header(version=7), r"bitstream format version 7 is newer than this decoder \(6\)"),
    (raw_header(version=5), r"bitstream format version 5 is older than this decoder \(6\)"),
    (raw_header(version=1), r"bitstream format version 1 is older than this decoder \(6\)"),
    (raw_header(version=0), "version 0"),
    (raw_header(header_len=10), "out of bounds"),
    (raw_header(header_len=2000), "out of bounds"),
    (raw_header(header_len=60), "truncated"),  # claims more than the file holds
    (raw_header(crc=1234), r"corrupted header \(CRC mismatch\)"),
    (raw_header()[:-1], "truncated"),
    (raw_header(width=0), "invalid frame size 0x48"),
    (raw_header(height=0), "invalid frame size"),
    (raw_header(width=16385), "invalid frame size"),
    (raw_header(width=16384, height=8192), "invalid frame size"),
    (raw_header(fps_num=0), "invalid frame rate"),
    (raw_header(fps_den=0), "invalid frame rate"),
    (raw_header(intra_period=0), "invalid intra period"),
    (raw_header(flags=4), "unknown header flags"),
    (raw_header(quality=15), "invalid header quality"),
    (raw_header(model_id=b"caf\xe9"), "invalid model id"),
    (raw_header(model_id=b"x" * 65), "invalid model id"),
])
def test_bad_header(data, message):
    for seekable in (True, False):
        with pytest.raises(BitstreamError, match=message):
            decode(data, seekable=seekable)


def test_header_length_inconsistent_with_model_id():
    head = raw_header()
    fields = head[7:-4] + b"\0"  # one byte too many after the hash
    head = head[:5] + struct.pack("<H", len(fields)) + fields
    with pytest.raises(BitstreamError, match="inconsistent header length"):
        decode(head + struct.pack("<I", zlib.crc32(head)))


def test_model_and_weights_mismatch():
    data = encode()
    with pytest.raises(BitstreamError,
                       match="bitstream was made by model 'pyramid-v6', this decoder has 'raft-v6'"):
        decode(data, expected_model_id="raft-v6")
    with pytest.raises(BitstreamError, match="made with different weights"):
        decode(data, expected_model_id="pyramid-v6", expected_hash=bytes(8))


# --- record errors -------------------------------------------------------------

def with_records(*records, frame_count=None):
    count = len(records) if frame_count is None else frame_count
    return raw_header(frame_count=count) + b"".join(records)


@pytest.mark.parametrize("data, message", [
    (with_records(raw_record(7, b"abc")), r"corrupted frame 0 \(unknown frame type 7\)"),
    (with_records(raw_record(2, b"abc", steps=15)), r"corrupted frame 0 \(quality 15/16 is below 1\)"),
    (with_records(raw_record(2, b"abc", length=MAX_PAYLOAD + 1)), "exceeds"),
    (with_records(raw_record(2, b"abc", length=4)), "truncated bitstream: frame 0"),
    (with_records(raw_record(2, b"abc")[:5]), "truncated bitstream: frame 0"),
    (with_records(raw_record(2, b"abc", crc=0)), r"corrupted frame 0 \(CRC mismatch\)"),
    (with_records(raw_record(0, b"a"), raw_record(2, b"b"), frame_count=1), "after the 1 frames"),
    (with_records(raw_record(0, b"a"), b"\0", frame_count=1), "after the 1 frames"),
    (with_records(raw_record(0, b"a"), frame_count=3),
     "truncated bitstream: expected 3 frames, found 1"),
    (with_records(raw_record(0, b"a"), raw_record(1, b"b", crc=5)), "corrupted frame 1"),
    (with_records(raw_record(0, b"a"), b"\2\0", frame_count=UNKNOWN_FRAMES),
     "frame 1 record header is incomplete"),
])
def test_bad_record(data, message):
    for seekable in (True, False):
        with pytest.raises(BitstreamError, match=message):
            decode(data, seekable=seekable)


def test_records_before_an_error_are_yielded():
    data = with_records(raw_record(0, b"ok"), raw_record(2, b"bad", crc=0))
    reader = Reader(io.BytesIO(data))
    assert next(iter(reader)) == (FrameType.INTRA_HEVC, b"ok", 3.0)
    with pytest.raises(BitstreamError, match="frame 1"):
        list(reader)


@pytest.mark.parametrize("length", [0xFFFFFFFF, MAX_PAYLOAD - 1])
@pytest.mark.parametrize("seekable", [True, False])
def test_lying_payload_length_fails_fast_without_allocating(length, seekable, tmp_path):
    data = with_records(raw_record(2, b"\0" * 40, length=length))
    assert len(data) == 100
    if seekable:
        (tmp_path / "lie.fcb").write_bytes(data)
        f = open(tmp_path / "lie.fcb", "rb")
    else:  # a real pipe: buffered reads there allocate what they ask for
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        f = open(r, "rb")
    tracemalloc.start()
    try:
        with f, pytest.raises(BitstreamError):
            list(Reader(f))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


# --- exhaustive damage ---------------------------------------------------------

def record_ends(data, frames):
    """Byte offsets at which each record (and the header) ends."""
    ends = [len(data) - sum(10 + len(p) for _, p, _ in frames)]
    for _, payload, _ in frames:
        ends.append(ends[-1] + 10 + len(payload))
    return ends


@pytest.mark.parametrize("seekable", [True, False])
def test_every_prefix_with_known_count_fails(seekable):
    data = encode()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            decode(data[:n], seekable=seekable)


@pytest.mark.parametrize("seekable", [True, False])
def test_every_prefix_with_unknown_count(seekable):
    data = encode(header=make_header(frame_count=UNKNOWN_FRAMES), seekable=False)
    ends = record_ends(data, FRAMES)
    for n in range(len(data) + 1):
        if n in ends:
            assert decode(data[:n], seekable=seekable)[1] == FRAMES[:ends.index(n)]
        else:
            with pytest.raises(BitstreamError):
                decode(data[:n], seekable=seekable)


@pytest.mark.parametrize("count", [len(FRAMES), UNKNOWN_FRAMES])
def test_every_single_bit_flip_is_detected(count):
    data = encode(header=make_header(frame_count=count), seekable=False)
    assert 150 <= len(data) <= 250
    for bit in range(8 * len(data)):
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BitstreamError):
            decode(bytes(damaged))


# --- sub-stream packing --------------------------------------------------------

def test_payload_pack_round_trip():
    tags, chunks = ["motion", "global", "residual"], [b"motion", b"", b"residual" * 50]
    packed = payload_pack(tags, chunks)
    # count; tag, length 6 (one byte), data; tag, length 0; tag, length 400 = 0x190 (LEB128: 0x90 0x03)
    assert packed[:11] == bytes([3, STREAMS.index("motion"), 6]) + b"motion" + bytes([STREAMS.index("global"), 0])
    assert packed[11:15] == bytes([STREAMS.index("residual"), 0x90, 0x03]) + b"r"
    assert len(packed) == 1 + 2 + 6 + 2 + 3 + 400
    assert payload_unpack(packed) == (tags, chunks)
    assert payload_unpack(FRAMES[1][1]) == (["motion", "residual"], [b"motion-latent", b"residual"])
    big = b"x" * (2**21 + 5)  # a length of 4 LEB128 bytes
    assert payload_unpack(payload_pack(["intra"], [big])) == (["intra"], [big])
    for bad in ((["motion", "motion"], [b"", b""]), (["motion"], [b"", b""]), (["side"], [b""]), ([], [])):
        with pytest.raises((ValueError, IndexError)):
            payload_pack(*bad)


def test_payload_unpack_rejects_inconsistent_data():
    packed = payload_pack(("motion", "residual"), (b"motion", b"residual"))
    for n in range(len(packed)):
        with pytest.raises(BitstreamError):
            payload_unpack(packed[:n])
    with pytest.raises(BitstreamError, match="after 2 sub-streams"):
        payload_unpack(packed + b"x")
    with pytest.raises(BitstreamError, match="sub-stream 2 is missing"):
        payload_unpack(b"\x03" + packed[1:])
    with pytest.raises(BitstreamError, match="0 sub-streams"):
        payload_unpack(b"\x00")
    with pytest.raises(BitstreamError, match="declares 268435455 bytes"):
        payload_unpack(b"\x01\x01\xff\xff\xff\x7f" + b"x" * 10)
    with pytest.raises(BitstreamError, match="more than 4 bytes"):
        payload_unpack(b"\x01\x01\xff\xff\xff\xff\x01" + b"x" * 10)
    with pytest.raises(BitstreamError, match="not minimally coded"):
        payload_unpack(b"\x01\x01\x86\x00motion")
    with pytest.raises(BitstreamError, match="length is cut off"):
        payload_unpack(b"\x01\x01\x86")
    with pytest.raises(BitstreamError, match="unknown tag 9"):
        payload_unpack(b"\x01\x09" + packed[2:9])
    with pytest.raises(BitstreamError, match="repeated tag 1"):
        payload_unpack(b"\x02" + packed[1:9] + packed[1:9])


def test_an_empty_optional_sub_stream_is_left_out_and_read_back_empty():
    tags = ("motion", "residual", "global")
    packed = payload_pack(tags, (b"m", b"r", b""), optional=("global",))
    assert payload_unpack(packed) == (["motion", "residual"], [b"m", b"r"])
    assert payload_chunks(packed, tags, ("global",)) == [b"m", b"r", b""]
    full = payload_pack(tags, (b"m", b"r", b"g"), optional=("global",))
    assert payload_chunks(full, tags, ("global",)) == [b"m", b"r", b"g"]
    with pytest.raises(BitstreamError, match="empty global sub-stream"):
        payload_chunks(payload_pack(tags, (b"m", b"r", b"")), tags, ("global",))
    with pytest.raises(BitstreamError, match="payload holds the sub-streams motion; this model codes"):
        payload_chunks(payload_pack(["motion"], [b"m"]), tags, ("global",))


def test_package_version_names_the_format():
    """0.N writes and reads format N (CHANGELOG.md): the version a user reports tells the format."""
    from flowcodec import __version__
    from flowcodec.codec.bitstream import VERSION
    assert int(__version__.split(".")[1]) == VERSION


def test_payload_names_its_motion_set_member():
    tags, chunks = ("motion", "residual"), (b"m", b"r")
    packed = payload_pack(tags, chunks, member=5)
    assert payload_member(packed) == 5 and payload_member(payload_pack(tags, chunks)) == 0
    assert payload_unpack(packed) == (list(tags), list(chunks))  # the member leaves the sub-streams alone
    assert payload_chunks(packed, tags, member=5) == list(chunks)
    for other in (0, 4):
        with pytest.raises(BitstreamError, match="member 5"):
            payload_chunks(packed, tags, member=other)
    with pytest.raises(ValueError):
        payload_pack(tags, chunks, member=MEMBERS)
