"""Training on a tiny synthetic data root: the staged loop runs, a run interrupted after a checkpoint
and resumed ends with exactly the weights of an uninterrupted run, and torchrun with two processes
(gloo) completes. Runs are 2-4 steps of batch 2 on 64x64 crops."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import clip_frames, cli_inproc, make_y4m
from flowcodec.motion import available
from flowcodec.train import data as train_data

STEPS = 4
STAGES = "flow:2,joint:2"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """What ``ClipSampler`` reads: meta.json, one video .npy (T, H*W*3/2) and photos.npz (3,H,W)."""
    root = tmp_path_factory.mktemp("data")
    w, h, t = 96, 80, 8
    video = np.stack([np.concatenate([p.reshape(-1) for p in f]) for f in clip_frames(w, h, t, seed=21)])
    assert video.shape == (t, w * h * 3 // 2) and video.dtype == np.uint8
    np.save(root / "video_x0.npy", video)
    rng = np.random.default_rng(22)
    photos = {}
    for k, (ph, pw) in enumerate([(208, 224), (200, 240)]):
        ys, xs = np.mgrid[0:ph, 0:pw]
        planes = [128 + 60 * np.sin(xs / rng.uniform(3, 9) + rng.uniform(0, 6))
                  * np.cos(ys / rng.uniform(3, 9)) + rng.normal(0, 4, (ph, pw)) for _ in range(3)]
        photos[f"p{k}.jpg"] = np.clip(np.stack(planes), 0, 255).astype(np.uint8)
    np.savez(root / "photos.npz", **photos)
    (root / "meta.json").write_text(json.dumps(
        {"video_x0.npy": {"width": w, "height": h, "frames": t}, "photos": len(photos)}))
    return str(root)


def _train_args(data_root, out, export, stages=STAGES, seed=0, ckpt_minutes=0):
    return ["train", "--data", data_root, "--out", out, "--export", export, "--batch", "2",
            "--size", "64", "--frames", "3", "--stages", stages, "--threads", "1", "--seed", str(seed),
            "--ckpt-minutes", str(ckpt_minutes), "--log-every", "1"]


def _train(args):
    rc, out, err = cli_inproc(*args, timeout=300)
    assert rc == 0, err
    return out


def _log(run):
    with open(os.path.join(run, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def _assert_same_weights(a, b):
    ta, tb = load_file(a), load_file(b)
    assert ta.keys() == tb.keys()
    differing = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differing, differing


class Interrupted(Exception):
    pass


def test_sampler_batches(data_root):
    s = train_data.ClipSampler(data_root, size=64, frames=3)
    frames, flows, has_flow = s.batch(4, seed=0, step=0)
    assert frames.shape == (4, 3, 6, 32, 32) and flows.shape == (4, 2, 2, 64, 64)
    assert has_flow.dtype == torch.bool and frames.min() >= 0 and frames.max() <= 1
    again = s.batch(4, seed=0, step=0)
    assert torch.equal(frames, again[0]) and torch.equal(flows, again[1])  # (seed, step) decide
    assert not torch.equal(frames, s.batch(4, seed=0, step=1)[0])


@pytest.fixture(scope="module")
def uninterrupted(data_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("run_a")
    run, export = str(d / "run"), str(d / "a.safetensors")
    torch.manual_seed(1234)  # model init draws from the global RNG (see test_seed_decides_init)
    _train(_train_args(data_root, run, export))
    return run, export


def test_train_runs_all_stages(uninterrupted, weights):
    run, export = uninterrupted
    log = _log(run)
    assert [r["step"] for r in log] == list(range(1, STEPS + 1))
    assert [r["stage"] for r in log] == ["flow", "flow", "joint", "joint"]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert {"epe", "warp_mse"} <= log[0].keys() and {"bpp", "psnr", "mv_bpp"} <= log[-1].keys()
    ckpt = torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)
    assert ckpt["step"] == STEPS
    # training changed the weights, and the export is the checkpoint's model
    exported = load_file(export)
    assert all(torch.equal(exported[k], v.to(exported[k].dtype)) for k, v in ckpt["model"].items())
    assert {v.dtype for k, v in exported.items() if ".prior." not in k} == {torch.float16}
    torch.manual_seed(1234)
    from flowcodec.codec.model import VideoModel
    init = VideoModel("pyramid").state_dict()
    assert any(not torch.equal(init[k].to(exported[k].dtype), exported[k]) for k in init)  # not float16 rounding


def test_exported_weights_code_video(uninterrupted, tmp_path):
    _, export = uninterrupted
    src = make_y4m(tmp_path / "c.y4m", 32, 32, 2, seed=23)
    fcb, rec, dec = (str(tmp_path / f) for f in ("c.fcb", "r.y4m", "d.y4m"))
    rc, _, err = cli_inproc("encode", src, "-o", fcb, "--recon", rec, "--weights", export,
                            "--threads", "1", "-q")
    assert rc == 0, err
    rc, _, err = cli_inproc("decode", fcb, "-o", dec, "--weights", export, "--threads", "1", "-q")
    assert rc == 0, err
    assert open(rec, "rb").read() == open(dec, "rb").read()


def test_resume_is_exact(data_root, uninterrupted, tmp_path, monkeypatch):
    """Crash at the start of step 3 (after the step-2 checkpoint), run again: same final weights."""
    run_a, export_a = uninterrupted
    run, export = str(tmp_path / "run"), str(tmp_path / "b.safetensors")
    real_batch = train_data.ClipSampler.batch

    def batch(self, n, seed, step):
        if step == 2:
            raise Interrupted
        return real_batch(self, n, seed, step)

    monkeypatch.setattr(train_data.ClipSampler, "batch", batch)
    torch.manual_seed(1234)
    with pytest.raises(Interrupted):
        cli_inproc(*_train_args(data_root, run, export), timeout=300)
    monkeypatch.undo()
    assert torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)["step"] == 2
    assert not os.path.exists(export)

    torch.manual_seed(999)  # whatever the global RNG holds, the checkpoint decides the state
    _train(_train_args(data_root, run, export))
    _assert_same_weights(export, export_a)
    strip = lambda log: [{k: v for k, v in r.items() if k != "sec"} for r in log]
    assert strip(_log(run)) == strip(_log(run_a))

    # a finished run started again does nothing more and exports the same weights
    again = str(tmp_path / "c.safetensors")
    _train(_train_args(data_root, run, again))
    _assert_same_weights(again, export_a)
    assert len(_log(run)) == STEPS


def test_stop_after_then_resume_is_exact(data_root, uninterrupted, tmp_path):
    """--stop-after 2 checkpoints at step 2 even when no timed checkpoint is due; a rerun without it
    finishes the schedule with the uninterrupted run's weights."""
    run_a, export_a = uninterrupted
    run, export = str(tmp_path / "run"), str(tmp_path / "b.safetensors")
    torch.manual_seed(1234)
    _train(_train_args(data_root, run, export, ckpt_minutes=60) + ["--stop-after", "2"])
    assert torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)["step"] == 2
    assert [r["step"] for r in _log(run)] == [1, 2]
    _train(_train_args(data_root, run, export, ckpt_minutes=60))
    _assert_same_weights(export, export_a)
    assert [r["step"] for r in _log(run)] == list(range(1, STEPS + 1))


