"""Tests of ``flowcodec eval`` (RD evaluation), its report and BD-rate table, and ``flowcodec analyze``.

One small evaluation (64x64, 3 frames, qualities 1 and 6, random weights, the x264 anchor) is run
once for the module and inspected by several tests; error paths fail before any coding.
"""
import csv
import dataclasses
import json
import math
import os

import numpy as np
import pytest

from conftest import cli_inproc as cli, make_y4m
from flowcodec.eval.anchors import ANCHORS
from flowcodec.eval.run import bd_rows

W, H, N = 64, 64, 3
SLOW_S = 600  # whole evaluations run several processes; this machine may be busy


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, weights):
    """Output folder of one evaluation, and the weights it used (untrained: with adaptive intra every
    frame would be intra, so the fixed period keeps P-frames to measure)."""
    root = tmp_path_factory.mktemp("eval")
    clip = make_y4m(root / "tiny.y4m", W, H, N + 2)
    out = root / "out"
    rc, stdout, err = cli("eval", clip, "--motion", "pyramid", "--qualities", "1", "6", "--anchors",
                          "x264-medium", "--frames", str(N), "--weights", weights, "--threads", "1",
                          "--no-adaptive-intra", "--out", out, timeout=SLOW_S)
    assert rc == 0, err
    assert "BD-rate" in stdout
    return out, weights


def test_results_are_consistent(evaluated):
    out, _ = evaluated
    results = json.loads((out / "results.json").read_text())
    clip = results["clips"]["tiny"]
    assert (clip["width"], clip["height"], clip["frames"]) == (W, H, N)
    points = clip["points"]
    assert [p["point"] for p in points] == ["qp22", "qp27", "qp32", "qp37", "qp42", "q1", "q6"]
    for p in points:
        assert p["bpp"] == pytest.approx(8 * p["bytes"] / (W * H * N))
        assert p["psnr_yuv"] == pytest.approx(np.mean([f["yuv"] for f in p["frames"]]))
        assert p["psnr_yuv"] == pytest.approx(np.mean([(6 * f["y"] + f["u"] + f["v"]) / 8
                                                       for f in p["frames"]]))
        assert len(p["frames"]) == N and p["enc_s"] > 0 and p["dec_s"] > 0
        assert p["msssim"] is None  # 64x64 is below MS-SSIM's minimum size
    for p in (p for p in points if p["kind"] == "flowcodec"):
        assert p["bytes"] == os.path.getsize(out / p["bitstream"])
        frames = p["frames"]
        assert [f["type"] for f in frames] == ["INTRA_HEVC", "INTER", "INTER"]
        assert sum(f["bytes"] for f in frames) < p["bytes"]  # the rest is the container
        for f in frames[1:]:
            assert f["motion_bytes"] + f["residual_bytes"] + 5 == f["bytes"]  # count, 2 × (tag, 1-byte length)
    assert sorted(os.listdir(out / "tiny")) == ["pyramid_q1.fcb", "pyramid_q6.fcb", "source.y4m"]


