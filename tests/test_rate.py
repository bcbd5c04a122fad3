"""Qualities between the levels and the rate control (``--quality 4.5``, ``--bitrate``; format 6): the
gains interpolate exactly, rate grows with quality through the fractional steps, the controller meets
its target, and every such stream decodes in another process to the encoder's reconstruction."""
import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from flowcodec.codec import rate
from flowcodec.codec.bitstream import Reader
from flowcodec.codec.options import INTRA_QP, LAMBDAS, QUALITIES, QUALITY_STEPS, intra_qp, lam
from flowcodec.entropy.hyper import HyperCodec
from flowcodec.layers import exact
from flowcodec.io import BUNDLED_CLIP

from conftest import cli_inproc

CLIP = BUNDLED_CLIP


def test_lambda_and_intra_qp_interpolate_the_ladder():
    assert [lam(q) for q in range(1, QUALITIES + 1)] == list(LAMBDAS)
    assert [intra_qp(q) for q in range(1, QUALITIES + 1)] == list(INTRA_QP)
    assert lam(2.5) == pytest.approx(math.sqrt(LAMBDAS[1] * LAMBDAS[2]))
    assert intra_qp(1.5) == 40 and intra_qp(1.25) == 41
    with pytest.raises(ValueError):
        lam(QUALITIES + 0.5)


def test_fractional_gains_are_computed_exactly_between_the_levels():
    """Inside exact(), a fractional level's gains are g_lo^(1-t) · g_hi^t computed with exp and log
    from basic operations (so identical on every machine): equal to float64 pow to a few ulp, and a
    level itself is its own row."""
    torch.manual_seed(3)
    table = torch.rand(QUALITIES, 16) * 4 + 0.1
    with exact.exact():
        got = HyperCodec._pick(table, 2.5625)[0, :, 0, 0]
        level = HyperCodec._pick(table, 3)[0, :, 0, 0]
    want = table[2].double() ** (1 - 0.5625) * table[3].double() ** 0.5625
    assert got.dtype == torch.float64 and torch.allclose(got, want, rtol=1e-14, atol=0)
    assert torch.equal(level, table[3])


def _simulate(kbps, slope, seed, frames=64, period=32, fps=25.0, size=(384, 288), known=True):
    """The controller driving a model codec whose frames cost 2^(c + slope·q) bits times noise, c starting
    up to 1.5 (log2) from the controller's assumption and drifting (content changing); returns the
    achieved kbit/s and the qualities chosen."""
    rng = random.Random(seed)
    control = rate.RateControl(kbps, fps, *size, period, frames if known else None)
    c = {k: v + rng.uniform(-1.5, 1.5) for k, v in control.complexity.items()}
    spent, qualities, since = 0, [], 0
    for n in range(frames):
        q = control.quality(since)
        intra = since % period == 0
        c = {k: v + rng.gauss(0, 0.05) for k, v in c.items()}
        bits = round(2 ** (c["intra" if intra else "inter"] + slope * q + rng.gauss(0, 0.3)))
        control.update(intra, bits, q)
        spent += bits
        qualities.append(q)
        since = 1 if intra else since + 1
    return spent * fps / frames / 1000, qualities


@pytest.mark.parametrize("slope", [0.35, 0.5, 0.65])
@pytest.mark.parametrize("known", [True, False])
def test_rate_control_meets_its_target(slope, known):
    """Over 64 frames with two intra frames, whatever the codec's true rate slope and whether the
    frame count is known, within 5% of the target where the quality range allows; qualities on the
    stored grid, within the range, moving at most MAX_STEP per frame."""
    for seed in range(3):
        for kbps in (100.0, 300.0, 1000.0):
            got, qualities = _simulate(kbps, slope, seed, known=known)
            if 1 < min(qualities) and max(qualities) < QUALITIES:
                assert abs(got / kbps - 1) < 0.05, (kbps, got, qualities)
            assert all(q * QUALITY_STEPS == int(q * QUALITY_STEPS) and 1 <= q <= QUALITIES for q in qualities)
            assert max(abs(a - b) for a, b in zip(qualities, qualities[1:])) <= rate.MAX_STEP