def test_seed_decides_init(data_root, tmp_path):
    """--seed alone decides the initial weights: the global RNG's state does not, another seed does."""
    exports = []
    for k, (rng_state, seed) in enumerate(((1, 0), (2, 0), (1, 1))):
        torch.manual_seed(rng_state)
        export = str(tmp_path / f"{k}.safetensors")
        _train(_train_args(data_root, str(tmp_path / f"run{k}"), export, stages="flow:0", seed=seed))
        exports.append(export)
    _assert_same_weights(exports[0], exports[1])
    a, b = load_file(exports[0]), load_file(exports[2])
    assert any(not torch.equal(a[k], b[k]) for k in a)


def _torchrun():
    exe = os.path.join(os.path.dirname(sys.executable), "torchrun")
    return exe if os.path.exists(exe) else shutil.which("torchrun")


@pytest.mark.skipif(_torchrun() is None, reason="torchrun not installed")
def test_torchrun_two_processes(data_root, tmp_path):
    run, export = str(tmp_path / "run"), str(tmp_path / "ddp.safetensors")
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [_torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "flowcodec.cli",
           *_train_args(data_root, run, export, stages="flow:1,joint:1")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    assert os.path.exists(export)
    from flowcodec.codec.model import load
    model, digest = load(export)
    assert model.model_id == "pyramid-v6" and len(digest) == 8
    log = _log(run)  # rank 0 alone writes the log
    assert [r["step"] for r in log] == [1, 2] and [r["stage"] for r in log] == ["flow", "joint"]
    from safetensors import safe_open
    with safe_open(export, "pt") as f:
        assert json.loads(f.metadata()["info"])["batch"] == 4  # 2 per process x 2 processes


def test_intra_and_prior_stages(data_root, tmp_path):
    """The intra stage trains the intra codec alone; the prior stage changes nothing but the factorized
    priors of the hyper-latents."""
    run, export = str(tmp_path / "run"), str(tmp_path / "x.safetensors")
    args = _train_args(data_root, run, export, stages="intra:2,prior:2")
    _train(args + ["--stop-after", "2"])
    after_intra = torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)["model"]
    _train(args)
    log = _log(run)
    assert [r["stage"] for r in log] == ["intra", "intra", "prior", "prior"]
    assert all(np.isfinite(r["loss"]) for r in log)
    assert {"intra_bpp", "motion_bpp", "residual_bpp"} <= log[-1].keys()
    final = load_file(export)
    changed = {k for k in final if not torch.equal(final[k], after_intra[k].to(final[k].dtype))}
    assert changed and all(".prior." in k for k in changed), sorted(changed)[:5]
    assert any(k.startswith("intra.") for k in changed) and any(k.startswith("inter.") for k in changed)


