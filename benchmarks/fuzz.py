"""Fuzzer: damaged bitstreams and malformed video inputs through the real command line, every case
classified as a clean error, accepted, a traceback, a hang, a crash or memory over a bound.

    python benchmarks/fuzz.py --cases 10000 [--seed 0] [--out fuzz-out] [--weights W | --motion auto]
        [--timeout 60] [--max-mib 1024]

Seed inputs are made once: a 72x40 window panning over 3 frames of the bundled clip, as y4m and raw
yuv, and its bitstreams with HEVC intra frames (I P P) and learned intra frames (I P I), coded with the
weights given (default: the shipped pyramid weights; ``--motion auto``: the shipped motion set). Case N of seed S mutates one of them with its own
generator (``random.Random(f"{S}:{N}")``), so it is the same file anywhere. Families:

* ``bit flip``, ``byte run`` (overwrite, insert, delete), ``truncation`` (at every field boundary of
  header, records and sub-streams, and one byte either side): raw damage, CRCs left as they were;
* ``header value``: extreme values of header fields (size, rate, count, period, quality, flags,
  lengths), header CRC recomputed; in a fifth of them the records replaced by one learned intra frame
  of at most 64 bytes (a tiny stream claiming a large picture);
* ``records``: records duplicated, removed, reordered, repeated (CRCs intact; the frame count patched
  in half the cases);
* ``payload``: a record's payload mutated (bits, runs, truncation, sub-streams emptied, shortened,
  lengthened, swapped, re-tagged or transplanted, their LEB128 lengths changed, cut or over-long,
  another frame type) with its CRC recomputed, so the payload parser and the range decoder are
  attacked rather than the CRC;
* ``y4m``, ``raw yuv``: malformed encoder input (header tokens, markers, truncation, sizes, rates).

Every case runs ``flowcodec decode`` (or ``encode``) through ``flowcodec.cli.main`` in a forked copy of
this process that already holds the weights: no interpreter start-up per case, yet a hang (over
``--timeout`` s), a crash (death by a signal) or a runaway allocation (peak resident memory more than
``--max-mib`` MiB above that of the loaded decoder) is contained and counted. A clean error is exit
status 1 with one ``flowcodec: error:`` line; accepted is exit status 0. Each failure leaves its input
and a note with the command in ``OUT/failures``; the table and every case's class go to
``OUT/summary.json``. An accepted case whose CRCs were left stale would be a CRC that failed: counted
apart, it must stay 0.
"""
import argparse
import contextlib
import functools
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter

import numpy as np
import torch

from flowcodec import api, cli
from flowcodec.codec.bitstream import (_PREFIX, _RECORD, _U32, FrameType, _record_crc, _varint, payload_pack,
                                       payload_unpack)
from flowcodec.io import BUNDLED_CLIP, VideoInfo, Y4MWriter, open_video

CLIP = BUNDLED_CLIP
SIZE = (72, 40)  # of the seed clip: two 64x64 blocks once padded, so P-frames can mix block modes
CLASSES = ("clean error", "accepted", "traceback", "hang", "crash", "memory")
FAILURES = CLASSES[2:]
HEADER_FIELDS = {  # name: (offset, struct format), as in docs/bitstream.md
    "version": (4, "<B"), "header_len": (5, "<H"), "width": (7, "<H"), "height": (9, "<H"),
    "fps_num": (11, "<I"), "fps_den": (15, "<I"), "frame_count": (19, "<I"), "intra_period": (23, "<H"),
    "quality": (25, "<B"), "flags": (26, "<B"), "model_id_len": (27, "<B")}
EXTREMES = {"<B": (0, 1, 2, 6, 7, 0x7F, 0xFF),
            "<H": (0, 1, 2, 15, 16, 17, 63, 64, 65, 1080, 1920, 4320, 7680, 8192, 16384, 16385, 0xFFFF),
            "<I": (0, 1, 2, 3, 4, 1000, 2**31, 0xFFFFFFFE, 0xFFFFFFFF)}
ERROR = "flowcodec: error: "


