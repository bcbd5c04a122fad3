"""``flowcodec compare``: every motion module through one protocol, with the property clips it renders.

The run here is tiny (a 64×48 clip of 3 frames, the pyramid and the set of all seven, the shipped weights) and calls the command
line in this process instead of in new ones (``eval.run._cli``), which only saves start-up time; every
point is still a real file, decoded to the encoder's reconstruction.
"""
import json
import os
import time

import pytest

from conftest import cli_inproc as cli, make_y4m
from flowcodec.errors import FlowcodecError
from flowcodec.eval import compare, run


def _in_process(*args):
    start = time.perf_counter()
    rc, _, err = cli(*args, "-q", timeout=300)
    if rc:
        raise FlowcodecError(f"{args[0]} failed: {err.strip()}")
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    clip = make_y4m(root / "tiny.y4m", 64, 48, 3, seed=2)
    patch = pytest.MonkeyPatch()
    patch.setattr(run, "_cli", _in_process)
    try:
        rc, stdout, err = cli("compare", clip, "--motion", "pyramid", "auto", "--property-frames", "3",
                              "--out", root / "out", timeout=900)
    finally:
        patch.undo()
    assert rc == 0, err
    return root / "out", stdout


def test_every_column_is_filled_from_real_files(compared):
    out, stdout = compared
    result = json.load(open(out / "compare.json"))
    assert set(result["modules"]) == {"pyramid", "auto"}
    for m, module in result["modules"].items():
        assert module["parameters"] > 10**6 and module["macs_per_pixel"] > 1000, module
    rows = result["clips"]["tiny"]
    for m, row in rows.items():
        assert all(v is not None for v in row.values()), (m, row)
        assert 0 < row["motion_share"] < 1 and row["decode_fps"] > 0 and 10 < row["compensation_psnr"] < 60
    assert rows["pyramid"]["bd_vs_pyramid"] == 0.0
    for m, row in rows.items():  # one clip: its means are its rows
        assert result["summary"][m] == pytest.approx(row, abs=1e-3)
    for m in rows:
        assert set(result["properties"][m]) == set(compare.PROPERTIES)
        assert all(isinstance(v, float) for v in result["properties"][m].values()), result["properties"][m]
        assert set(result["boundary"][m]) == set(compare.PANS)
    points = json.load(open(out / "clips" / "results.json"))["clips"]["tiny"]["points"]
    for p in points:
        if p["kind"] == "flowcodec":
            assert os.path.getsize(out / "clips" / p["bitstream"]) == p["bytes"]
    assert {p["codec"] for p in points} == {"pyramid", "auto", "x265-medium"}
    auto = result["auto"]["tiny"]  # against the one single module measured; P-frames of all qualities
    assert auto["best"] == "pyramid" and auto["bd_vs_best"] == rows["auto"]["bd_vs_pyramid"] != 0
    assert sum(auto["shares"].values()) == pytest.approx(1, abs=0.01)
    assert "| tiny | pyramid | " in (out / "compare.md").read_text()
    for name in ("compare.md", "rd.png", "properties.png"):
        assert (out / name).stat().st_size > 0
    assert "| tiny | auto |" in stdout and "| auto |" in (out / "compare.md").read_text()


def test_noise_costs_rate(compared):
    """A real property, not only a filled cell: Gaussian noise of σ 10 costs every module bits over the
    clean clip, and more than σ 2 does."""
    result = json.load(open(compared[0] / "compare.json"))
    for m, props in result["properties"].items():
        assert props["noise10"] > max(props["noise2"], 0), (m, props)


@pytest.mark.parametrize("args,words", [
    ([], "no clips given"),
    (["CLIP", "--motion", "nosuch"], "nosuch"),
    (["SHORT"], "at least 3 frames"),
    (["CLIP", "--qualities", "1", "2", "3"], "at least 4 qualities")])
def test_bad_input_is_one_line(tmp_path, args, words):
    clip = make_y4m(tmp_path / "c.y4m", 64, 48, 3)
    short = make_y4m(tmp_path / "s.y4m", 64, 48, 2)
    args = [clip if a == "CLIP" else short if a == "SHORT" else a for a in args]
    rc, _, err = cli("compare", *args, "--out", tmp_path / "out")
    assert rc == 1 and err.count("\n") == 1 and err.startswith("flowcodec: error:") and words in err, err