def test_images_batch(data_root):
    s = train_data.ClipSampler(data_root, size=64, frames=3)
    x = s.images(5, seed=0, step=3)
    assert x.shape == (5, 6, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, s.images(5, seed=0, step=3)) and not torch.equal(x, s.images(5, seed=0, step=4))


def test_workers_draw_the_same_batches(data_root):
    """Two data-loader processes give the training process exactly the inputs it would draw itself,
    in step order, across a stage boundary (intra frames, then clips)."""
    from types import SimpleNamespace
    from flowcodec.train.loop import batches, schedule
    stages = schedule("intra:3,joint:4")
    args = lambda workers: SimpleNamespace(data=data_root, size=64, frames=3, batch=2, workers=workers)
    here = list(batches(args(0), stages, seed=5, start=1, end=7))
    there = list(batches(args(2), stages, seed=5, start=1, end=7))
    assert [s for s, _ in here] == [s for s, _ in there] == list(range(1, 7))
    for (_, a), (_, b) in zip(here, there):
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    assert [len(x) for _, x in here] == [1, 1, 3, 3, 3, 3]  # intra: frames; joint: (frames, flows, has_flow)
    assert not torch.equal(here[2][1][0], here[3][1][0])


def test_workers_train_and_resume_exactly(data_root, uninterrupted, tmp_path):
    """A run with --workers 2, stopped after step 2 and resumed (workers again), ends with the weights
    and log of the uninterrupted single-process run."""
    run_a, export_a = uninterrupted
    run, export = str(tmp_path / "run"), str(tmp_path / "w.safetensors")
    torch.manual_seed(1234)
    args = _train_args(data_root, run, export, ckpt_minutes=60) + ["--workers", "2"]
    _train(args + ["--stop-after", "2"])
    _train(args)
    _assert_same_weights(export, export_a)
    strip = lambda log: [{k: v for k, v in r.items() if k != "sec"} for r in log]
    assert strip(_log(run)) == strip(_log(run_a))