def test_tables_and_plot(evaluated):
    out, _ = evaluated
    with open(out / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and {r["codec"] for r in rows} == {"x264-medium", "pyramid"}
    results = json.loads((out / "results.json").read_text())
    first = results["clips"]["tiny"]["points"][0]
    assert float(rows[0]["bpp"]) == pytest.approx(first["bpp"])
    with open(out / "bdrate.csv") as f:
        bd = list(csv.DictReader(f))
    assert [(r["motion"], r["anchor"]) for r in bd] == [("pyramid", "x264-medium")]
    assert math.isnan(float(bd[0]["tiny"]))  # two flowcodec points: too few for a BD-rate
    assert (out / "rd_tiny.png").stat().st_size > 1000
    table = (out / "README_table.md").read_text()
    assert "| clip | codec | point | bpp |" in table and "| pyramid | x264-medium | n/a |" in table


def test_report_rebuilds_from_results(evaluated):
    out, _ = evaluated
    before = {n: (out / n).read_text() for n in ("summary.csv", "bdrate.csv", "README_table.md")}
    for n in before:
        (out / n).unlink()
    rc, stdout, err = cli("eval", "--report", out)
    assert rc == 0, err
    assert {n: (out / n).read_text() for n in before} == before


def test_bd_table():
    """BD-rates per clip and their mean over the clips where they are defined."""
    rates, psnrs = [0.05, 0.1, 0.2, 0.4, 0.8], [30.0, 33.0, 36.0, 39.0, 42.0]
    curve = lambda kind, codec, scale, shift: [
        {"kind": kind, "codec": codec, "bpp": r * scale, "psnr_yuv": q + shift} for r, q in zip(rates, psnrs)]
    results = {"clips": {
        "a": {"points": curve("anchor", "x265", 1, 0) + curve("flowcodec", "pyramid", 0.9, 0)},
        "b": {"points": curve("anchor", "x265", 1, 0) + curve("flowcodec", "pyramid", 1, 20)}}}
    header, rows = bd_rows(results)
    assert header == ["motion", "anchor", "a", "b", "mean", "clips_in_mean"]
    (motion, anchor, a, b, mean, count), = rows
    assert (motion, anchor, count) == ("pyramid", "x265", 1)
    assert a == pytest.approx(-10.0) and math.isnan(b) and mean == pytest.approx(-10.0)


def _one_line_error(rc, err, *words):
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1 and lines[0].startswith("flowcodec: error:"), err
    assert all(w in lines[0] for w in words), lines[0]


def test_missing_clip_is_one_line_error(tmp_path, weights):
    rc, _, err = cli("eval", tmp_path / "nothere.y4m", "--motion", "pyramid", "--anchors", "",
                     "--weights", weights, "--out", tmp_path / "out")
    _one_line_error(rc, err, "nothere.y4m")


def test_missing_anchor_encoder_is_reported_before_coding(tmp_path, weights, monkeypatch):
    monkeypatch.setitem(ANCHORS, "fake", dataclasses.replace(ANCHORS["x264-medium"], encoder="libnotthere"))
    clip = make_y4m(tmp_path / "c.y4m", W, H, 2)
    rc, _, err = cli("eval", clip, "--motion", "pyramid", "--anchors", "fake", "--weights", weights,
                     "--out", tmp_path / "out")
    _one_line_error(rc, err, "libnotthere")
    assert not (tmp_path / "out").exists()


def test_unknown_anchor_is_reported(tmp_path, weights):
    clip = make_y4m(tmp_path / "c.y4m", W, H, 2)
    rc, _, err = cli("eval", clip, "--motion", "pyramid", "--anchors", "x266", "--weights", weights,
                     "--out", tmp_path / "out")
    _one_line_error(rc, err, "unknown anchor")


def test_analyze_writes_pictures_and_page(evaluated, tmp_path):
    out, weights = evaluated
    rc, _, err = cli("analyze", out / "tiny" / "pyramid_q6.fcb", "--out", tmp_path / "a", "--source",
                     out / "tiny" / "source.y4m", "--weights", weights, "--threads", "1", timeout=SLOW_S)
    assert rc == 0, err
    page = (tmp_path / "a" / "index.html").read_text()
    pictures = ["bits.png", "wheel.png"] + [f"{kind}_{i:04d}.png" for i in (1, 2)
                                            for kind in ("flow", "pred", "error", "bits")]
    for name in pictures:
        assert (tmp_path / "a" / name).stat().st_size > 100
        assert f'src="{name}"' in page
    assert not (tmp_path / "a" / "flow_0000.png").exists()  # frame 0 is intra


def test_resume_measures_only_missing_points(evaluated, tmp_path):
    """--resume keeps the points results.json holds and measures the rest; another protocol is refused."""
    import shutil
    src, weights = evaluated
    out = tmp_path / "out"
    shutil.copytree(src, out)
    clip = str(next(p for p in src.parent.iterdir() if p.suffix == ".y4m"))
    before = json.loads((out / "results.json").read_text())
    args = ["eval", clip, "--motion", "pyramid", "--anchors", "x264-medium", "--frames", str(N),
            "--weights", weights, "--threads", "1", "--no-adaptive-intra", "--out", out,
            "--resume"]
    rc, _, err = cli(*args, "--qualities", "1", "2", "6", timeout=SLOW_S)
    assert rc == 0, err
    assert err.count(" bpp, ") == 1 and "pyramid q2:" in err  # only the new point was coded
    after = json.loads((out / "results.json").read_text())
    points = [p["point"] for c in after["clips"].values() for p in c["points"]]
    assert sorted(points) == sorted([p["point"] for c in before["clips"].values() for p in c["points"]] + ["q2"])
    rc, _, err = cli(*args[:-1], "--intra-period", "8", "--resume", "--qualities", "1", timeout=SLOW_S)
    assert rc == 1 and "another protocol" in err and "Traceback" not in err


def test_analyze_shows_the_alignment_offsets_of_feature_space_motion(tmp_path):
    """A pixel_to_feature stream (random weights, learned intra): each P-frame gets the picture of the
    decoded flow beside each offset group's alignment offsets, as wide as the five panels."""
    from conftest import make_weights
    from PIL import Image
    weights = make_weights(tmp_path / "p2f.safetensors", motion="pixel_to_feature")
    clip = make_y4m(tmp_path / "c.y4m", W, H, 3)
    fcb = tmp_path / "c.fcb"
    rc, _, err = cli("encode", clip, "-o", fcb, "--motion", "pixel_to_feature", "--weights", weights,
                     "--intra", "learned", "--quality", "4",
                     "--no-adaptive-intra", "--threads", "1", "--quiet", timeout=SLOW_S)
    assert rc == 0, err
    rc, _, err = cli("analyze", fcb, "--out", tmp_path / "a", "--weights", weights, "--threads", "1",
                     timeout=SLOW_S)
    assert rc == 0, err
    page = (tmp_path / "a" / "index.html").read_text()
    for i in (1, 2):
        picture = tmp_path / "a" / f"offsets_{i:04d}.png"
        assert f'src="{picture.name}"' in page
        width, height = Image.open(picture).size
        assert height == H and width == 5 * W + 4 * 4  # the flow and 4 groups, 4-pixel gaps
    assert "alignment offsets" in page and not (tmp_path / "a" / "scale_0001.png").exists()