# --- bitstream surgery ------------------------------------------------------------------------------

def split(data):
    """(header bytes, [(frame type, payload, quality in sixteenths)]) of a well-formed stream."""
    end = _PREFIX.size + _PREFIX.unpack_from(data)[2] + _U32.size
    records, pos = [], end
    while pos < len(data):
        ftype, steps, n, _ = _RECORD.unpack_from(data, pos)
        records.append((ftype, data[pos + _RECORD.size:pos + _RECORD.size + n], steps))
        pos += _RECORD.size + n
    return data[:end], records


def join(header, records):
    """A stream from header bytes and (type, payload, quality) records, every record CRC computed."""
    return header + b"".join(_RECORD.pack(t, q, len(p), _record_crc(t, q, p)) + p for t, p, q in records)


def set_header(header, field, value):
    """Header bytes with one field set to any value its type holds, the header CRC recomputed."""
    off, fmt = HEADER_FIELDS[field]
    h = bytearray(header)
    struct.pack_into(fmt, h, off, value)
    struct.pack_into("<I", h, len(h) - _U32.size, zlib.crc32(h[:-_U32.size]))
    return bytes(h)


def substreams(payload):
    """The (tag id, bytes) sub-streams of a learned payload, as far as they parse, each with the offset
    of its length field: [(tag, bytes, offset)]."""
    subs, pos = [], 1
    while pos + 2 <= len(payload):
        n, shift, end = 0, 0, pos + 1
        while end < len(payload) and payload[end] & 0x80 and shift < 28:
            n |= (payload[end] & 0x7F) << shift
            shift, end = shift + 7, end + 1
        if end >= len(payload):
            break
        n |= payload[end] << shift
        subs.append((payload[pos], payload[end + 1:end + 1 + n], pos + 1))
        pos = end + 1 + n
    return subs


def pack(subs):
    """A payload of (tag id, bytes, ...) sub-streams, whatever the ids (``payload_pack`` refuses bad
    ones)."""
    return bytes([len(subs) % 256]) + b"".join(bytes([t % 256]) + _varint(len(s)) + s for t, s, *_ in subs)


def boundaries(data):
    """Every field boundary of a well-formed stream: header fields, record fields, sub-streams."""
    header, records = split(data)
    cuts = {0, 4, 5, 7, len(header) - 12, len(header) - 4, len(header)}
    cuts |= {off + struct.calcsize(fmt) for off, fmt in HEADER_FIELDS.values()}
    pos = len(header)
    for t, p, _ in records:
        cuts |= {pos + 1, pos + 2, pos + 6, pos + _RECORD.size}
        start = pos + _RECORD.size
        if t != FrameType.INTRA_HEVC:
            for _, s, at in substreams(p):  # cuts before the tag, length, data, and after the data
                body = start + at + len(_varint(len(s)))
                cuts |= {start + at - 1, start + at, body, body + len(s)}
        pos += _RECORD.size + len(p)
        cuts.add(pos)
    return sorted(c for c in cuts if c < len(data))


def flip(data, rng, bits):
    """``data`` with ``bits`` random bits flipped."""
    b = bytearray(data)
    for _ in range(bits if b else 0):
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def byte_run(data, rng):
    """Overwrite, insert or delete a run of 1-64 bytes (zeros, ones, random, or copied from the data)."""
    n, pos = rng.randint(1, 64), rng.randrange(len(data) + 1)
    fill = rng.choice([bytes(n), b"\xff" * n, rng.randbytes(n), (data * 2)[rng.randrange(len(data) + 1):][:n]])
    op = rng.choice(["overwrite", "insert", "delete"])
    if op == "insert":
        return data[:pos] + fill + data[pos:], f"insert {len(fill)} bytes at {pos}"
    if op == "delete":
        return data[:pos] + data[pos + n:], f"delete {n} bytes at {pos}"
    return data[:pos] + fill + data[pos + len(fill):], f"overwrite {len(fill)} bytes at {pos}"


# --- the case families ------------------------------------------------------------------------------