@pytest.mark.parametrize("motion", available())
def test_training_step_creates_no_tensor_on_a_fixed_device(motion):
    """Every stage's loss and gradient with the model and batch on one device while the default device
    is another (meta): a tensor made without ``device=`` lands on meta and mixing it with the model's
    fails, as a CPU tensor would beside a CUDA model. CI has no GPU; this is what makes --device cuda
    safe to ship."""
    from flowcodec.codec.model import VideoModel
    from flowcodec.train.loop import LOSSES
    torch.manual_seed(0)
    model = VideoModel(motion)
    frames, flows = torch.rand(2, 3, 6, 32, 32), torch.randn(2, 2, 2, 64, 64)
    has_flow, q = torch.tensor([True, False]), torch.tensor([0, 5])
    for name, loss_fn in LOSSES.items():
        inputs = (frames[:, 0],) if name == "intra" else (frames, flows, has_flow)
        model.zero_grad()
        with torch.device("meta"):
            per_sample, stats = loss_fn(model, inputs, q, 0.0)
            assert per_sample.shape == (2,), name  # one loss per sample, for the level balance
            loss = per_sample.mean()
            loss.backward()
        assert loss.device.type == "cpu" and np.isfinite(loss.item()), name
        assert all(np.isfinite(v) or k == "epe" for k, v in stats.items()), name
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()), name


def test_entropy_models_stay_float32_under_autocast():
    """--amp: the rates come from float32 likelihoods even inside bfloat16 autocast (bf16 would keep
    ~3 significant digits of a probability)."""
    from flowcodec.entropy.models import FactorizedPrior, GaussianConditional
    torch.manual_seed(0)
    prior, cond = FactorizedPrior(4), GaussianConditional()
    z = torch.randn(2, 4, 3, 3) * 3
    y, mu, sigma = torch.randn(2, 4, 3, 3) * 5, torch.randn(2, 4, 3, 3), torch.rand(2, 4, 3, 3) * 4
    want = prior.likelihood(z), cond.likelihood(y, mu, sigma)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = prior.likelihood(z), cond.likelihood(y.bfloat16(), mu.bfloat16(), sigma.bfloat16())
    assert got[0].dtype == got[1].dtype == torch.float32
    assert torch.equal(got[0], want[0])  # the same float32 computation
    bf = (y.bfloat16().float(), mu.bfloat16().float(), sigma.bfloat16().float())
    assert torch.equal(got[1], cond.likelihood(*bf))  # inputs rounded by autocast, the rest float32


def test_amp_training_runs(data_root, tmp_path):
    run, export = str(tmp_path / "run"), str(tmp_path / "amp.safetensors")
    _train(_train_args(data_root, run, export, stages="joint:1") + ["--amp", "--device", "cpu"])
    rec = _log(run)[0]
    assert rec["stage"] == "joint" and np.isfinite(rec["loss"]) and rec["bpp"] > 0
    from safetensors import safe_open
    with safe_open(export, "pt") as f:
        info = json.loads(f.metadata()["info"])
    assert info["amp"] is True and info["device"] == "cpu"


@pytest.mark.parametrize("stages", ["flow:2,jiont:2", "joint", "joint:x", "joint:-1"])
def test_bad_stages_are_one_line_errors(data_root, tmp_path, stages):
    rc, _, err = cli_inproc(*_train_args(data_root, str(tmp_path / "r"), str(tmp_path / "x.st"), stages=stages))
    assert rc == 1 and err.count("\n") == 1 and "--stages" in err


def test_zero_steps_grafts_weights(data_root, tmp_path, weights, other_weights):
    """``--stages prior:0`` (how the shipped files got their intra codec) trains nothing: the export holds
    the P-frame codec of --init and the intra codec of --init-intra."""
    export = str(tmp_path / "g.safetensors")
    _train(_train_args(data_root, str(tmp_path / "r"), export, stages="prior:0")
           + ["--init", weights, "--init-intra", other_weights])
    got, inter_from, intra_from = load_file(export), load_file(weights), load_file(other_weights)
    assert got.keys() == inter_from.keys()
    assert all(torch.equal(got[k], (intra_from if k.startswith("intra.") else inter_from)[k]) for k in got)
    assert any(not torch.equal(inter_from[k], intra_from[k]) for k in got if k.startswith("intra."))


