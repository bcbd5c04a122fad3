"""The fuzzer (``benchmarks/fuzz.py``): a quick seeded run, and the damaged streams that once ended in a
Python traceback or in unbounded memory, kept as regression tests.

Every case runs ``flowcodec decode`` through ``flowcodec.cli.main`` in a forked copy of this process
(``fuzz.run_case``), which classifies it and measures its peak memory; the streams are the fuzzer's
seed streams, made with the shipped weights from the bundled clip, so their P-frames code motion and
residuals.
"""
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from flowcodec.codec.bitstream import FrameType, payload_pack

_spec = importlib.util.spec_from_file_location("fuzz", Path(__file__).parents[1] / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

MAX_MIB = 256  # above what decoding a 72x40 stream takes with loading the weights, far below 8192x8192


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    with fuzz.weights_loaded_once():
        return fuzz.Seeds(str(tmp_path_factory.mktemp("seeds")), None)


@pytest.fixture(scope="module")
def baseline(seeds):
    """This process's memory once the seeds are made (so what making them took is not charged to a case)."""
    return fuzz._rss_mib()


def decode(tmp_path, baseline, data, *args):
    """(class, message, MiB) of ``flowcodec decode`` on ``data`` with the shipped weights."""
    path = tmp_path / "case.fcb"
    path.write_bytes(data)
    argv = ["decode", str(path), "-o", str(tmp_path / "out.y4m"), "--threads", "1", "-q", *args]
    kind, message, mib, _ = fuzz.run_case(argv, timeout=60, max_mib=MAX_MIB, baseline=baseline)
    return kind, message, mib


@pytest.mark.parametrize("record,sub,byte,bit", [(1, 0, 0, 0), (1, 0, 4, 7), (2, 0, 0, 2), (2, 1, 0, 1)])
def test_inter_payload_bit_flip(tmp_path, baseline, seeds, record, sub, byte, bit):
    """Once constriction's AssertionError as a 43-line traceback: one bit flipped in a P-frame's motion
    or residual stream, the record CRC recomputed."""
    header, records = fuzz.split(seeds.streams[0])
    ftype, payload, steps = records[record]
    subs = fuzz.substreams(payload)
    damaged = bytearray(subs[sub][1])
    damaged[byte] ^= 1 << bit
    subs[sub] = (subs[sub][0], bytes(damaged))
    records[record] = (ftype, fuzz.pack(subs), steps)
    kind, message, _ = decode(tmp_path, baseline, fuzz.join(header, records))
    assert kind == "clean error", message
    assert message.startswith(f"frame {record}: {('motion', 'residual')[sub]} stream"), message


@pytest.mark.parametrize("width,height", [(16384, 65), (1, 8192), (1920, 63), (1920, 1080), (7671, 64),
                                          (4096, 4096)])
def test_learned_intra_stream_with_another_frame_size(tmp_path, baseline, seeds, width, height):
    """Once a traceback as well: the header of a learned-intra stream given another frame size, its CRC
    recomputed. The payload is now too short for the size, or not the coding of what it decodes to."""
    header, records = fuzz.split(seeds.streams[1])
    header = fuzz.set_header(fuzz.set_header(header, "width", width), "height", height)
    kind, message, _ = decode(tmp_path, baseline, fuzz.join(header, records))
    assert kind == "clean error", message
    assert message.startswith("frame 0: intra stream"), message


@pytest.mark.parametrize("side", [4096, 8192])
def test_empty_learned_payload_of_a_huge_frame(tmp_path, baseline, seeds, side):
    """A 63-byte stream with valid CRCs, a side x side header and one learned-intra record whose stream
    is empty: once 6 GiB and counting (8192), or a 25 MB picture from nothing (4096). Now refused by
    the decoder's pixel limit, and without it (--max-pixels 2^26, the format's limit) refused as too
    short for its size before anything is synthesised."""
    header, _ = fuzz.split(seeds.streams[1])
    for field, value in (("width", side), ("height", side), ("frame_count", 1)):
        header = fuzz.set_header(header, field, value)
    data = fuzz.join(header, [(FrameType.INTRA_LEARNED, payload_pack(["intra"], [b""]), 48)])
    assert len(data) == 63
    if side * side > 7680 * 4320:
        kind, message, _ = decode(tmp_path, baseline, data)
        assert kind == "clean error" and "over this decoder's limit of 33177600 pixels" in message, message
    kind, message, _ = decode(tmp_path, baseline, data, "--max-pixels", str(2**26))
    assert kind == "clean error", message  # not "memory": the child stayed within MAX_MIB
    assert message.startswith("frame 0: intra stream of 0 bytes is too short for the frame size"), message


def test_runner_tells_hangs_and_memory(tmp_path, baseline, seeds):
    """The classes a fixed decoder should never reach can be reached: a case over its time is a hang,
    one whose peak memory is over its bound is memory (the valid stream itself is accepted). The bound
    is crossed by measuring the same decode against a baseline 2·MAX_MIB lower, not by a tiny bound: a
    tiny bound also caps the child's address space, and an allocation that fails inside native code
    may kill the child (a crash) rather than raise MemoryError, depending on what ran before."""
    path = tmp_path / "ok.fcb"
    path.write_bytes(seeds.streams[1])
    argv = ["decode", str(path), "-o", str(tmp_path / "out.y4m"), "--threads", "1", "-q"]
    assert fuzz.run_case(argv, timeout=60, max_mib=MAX_MIB, baseline=baseline)[0] == "accepted"
    assert fuzz.run_case(argv, timeout=0, max_mib=MAX_MIB, baseline=baseline)[0] == "hang"
    over = fuzz.run_case(argv, timeout=60, max_mib=MAX_MIB, baseline=baseline - 2 * MAX_MIB)
    assert over[0] == "memory" and over[1].endswith("accepted: "), over


def test_quick_fuzz(tmp_path):
    """300 seeded cases of every family: no traceback, hang, crash or memory over the bound, and no
    case accepted with stale CRCs; both outcomes a damaged input may have occur."""
    result = fuzz.run(300, seed=0, out=str(tmp_path), timeout=60, max_mib=512, log=lambda *_: None)
    notes = [Path(f).with_suffix(".txt").read_text() for f in result["failures"]]
    assert not notes, "\n".join(notes)
    assert result["stale_accepted"] == 0
    total = Counter()
    for counts in result["table"].values():
        total.update(counts)
    assert sum(total.values()) == 300
    assert set(result["table"]) == {"bit flip", "byte run", "truncation", "header value", "records",
                                    "payload", "y4m", "raw yuv"}
    assert total["clean error"] > 150 and total["accepted"] > 10, total
    assert (tmp_path / "summary.json").exists()
