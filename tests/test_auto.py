"""``--motion auto``: the set of every registered approach (``codec.model.MotionSet``), each P-frame
coded by the member of least R + λ·D and named in its payload, all members sharing one decoder state.
The shipped weights; clips of 64×48 so that trying seven P-frame codecs per frame stays quick."""
import io

import pytest

from conftest import cli_inproc, clip_frames, make_y4m, run_cli
from flowcodec.api import load_model
from flowcodec.codec.bitstream import FrameType, Reader, Writer, payload_member
from flowcodec.codec.encoder import SequenceEncoder, rd_cost
from flowcodec.codec.model import MotionSet
from flowcodec.motion import available

W, H = 64, 48


@pytest.fixture(scope="module")
def models():
    return {m: load_model(m)[0] for m in available()}


def test_auto_codes_each_p_frame_as_its_cheapest_member(models):
    """Every member tried: the P-frame is, byte for byte apart from the member it names, the coding of
    the member whose own encoder reaches the least R + λ·D from the same intra frame."""
    frames = clip_frames(W, H, 2, seed=5)
    auto = SequenceEncoder(MotionSet(models), W, H, 3, adaptive_intra=False)
    auto.trials = (1, 0)
    singles = {m: SequenceEncoder(model, W, H, 3, adaptive_intra=False) for m, model in models.items()}
    coded = [auto.encode(f) for f in frames]
    costs = {}
    for m, enc in singles.items():
        enc.encode(frames[0])
        ftype, payload, recon = enc.encode(frames[1])
        costs[m] = (rd_cost(frames[1], recon, len(payload), enc.lam), payload)
    ftype, payload, recon = coded[1]
    best = min(costs, key=lambda m: costs[m][0])
    assert ftype == FrameType.INTER and auto.model.names[payload_member(payload)] == best
    assert payload[1:] == costs[best][1][1:] and payload_member(costs[best][1]) == 0
    assert rd_cost(frames[1], recon, len(payload), auto.lam) == min(c for c, _ in costs.values())
    assert len({c for c, _ in costs.values()}) > 1  # the members do code differently


def test_pruned_frames_try_the_best_members_of_the_last_full_trial(models, monkeypatch):
    tried = []
    real = SequenceEncoder._coding
    monkeypatch.setattr(SequenceEncoder, "_coding", lambda self, x, inter, m: tried.append(m) or real(self, x, inter, m))
    auto = SequenceEncoder(MotionSet(models), W, H, 3, adaptive_intra=False)
    auto.trials = (3, 2)
    chosen = []
    for i, f in enumerate(clip_frames(W, H, 5, seed=6)):
        tried.clear()
        auto.encode(f)
        chosen.append(list(tried))
        if i == 1:
            ranking = auto.ranking
    assert chosen[0] == [] and chosen[1] == chosen[4] == list(range(len(models)))  # P-frames 1 and 4: all
    assert chosen[2] == chosen[3] == ranking[:2]
    assert auto.chosen[1] in ranking[:2]


@pytest.fixture(scope="module")
def auto_stream(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    clip = make_y4m(root / "clip.y4m", W, H, 4, seed=7)
    fcb, recon = root / "a.fcb", root / "a.y4m"
    rc, _, err = cli_inproc("encode", clip, "-o", fcb, "--recon", recon, "--motion", "auto", "--quality", "4.5",
                            "--threads", "1", timeout=300)
    assert rc == 0, err
    assert "P-frames per approach:" in err
    return root, fcb, recon


def test_auto_stream_decodes_in_another_process_to_the_recon(auto_stream):
    root, fcb, recon = auto_stream
    proc = run_cli("decode", fcb, "-o", root / "d.y4m", "--threads", "2", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (root / "d.y4m").read_bytes() == recon.read_bytes()
    rc, out, _ = cli_inproc("info", fcb, "--frames")
    assert rc == 0 and "model auto-v" in out
    names = [line.rsplit("(", 1)[1].rstrip(")") for line in out.splitlines() if " INTER " in line]
    assert len(names) == 3 and set(names) <= set(available())


def _with_member(fcb, member, frame=1):
    """The stream of ``fcb`` with P-frame ``frame`` naming another member (its CRC made valid)."""
    with open(fcb, "rb") as f:
        reader = Reader(f)
        records = list(reader)
    buf = io.BytesIO()
    writer = Writer(buf, reader.header)
    for i, (ftype, payload, quality) in enumerate(records):
        if i == frame:
            payload = bytes([payload[0] & 0x0F | member << 4]) + payload[1:]
        writer.write_frame(ftype, payload, quality)
    writer.close()
    return buf.getvalue()


@pytest.mark.parametrize("member", [7, 15])
def test_a_member_the_set_lacks_is_one_error_line(auto_stream, member):
    root, fcb, _ = auto_stream
    bad = root / f"member{member}.fcb"
    bad.write_bytes(_with_member(fcb, member))
    proc = run_cli("decode", bad, "-o", root / "bad.y4m", timeout=120)
    err = proc.stderr.decode().strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"member {member}" in err and "frame 1" in err
    assert not (root / "bad.y4m").exists()


def test_a_single_model_stream_naming_a_member_is_refused(tmp_path):
    clip = make_y4m(tmp_path / "clip.y4m", W, H, 2, seed=8)
    fcb = tmp_path / "p.fcb"
    rc, _, err = cli_inproc("encode", clip, "-o", fcb, "--quality", "3", "-q")
    assert rc == 0, err
    (tmp_path / "bad.fcb").write_bytes(_with_member(fcb, 1))
    rc, _, err = cli_inproc("decode", tmp_path / "bad.fcb", "-o", tmp_path / "d.y4m")
    assert rc == 1 and "member 1" in err and len(err.strip().splitlines()) == 1


def test_auto_weights_must_be_a_folder(tmp_path, weights):
    clip = make_y4m(tmp_path / "clip.y4m", W, H, 2)
    rc, _, err = cli_inproc("encode", clip, "-o", tmp_path / "a.fcb", "--motion", "auto", "--weights", weights)
    assert rc == 1 and "folder of <motion>.safetensors" in err and not (tmp_path / "a.fcb").exists()