def test_cuda_unavailable_is_an_error(data_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, _, err = cli_inproc(*_train_args(data_root, str(tmp_path / "r"), str(tmp_path / "x.st")),
                            "--device", "cuda")
    assert rc == 1 and "no CUDA GPU" in err


def test_minutes_budget_stops_and_exports(data_root, tmp_path):
    """--minutes 0 spends the wall-clock budget at once: the run stops after its first step with a
    checkpoint and still exports, recording the steps it made."""
    run, export = str(tmp_path / "run"), str(tmp_path / "m.safetensors")
    _train(_train_args(data_root, run, export, ckpt_minutes=60) + ["--minutes", "0"])
    assert torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)["step"] == 1
    from safetensors import safe_open
    with safe_open(export, "pt") as f:
        assert json.loads(f.metadata()["info"])["steps"] == 1


def test_a_feature_space_model_starts_from_the_pyramids_shared_parts(weights):
    """--init of pyramid weights into pixel_to_feature: the estimator and motion coder are copied, the
    refinement (which it lacks) is left out, and the residual coder's first and last layers fill the
    pixel channels: on features whose learned channels are zero it codes exactly what the pyramid's
    residual coder codes, and nothing in the learned channels. Without ``matching`` a shape mismatch is
    an error."""
    from flowcodec.codec.model import VideoModel, load, load_part
    from flowcodec.entropy.coder import Train
    from flowcodec.errors import FlowcodecError
    pyramid, _ = load(weights)
    torch.manual_seed(5)
    model = VideoModel("pixel_to_feature")
    left, widened = load_part(model, weights, matching=True)
    assert left and all(k.startswith("inter.refine.") for k in left)
    assert sorted(widened) == ["inter.res.g_a.0.weight", "inter.res.g_s.4.bias", "inter.res.g_s.4.weight"]
    own, theirs = model.state_dict(), pyramid.state_dict()
    assert torch.equal(own["inter.motion.levels.0.net.0.weight"], theirs["inter.motion.levels.0.net.0.weight"])
    x = torch.rand(1, 6, 32, 32, generator=torch.Generator().manual_seed(0))
    features = torch.cat((x, torch.zeros(1, 26, 32, 32)), 1)
    with torch.no_grad():
        want = pyramid.inter.res(x, 3, Train(noise=False), "residual", (32, 32))
        got = model.inter.res(features, 3, Train(noise=False), "residual", (32, 32))
    torch.testing.assert_close(got[:, :6], want, atol=1e-6, rtol=0)
    assert torch.equal(got[:, 6:], torch.zeros_like(got[:, 6:]))
    with pytest.raises(FlowcodecError, match="shaped"):
        load_part(VideoModel("pixel_to_feature"), weights, "inter.res.")


@pytest.fixture(scope="module")
def long_root(data_root, tmp_path_factory):
    """A data root whose one video is long enough to hold out validation frames: 64 frames of a moving
    texture whose U plane is 40 + 2·t everywhere, so a crop tells which frame it came from."""
    root = tmp_path_factory.mktemp("long")
    w, h, t = 96, 80, 64
    frames = clip_frames(w, h, t, seed=31)
    video = np.stack([np.concatenate([y.reshape(-1), np.full(u.size, 40 + 2 * k, np.uint8), v.reshape(-1)])
                      for k, (y, u, v) in enumerate(frames)])
    np.save(root / "video_x0.npy", video)
    shutil.copy(os.path.join(data_root, "photos.npz"), root / "photos.npz")
    (root / "meta.json").write_text(json.dumps(
        {"video_x0.npy": {"width": w, "height": h, "frames": t}, "photos": 2}))
    return str(root)