def _decoded_equals_recon(fcb, recon, tmp_path):
    """Decode ``fcb`` in a separate process; True when its output equals the encoder's ``recon``."""
    out = tmp_path / "decoded.y4m"
    proc = subprocess.run([sys.executable, "-m", "flowcodec.cli", "decode", str(fcb), "-o", str(out), "-q",
                           "--threads", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes() == recon.read_bytes()


def test_fractional_quality_codes_between_its_levels(tmp_path):
    """Shipped pyramid, bundled clip: quality 3.5 costs more than 3 and less than 4 and decodes to the
    encoder's reconstruction; every record carries 3.5."""
    sizes = {}
    for q in ("3", "3.5", "4"):
        fcb, recon = tmp_path / f"q{q}.fcb", tmp_path / f"q{q}.y4m"
        rc, _, err = cli_inproc("encode", CLIP, "-o", fcb, "--recon", recon, "--quality", q, "--frames", "4",
                                "--threads", "1", "-q", timeout=300)
        assert rc == 0, err
        sizes[q] = fcb.stat().st_size
    assert sizes["3"] < sizes["3.5"] < sizes["4"], sizes
    with open(tmp_path / "q3.5.fcb", "rb") as f:
        assert {q for _, _, q in Reader(f)} == {3.5}
    assert _decoded_equals_recon(tmp_path / "q3.5.fcb", tmp_path / "q3.5.y4m", tmp_path)


def test_bitrate_round_trips_and_steers_the_rate(tmp_path):
    """``--bitrate`` on the bundled clip (shipped pyramid, its first 17 frames at 10 frames/s, intra
    frames at 0 and 16 only): each target met within 10%, a lower target gives a smaller file, qualities
    vary per frame, and the stream decodes in another process to the encoder's reconstruction. (Adaptive
    intra is off: at 80 kbit/s on all 33 frames it makes the last frame an intra frame, which no
    one-pass control can repay.)"""
    sizes = []
    for kbps in (40, 80):
        fcb, recon = tmp_path / f"r{kbps}.fcb", tmp_path / f"r{kbps}.y4m"
        rc, _, err = cli_inproc("encode", CLIP, "-o", fcb, "--recon", recon, "--bitrate", str(kbps), "--frames",
                                "17", "--intra-period", "16", "--no-adaptive-intra", "--threads", "1", "-q",
                                timeout=600)
        assert rc == 0, err
        size = fcb.stat().st_size
        achieved = 8 * size * 10 / 17 / 1000
        assert abs(achieved / kbps - 1) < 0.1, (kbps, achieved)
        sizes.append(size)
        with open(fcb, "rb") as f:
            reader = Reader(f)
            qualities = [q for _, _, q in reader]
        assert reader.header.quality == 0 and len(set(qualities)) > 3, qualities
    assert sizes[0] < sizes[1]
    assert _decoded_equals_recon(tmp_path / "r80.fcb", tmp_path / "r80.y4m", tmp_path)


def test_api_codes_each_frame_at_the_quality_given(tmp_path):
    """Per-frame quality from Python: the records carry what was asked (rounded to 1/16), and the
    decoder follows them."""
    import flowcodec
    from conftest import clip_frames
    frames = clip_frames(64, 48, 4, seed=2)
    asked = [4, 2.5, 6.03, 1]
    with flowcodec.Encoder(tmp_path / "a.fcb", 64, 48, quality=3) as enc:
        recons = [enc.encode(f, q) for f, q in zip(frames, asked)]
    with open(tmp_path / "a.fcb", "rb") as f:
        assert [q for _, _, q in Reader(f)] == [4, 2.5, 6.0, 1]
    with flowcodec.Decoder(tmp_path / "a.fcb") as dec:
        assert all(all(np.array_equal(a, b) for a, b in zip(x, y)) for x, y in zip(dec, recons))