class Case:
    """One input: its family, the mutation in words, the file's bytes and suffix, extra CLI arguments,
    and what became of the CRCs ("stale": bytes damaged, CRCs as they were; "recomputed"; "intact":
    whole records moved; "-": video input)."""

    def __init__(self, family, what, data, crc, suffix=".fcb", args=()):
        self.family, self.what, self.data, self.crc, self.suffix, self.args = (
            family, what, data, crc, suffix, tuple(args))


def bit_flip(rng, seeds):
    data, k = rng.choice(seeds.streams), rng.choice([1, 1, 2, 3, 8])
    return Case("bit flip", f"{k} random bits flipped", flip(data, rng, k), "stale")


def run_damage(rng, seeds):
    data, what = byte_run(rng.choice(seeds.streams), rng)
    return Case("byte run", what, data, "stale")


def truncation(rng, seeds):
    data = rng.choice(seeds.streams)
    cut = max(0, rng.choice(boundaries(data)) + rng.choice([-1, 0, 0, 1]))
    return Case("truncation", f"cut at byte {cut} of {len(data)}", data[:cut], "stale")


def header_value(rng, seeds):
    header, records = split(rng.choice(seeds.streams))
    fields = rng.sample(sorted(HEADER_FIELDS), rng.choice([1, 1, 2]))
    if rng.random() < 0.4:
        fields = ["width", "height"]
    what = []
    for f in fields:
        fmt = HEADER_FIELDS[f][1]
        value = rng.choice(EXTREMES[fmt]) if rng.random() < 0.8 else rng.randrange(256 ** struct.calcsize(fmt))
        header = set_header(header, f, value)
        what.append(f"{f}={value}")
    if rng.random() < 0.2:  # and a learned intra frame of next to nothing: a tiny stream claiming a lot
        tiny = rng.randbytes(4 * rng.choice([0, 0, 1, 2, 16]))
        records = [(FrameType.INTRA_LEARNED, payload_pack(["intra"], [tiny]), 48)]
        header = set_header(header, "frame_count", 1)
        what.append(f"one learned intra record of {len(payload_unpack(records[0][1])[1][0])} bytes")
    return Case("header value", ", ".join(what), join(header, records), "recomputed")


def record_edit(rng, seeds):
    header, records = split(rng.choice(seeds.streams))
    records = list(records)
    op = rng.choice(["duplicate", "remove", "swap", "to front", "reverse", "repeat last", "none left"])
    i, j = rng.randrange(len(records)), rng.randrange(len(records))
    if op == "duplicate":
        records.insert(j, records[i])
    elif op == "remove":
        del records[i]
    elif op == "swap":
        records[i], records[j] = records[j], records[i]
    elif op == "to front":
        records.insert(0, records.pop(i))
    elif op == "reverse":
        records.reverse()
    elif op == "repeat last":
        records += records[-1:] * rng.randint(1, 6)
    else:
        records = []
    crc = "intact"
    if rng.random() < 0.5:
        header, crc = set_header(header, "frame_count", len(records)), "recomputed"
        op += ", frame count patched"
    return Case("records", f"{op} (records {i}, {j})", join(header, records), crc)