def test_training_never_draws_the_validation_frames(long_root):
    """Real clips come from the first 64 - HELD_OUT_FRAMES frames only; validation codes the others."""
    assert train_data.trainable(64) == 64 - train_data.HELD_OUT_FRAMES and train_data.trainable(8) == 8
    s = train_data.ClipSampler(long_root, size=64, frames=3)
    drawn = set()
    for step in range(40):
        frames, _, has_flow = s.batch(4, seed=0, step=step)
        u = torch.round(frames[~has_flow][:, :, 4] * 255)  # (clips, T, h, w): 40 + 2·t everywhere
        drawn |= {(int(v) - 40) // 2 for v in u.unique()}
    assert drawn and max(drawn) < 64 - train_data.HELD_OUT_FRAMES and max(drawn) > 40
    from flowcodec.train import validate
    clips = validate.clips(s)
    assert list(clips) == ["x0"] and len(clips["x0"]) == validate.FRAMES
    assert [(int(f[1][0, 0]) - 40) // 2 for f in clips["x0"]] == list(range(48, 48 + validate.FRAMES))


def test_validation_logs_curves_and_a_run_that_never_beats_its_start_says_so(long_root, weights, tmp_path):
    """With --lr 0 the weights never move: every validation codes exactly the start's bytes (exact
    arithmetic), so no checkpoint beats the start, the log says so, and --export writes the start."""
    run, export = str(tmp_path / "run"), str(tmp_path / "v.safetensors")
    _train(["train", "--data", long_root, "--out", run, "--export", export, "--batch", "2", "--size", "64",
            "--frames", "3", "--stages", "joint:2", "--threads", "1", "--init", weights, "--lr", "0",
            "--val-every", "1", "--log-every", "1"])
    log = _log(run)
    val = [r for r in log if "validation" in r]
    assert [r["step"] for r in val] == [0, 1, 2]
    from flowcodec.train import validate
    for r in val:
        assert len(r["validation"]["x0"]) == len(validate.LEVELS)
        assert all(b > 0 and p > 10 for b, p in r["validation"]["x0"])
        assert r["validation"] == val[0]["validation"] and r["score"] == 0.0 and r["best_step"] == 0
    assert any("never beat its start" in r.get("event", "") for r in log)
    assert os.path.exists(os.path.join(run, "validation.png"))
    _assert_same_weights(export, weights)
    from safetensors import safe_open
    with safe_open(export, "pt") as f:
        info = json.loads(f.metadata()["info"])
    assert info["exported_step"] == 0 and info["validation_bd_rate"] == 0.0 and info["steps"] == 2


def test_level_balance_evens_the_levels():
    """Level 8's loss is 50x level 0's: with 'running' both contribute alike to the batch loss, with
    'none' every sample weighs 1. Their running means follow later batches."""
    from flowcodec.train.loop import LevelBalance
    q = torch.tensor([0, 0, 8, 8])
    loss = torch.tensor([0.1, 0.1, 5.0, 5.0])
    w = LevelBalance(9).weights(q, loss)
    contrib = w * loss
    torch.testing.assert_close(contrib[0], contrib[2])
    assert contrib.mean().item() == pytest.approx((0.1 + 5.0) / 2)  # the mean of the level means
    assert torch.equal(LevelBalance(9, on=False).weights(q, loss), torch.ones(4))
    b = LevelBalance(9)
    b.weights(q, loss)
    b.weights(q, 2 * loss)
    assert b.mean[0] == pytest.approx(0.1 * LevelBalance.DECAY + 0.2 * (1 - LevelBalance.DECAY))


def test_learning_rate_warms_up_and_decays():
    from flowcodec.train.loop import lr_factor
    f = [lr_factor(s, 100, 1100, 50, True) for s in range(100, 1100)]
    assert f[0] == pytest.approx(1 / 50) and all(a < b for a, b in zip(f[:49], f[1:50]))
    assert all(a >= b for a, b in zip(f[50:], f[51:])) and f[-1] < 1e-4
    assert lr_factor(500, 100, 1100, 0, False) == 1.0