def payload_edit(rng, seeds):
    """A record's payload changed and its CRC recomputed: what reaches payload_unpack, ffmpeg and the
    range decoder."""
    stream = rng.choice(seeds.streams)
    header, records = split(stream)
    records = list(records)
    i = rng.randrange(len(records))
    t, p, q = records[i]
    subs = substreams(p) if t != FrameType.INTRA_HEVC else []
    other = rng.choice(split(rng.choice(seeds.streams))[1])
    ops = ["flip", "run", "truncate", "append", "empty", "random", "retype", "transplant", "quality"]
    ops += ["sub flip", "sub empty", "sub shorter", "sub longer", "sub zero", "sub swap", "sub other",
            "sub length", "sub tag"] * 2 if subs else []
    op = rng.choice(ops)
    k = rng.randrange(len(subs)) if subs else 0
    words = lambda n: rng.randbytes(4 * n)
    if op == "flip":
        p = flip(p, rng, rng.choice([1, 2, 4]))
    elif op == "run":
        p = byte_run(p, rng)[0]
    elif op == "truncate":
        p = p[:rng.randrange(len(p) + 1)]
    elif op == "append":
        p = p + rng.randbytes(rng.choice([1, 4, 8, 100]))
    elif op == "empty":
        p = b""
    elif op == "random":
        p = rng.randbytes(rng.randrange(2 * len(p) + 8))
    elif op == "retype":
        t = rng.choice([f for f in FrameType if f != t])
    elif op == "transplant":
        p = other[1]
    elif op == "quality":  # below 1, the levels' edges, beyond the model's levels
        q = rng.choice([0, 1, 15, 16, 17, 143, 144, 145, 255])
    elif op == "sub length":
        tag, s, at = subs[k]
        n = len(s)
        length = rng.choice([_varint(v) for v in (0, 1, 4, n + 4, max(n - 4, 0), 2**28 - 1)]
                            + [b"\xff\xff\xff\xff\x01", _varint(n)[:-1], b"\x80" * len(_varint(n)) + b"\x00"])
        p = p[:at] + length + p[at + len(_varint(n)):]
    elif op == "sub tag":
        subs[k] = (rng.choice([x for x in range(8) if x != subs[k][0]] + [255]), subs[k][1])
        p = pack(subs)
    else:
        tag, s, _ = subs[k]
        if op == "sub flip":
            s = flip(s, rng, rng.choice([1, 1, 2, 8]))
        elif op == "sub empty":
            s = b""
        elif op == "sub shorter":
            s = s[:4 * rng.randrange(max(len(s) // 4, 1))]
        elif op == "sub longer":
            s = s + words(rng.choice([1, 2, 16]))
        elif op == "sub zero":
            s = bytes(len(s))
        elif op == "sub swap":
            subs = subs[::-1]
        else:
            donors = [d for _, d, _ in substreams(other[1])] if other[0] != FrameType.INTRA_HEVC else [other[1]]
            s = rng.choice(donors) if donors else s
        if op != "sub swap":
            subs[k] = (tag, s)
        p = pack(subs)
    records[i] = (t, p, q)
    return Case("payload", f"record {i} (type {int(records[i][0])}, quality {q}/16): {op}, sub-stream {k}",
                join(header, records), "recomputed")


Y4M_TOKENS = {"W": ["0", "1", "2", "16", "17", "40", "16384", "16385", "99999999999999", "-5", "x", ""],
              "H": ["0", "1", "3", "24", "16384", "70000", "1e3", ""],
              "F": ["0:1", "25:0", "1:1", "30000:1001", "999999999:1", "x", "25", ""],
              "C": ["420", "420jpeg", "420p10", "444", "422", "mono", "mono16", "420p8", "xyz", ""],
              "I": ["p", "t", "?", "x"], "A": ["1:1", "0:0", "x"], "X": ["comment", "=" * 300]}


def y4m_edit(rng, seeds):
    data = seeds.y4m
    head, body = data.split(b"\n", 1)
    op = rng.choice(["token", "token", "drop token", "flip", "cut", "marker", "header only", "empty",
                     "garbage after", "long line"])
    if op == "token":
        key = rng.choice(sorted(Y4M_TOKENS))
        value = rng.choice(Y4M_TOKENS[key])
        tokens = [t for t in head.split(b" ") if not t.startswith(key.encode())]
        data = b" ".join(tokens + [f"{key}{value}".encode()]) + b"\n" + body
        what = f"{key}{value}"
    elif op == "drop token":
        tokens = head.split(b" ")
        drop = rng.randrange(1, len(tokens))
        data = b" ".join(tokens[:drop] + tokens[drop + 1:]) + b"\n" + body
        what = f"without {tokens[drop].decode()}"
    elif op == "flip":
        data, what = flip(data, rng, rng.choice([1, 2, 8])), "bits flipped"
    elif op == "cut":
        frame = len(body) // 3
        cuts = [len(head), len(head) + 1] + [len(head) + 1 + k * frame + d for k in range(3) for d in (0, 3, 6)]
        cuts += [len(head) + 1 + k * frame + 6 + SIZE[0] * SIZE[1] for k in range(3)]  # luma ends
        cut = max(0, rng.choice(cuts) + rng.choice([-1, 0, 1]))
        data, what = data[:cut], f"cut at byte {cut}"
    elif op == "marker":
        marker = rng.choice([b"FRAMX\n", b"FRAME", b"FRAME Ixx\n", b"FRAME" + b" " * 5000 + b"\n", b"\n"])
        data = head + b"\n" + body.replace(b"FRAME\n", marker, rng.randint(1, 3))
        what = f"marker {marker[:12]!r}"
    elif op == "header only":
        data, what = head + b"\n", "header only"
    elif op == "empty":
        data, what = b"", "empty file"
    elif op == "garbage after":
        data, what = data + rng.randbytes(rng.randrange(1, 100)), "garbage after the last frame"
    else:
        data, what = head + b" X" + b"a" * 5000 + b"\n" + body, "header line of 5000 bytes"
    return Case("y4m", what, data, "-", ".y4m")


def raw_edit(rng, seeds):
    frame = len(seeds.yuv) // 3
    n = rng.choice([0, 1, frame - 1, frame, frame + 1, 2 * frame, 3 * frame, 3 * frame - 7])
    size = rng.choice(["72x40", "72x40", "40x72", "36x80", "0x40", "1x1", "16384x16384", "72x", "axb",
                       "99999999x2", "-72x40", "72X40"])
    args = [f"--size={size}"]  # one token: "-72x40" is a value here, not an option
    if rng.random() < 0.3:
        args.append("--fps=" + rng.choice(["0", "1/0", "-1", "30000/1001", "1e9", "abc", "25"]))
    return Case("raw yuv", f"{n} bytes, {' '.join(args)}", (seeds.yuv * 2)[:n], "-", ".yuv", args)


FAMILIES = [(bit_flip, 15), (run_damage, 10), (truncation, 10), (header_value, 15), (record_edit, 10),
            (payload_edit, 25), (y4m_edit, 10), (raw_edit, 5)]


def make_case(seed, n, seeds):
    """Case n of ``seed``: a family drawn by weight, then its mutation, drawn again from the same
    generator while the mutation leaves a seed input as it was."""
    rng = random.Random(f"{seed}:{n}")
    while True:
        make = rng.choices([f for f, _ in FAMILIES], [w for _, w in FAMILIES])[0]
        case = make(rng, seeds)
        if case.args or case.data not in (*seeds.streams, seeds.y4m):
            return case


# --- running and classifying ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def encode_args(weights, motion=None):
    """``--weights W --motion M`` for encoding with the weights given (M: the motion approach they hold),
    ``--motion M`` for a shipped model, nothing for the shipped pyramid weights."""
    if motion:
        return ("--motion", motion)
    if not weights:
        return ()
    from flowcodec.codec.model import load
    return ("--weights", weights, "--motion", load(weights)[0].motion_name)


def cli_args(case, path, out, weights, motion=None):
    """The command line of a case: decode a stream, or encode a video input's first 4 frames (a valid
    raw file read at 1x1 holds thousands; the seed clip has 3, so what follows them is read too)."""
    if case.suffix == ".fcb":
        return ["decode", path, "-o", out, "--threads", "1", "-q", *(["--weights", weights] if weights else [])]
    return ["encode", path, "-o", out, "--threads", "1", "-q", "--frames", "4", *case.args,
            *encode_args(weights, motion)]


def _in_child(argv, report, limit):
    """Run the CLI as the case's process, allocations capped at ``limit`` bytes of address space (far
    over the bound: they fail instead of swapping the machine); write (class, message) to ``report``."""
    err = io.StringIO()
    try:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = cli.main(argv)
    except BaseException:  # an escaping exception is what a user sees as a traceback
        trace = traceback.format_exc()
        kind = "memory" if "MemoryError" in trace or "allocate memory" in trace else "traceback"
        result = (kind, trace)
    else:
        lines = err.getvalue().strip().splitlines()
        if rc == 0:
            result = ("accepted", "")
        elif rc == 1 and len(lines) == 1 and lines[0].startswith(ERROR):
            result = ("clean error", lines[0][len(ERROR):])
        else:
            result = ("traceback", f"exit status {rc}, stderr: {err.getvalue()}")
    os.write(report, json.dumps(result)[:60000].encode())


def _rss_mib():
    """Peak resident MiB of a child forked from this process that does nothing (the baseline)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return os.wait4(pid, 0)[2].ru_maxrss / 1024


def run_case(argv, timeout, max_mib, baseline):
    """Run one CLI call in a forked child: (class, message, MiB above the baseline, seconds)."""
    read, write = os.pipe()
    vm = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            _in_child(argv, write, vm + int(4 * max_mib * 2**20))
        finally:
            os._exit(0)
    os.close(write)
    killed = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            killed = True
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.002)
    seconds = time.perf_counter() - start
    with os.fdopen(read, "rb") as f:
        report = f.read()
    mib = usage.ru_maxrss / 1024 - baseline
    if killed:
        return "hang", f"no answer in {timeout:.0f} s", mib, seconds
    if os.WIFSIGNALED(status) or not report:
        return "crash", f"wait status {status}", mib, seconds
    kind, message = json.loads(report)
    if mib > max_mib:
        kind, message = "memory", f"{mib:.0f} MiB above the loaded decoder; {kind}: {message}"
    return kind, message, mib, seconds


def window(frame, at, w, h):
    """The w x h window of a 4:2:0 frame at luma (at, at), at even."""
    (y, u, v), c, cw, ch = frame, at // 2, (w + 1) // 2, (h + 1) // 2
    planes = (y[at:at + h, at:at + w], u[c:c + ch, c:c + cw], v[c:c + ch, c:c + cw])
    return tuple(np.ascontiguousarray(p) for p in planes)


class Seeds:
    """The valid inputs the cases mutate: a small y4m clip, its raw yuv, and its bitstreams."""

    def __init__(self, work, weights, motion=None):
        w, h = SIZE
        with open_video(CLIP, frames=3) as src:  # a window panning 4 pixels a frame: P-frames code motion
            frames = [window(f, 4 * k, w, h) for k, f in enumerate(src)]
        buf = io.BytesIO()
        writer = Y4MWriter(buf, VideoInfo(w, h, 25, 1))
        for f in frames:
            writer.write(f)
        self.y4m = buf.getvalue()
        self.yuv = b"".join(p.tobytes() for f in frames for p in f)
        clip = os.path.join(work, "seed.y4m")
        with open(clip, "wb") as f:
            f.write(self.y4m)
        self.streams = []
        for intra, period in (("hevc", "32"), ("learned", "2")):
            out = os.path.join(work, f"seed-{intra}.fcb")
            argv = ["encode", clip, "-o", out, "--intra", intra, "--intra-period", period, "--threads", "1",
                    "-q", "--no-adaptive-intra", *encode_args(weights, motion)]
            with contextlib.redirect_stderr(io.StringIO()) as err:
                if cli.main(argv) != 0:
                    raise RuntimeError(f"cannot encode the seed clip: {err.getvalue()}")
            with open(out, "rb") as f:
                self.streams.append(f.read())


@contextlib.contextmanager
def weights_loaded_once():
    """While fuzzing, the CLI loads each weights file once; the forked cases inherit the model."""
    original = api.load_model
    api.load_model = functools.lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        api.load_model = original


def run(cases, seed=0, weights=None, out=None, timeout=60.0, max_mib=1024.0, log=print, motion=None):
    """Run cases 0..cases-1 of ``seed``; return {"table": {family: {class: n}}, "stale_accepted": n,
    "failures": [reproducer paths], "peak_mib": max MiB above the baseline, "seconds": s}."""
    torch.set_num_threads(1)  # before any parallel region: forked children must not inherit a thread pool
    out = out or "fuzz-out"
    os.makedirs(os.path.join(out, "failures"), exist_ok=True)
    t0 = time.perf_counter()
    table, stale, failures, peak, classes = {}, 0, [], 0.0, []
    with tempfile.TemporaryDirectory() as work, weights_loaded_once():
        seeds = Seeds(work, weights, motion)
        for data in seeds.streams:  # loads the weights (and their tables) here, once for all children
            path, dec = os.path.join(work, "warm.fcb"), os.path.join(work, "warm.y4m")
            with open(path, "wb") as f:
                f.write(data)
            with contextlib.redirect_stderr(io.StringIO()):
                cli.main(cli_args(Case("", "", data, ""), path, dec, weights, motion))
        baseline = _rss_mib()
        for n in range(cases):
            case = make_case(seed, n, seeds)
            path, dest = os.path.join(work, "case" + case.suffix), os.path.join(work, "out")
            with open(path, "wb") as f:
                f.write(case.data)
            argv = cli_args(case, path, dest, weights, motion)
            kind, message, mib, secs = run_case(argv, timeout, max_mib, baseline)
            peak = max(peak, mib)
            row = table.setdefault(case.family, Counter())
            row[kind] += 1
            stale += kind == "accepted" and case.crc == "stale"
            classes.append([n, case.family, case.what, case.crc, kind, message[:300], round(mib),
                            round(secs, 3)])
            if kind in FAILURES or (kind == "accepted" and case.crc == "stale"):
                name = os.path.join(out, "failures", f"{n:05d}-{kind}-{case.family}".replace(" ", "-"))
                shutil.copyfile(path, name + case.suffix)
                with open(name + ".txt", "w") as f:
                    f.write(f"case {n} of seed {seed}: {case.family}, {case.what} (CRCs {case.crc})\n"
                            f"flowcodec {' '.join(cli_args(case, name + case.suffix, 'out', weights, motion))}\n"
                            f"{kind}: {message}\n")
                failures.append(name + case.suffix)
                log(f"case {n}: {kind} ({case.family}: {case.what}): {message.strip().splitlines()[-1][:200]}")
            for leftover in os.listdir(work):
                if leftover.startswith(("out", ".out", "case")):
                    os.unlink(os.path.join(work, leftover))
    result = {"table": {f: dict(c) for f, c in table.items()}, "stale_accepted": stale, "failures": failures,
              "peak_mib": round(peak), "seconds": round(time.perf_counter() - t0, 1)}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump({**result, "seed": seed, "cases": cases, "classes": classes}, f, indent=1)
    return result


def format_table(result):
    """The result as a Markdown table: cases by family and class, with totals."""
    rows = ["| family | " + " | ".join(CLASSES) + " | total |", "|---" * (len(CLASSES) + 2) + "|"]
    total = Counter()
    for family, counts in sorted(result["table"].items()):
        total.update(counts)
        rows.append(f"| {family} | " + " | ".join(str(counts.get(c, 0)) for c in CLASSES)
                    + f" | {sum(counts.values())} |")
    rows.append("| **all** | " + " | ".join(f"**{total.get(c, 0)}**" for c in CLASSES)
                + f" | **{sum(total.values())}** |")
    return "\n".join(rows)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="fuzz-out", help="failures/ (reproducers) and summary.json")
    p.add_argument("--weights", help="weights file (default: the shipped pyramid weights)")
    p.add_argument("--motion", help="code the seed streams with this shipped model instead (e.g. auto)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds after which a case is a hang")
    p.add_argument("--max-mib", type=float, default=1024.0,
                   help="peak memory above the loaded decoder over which a case counts as memory")
    a = p.parse_args()
    if a.motion and a.weights:
        p.error("--weights or --motion, not both")
    result = run(a.cases, a.seed, a.weights, a.out, a.timeout, a.max_mib, motion=a.motion)
    print(format_table(result))
    print(f"{sum(sum(c.values()) for c in result['table'].values())} cases in {result['seconds']} s, seed "
          f"{a.seed}; accepted with stale CRCs: {result['stale_accepted']}; peak {result['peak_mib']} MiB "
          f"above the loaded decoder; reproducers of {len(result['failures'])} failures in {a.out}/failures")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
