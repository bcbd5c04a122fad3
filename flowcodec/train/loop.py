"""Training of the P-frame codec: staged as in DVC (Lu et al., CVPR 2019), resumable, data-parallel.

Stages (``--stages flow:N,joint:M``):
* ``flow`` — only the motion estimator: end-point error against the ground-truth flow of rendered clips
  plus the warping error on real clips.
* ``joint`` — everything with one loss  R_motion + R_residual + λ_q·D  (plus a decaying λ·D term on the
  motion-compensated prediction that helps compensation learn first), over T-frame clips where each
  P-frame references the decoder state left by the previous one (``DecodedPictures``, built by the same
  calls as in the decoder, with 8-bit rounding straight-through), so that error propagation is trained
  too. Every sample draws its own quality level q, so one model learns all rates.
* ``intra`` — the learned intra codec alone, R + λ_q·D on single frames (photographs and video frames).
* ``prior`` — calibration: only the factorized priors of the hyper-latents learn, by the bits of the
  *rounded* hyper-latents of real coding (intra and P-frames). Noise-trained priors stay wider than the
  integer-valued latents they end up coding; this stage fits them to what the range coder sees.

The factorized priors learn ``PRIOR_LR`` times faster than the rest: they are small density models that
must follow the hyper-latents as the transforms change.

Recipe (``LevelBalance``, ``lr_factor``, ``Validation``): each quality level's loss is divided by its
running mean so that no level dominates a batch; the learning rate warms up and decays (cosine) in every
stage; every ``--val-every`` steps the real encoder codes held-out clips and the run keeps the checkpoint
with the best BD-rate against its start, which ``--export`` writes.

Every step's batch is a pure function of (seed, rank, step) and every step seeds its own RNG from them:
a run resumed from a checkpoint takes exactly the steps an uninterrupted run would, and batches drawn
by ``--workers N`` data-loader processes are the ones the training process would have drawn itself.
The model and the batches live on ``--device`` (``auto``: the GPU when there is one); ``--amp`` runs the
transforms in bfloat16 autocast while the entropy models stay float32. With
``torchrun --nproc_per_node K`` each process draws its own batches and gradients are averaged (nccl on
GPUs, one per process; gloo on CPUs).
"""
import json
import math
import re
import os
import sys
import time

import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..frames import unpack, weighted_se
from ..codec.model import VideoModel, load_part, save
from ..codec.options import LAMBDAS
from ..entropy.coder import Train
from ..errors import FlowcodecError
from ..motion import DecodedPictures
from ..motion.warp import warp
from . import validate
from .data import ClipSampler

PRIOR_LR = 10.0


def _lambdas(q: torch.Tensor) -> torch.Tensor:
    """λ of each sample's quality index, on the device of ``q``."""
    return torch.tensor(LAMBDAS, device=q.device)[q]


def distortion(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE weighted like PSNR-YUV: (6·Y + U + V) / 8, on packed frames (in float32, also
    under mixed precision)."""
    return weighted_se(a.float(), b.float()).mean(dim=(1, 2))


def flow_loss(model, frames, flows, has_flow):
    state, cur = DecodedPictures.intra(frames[:, 0]), frames[:, 1]
    est = model.inter.motion.estimate(cur, state)[:, :2]
    epe = torch.linalg.vector_norm(est - flows[:, 0], dim=1).mean(dim=(1, 2))
    warped = warp(unpack(state.ref)[0], est)
    photo = ((warped - unpack(cur)[0]) ** 2).mean(dim=(1, 2, 3))
    loss = torch.where(has_flow, epe, 100.0 * photo)
    return loss, {"epe": (epe[has_flow].mean().item() if has_flow.any() else float("nan")),
                  "warp_mse": photo.mean().item()}


def _pick_predictor(usable: int) -> int:
    """The motion predictor a training P-frame uses: the most informative usable one half of the time,
    any usable one otherwise, so that every predictor the encoder may choose is trained."""
    if usable == 1 or torch.rand((), device="cpu") < 0.5:
        return usable - 1
    return int(torch.randint(usable, (), device="cpu"))


def joint_loss(model, frames, q, aux):
    lam = _lambdas(q)
    state = DecodedPictures.intra(frames[:, 0])  # an intra frame decodes close to its source
    pixels = frames.shape[-1] * frames.shape[-2] * 4
    total, stats = 0.0, {"bpp": 0.0, "psnr": 0.0, "mv_bpp": 0.0}
    steps = frames.shape[1] - 1
    motion = model.inter.motion
    for t in range(1, frames.shape[1]):
        coder = Train()
        x_hat, pred, field, after = model.inter(frames[:, t], state, q, coder,
                                                predictor=_pick_predictor(motion.usable(state)))
        bpp = coder.total() / pixels
        d = distortion(x_hat, frames[:, t])
        extra = aux * lam * distortion(pred, frames[:, t]) + motion.penalty(frames[:, t], state, field)
        total = total + bpp + lam * d + extra
        state = after
        stats["bpp"] += bpp.mean().item() / steps
        stats["mv_bpp"] += (coder.bits["motion"] / pixels).mean().item() / steps
        stats["psnr"] += (-10 * torch.log10(d.detach())).mean().item() / steps
    return total / steps, stats


def intra_loss(model, images, q):
    coder = Train()
    x_hat = model.intra(images, q, coder)
    bpp = coder.total() / (images.shape[-1] * images.shape[-2] * 4)
    d = distortion(x_hat, images)
    return bpp + _lambdas(q) * d, {"bpp": bpp.mean().item(),
                                                         "psnr": (-10 * torch.log10(d.detach())).mean().item()}


def prior_loss(model, frames, q):
    """Bits per pixel of real (rounded) coding: the first frame as an intra frame, the others as P-frames
    referencing the decoder state (the first reference is the source frame rounded to 8 bits, close to
    what the default HEVC intra gives). Only the factorized priors are trainable in this stage, so only the
    hyper-latent bits give gradients."""
    coder = Train(noise=False)
    model.intra(frames[:, 0], q, coder)
    state = DecodedPictures.intra(frames[:, 0])
    for t in range(1, frames.shape[1]):
        state = model.inter(frames[:, t], state, q, coder)[3]
    pixels = frames.shape[-1] * frames.shape[-2] * 4 * frames.shape[1]
    bpp = coder.total() / pixels
    return bpp, {f"{k}_bpp": (v / pixels).mean().item() for k, v in coder.bits.items()}


AUX_FLOOR = 0.05  # weight of the prediction term in the joint loss once its warm-up has decayed


def aux_weight(start: float, progress: float) -> float:
    """Weight of the joint loss's prediction term: ``start`` decaying linearly to 0 over the first 30%
    of the joint stage (``progress`` in [0, 1)), plus ``AUX_FLOOR``. It helps compensation learn first
    when training from scratch; fine-tuning trained weights starts at 0 (``--aux 0``)."""
    return start * max(0.0, 1.0 - progress / 0.3) + AUX_FLOOR


class LevelBalance:
    """Per-level weights of the samples' losses, so that no quality level dominates a batch that mixes
    them: each level's loss is divided by its running mean (an exponential moving average, ``DECAY``
    per step it appears in), times the mean of those running means, which keeps the loss's overall scale.

    Why: R + λ·D grows with λ, which doubles per level, so with uniform weights the top levels' samples
    carry most of the gradient of shared parameters (at the start of the 9-level ladder, the loss of
    level 9 is ~10× that of level 1). Scaling a level's loss by a constant does not move that level's own
    optimum (its rate-distortion trade-off stays λ's); it only evens the levels' say in the parameters they
    share. ``--balance none`` keeps the uniform weights, for comparison."""

    DECAY = 0.98

    def __init__(self, levels: int, on: bool = True):
        self.on = on
        self.mean = torch.zeros(levels, dtype=torch.float64)  # running mean loss per level; 0: not seen

    def weights(self, q: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        """Update the running means with this batch's (per-sample) losses; return each sample's weight."""
        q_cpu, loss_cpu = q.cpu(), loss.detach().double().cpu()
        for level in q_cpu.unique().tolist():
            value = loss_cpu[q_cpu == level].mean()
            seen = self.mean[level] > 0
            self.mean[level] = self.DECAY * self.mean[level] + (1 - self.DECAY) * value if seen else value
        if not self.on:
            return torch.ones_like(loss)
        seen = self.mean[self.mean > 0]
        return (seen.mean() / self.mean[q_cpu]).to(loss.dtype).to(loss.device)

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone()}

    def load_state_dict(self, state: dict):
        self.mean = state["mean"].clone()


def lr_factor(step: int, first: int, last: int, warmup: int, decay: bool) -> float:
    """Learning-rate multiplier at ``step`` of a stage spanning first … last-1: a linear warm-up over its
    first ``warmup`` steps (Adam's first moments are noise; a fine-tune must not start at full step size),
    then, with ``decay``, a cosine decay to 0 at the stage's end."""
    k = step - first
    up = min(1.0, (k + 1) / warmup) if warmup > 0 else 1.0
    return up * (0.5 * (1 + math.cos(math.pi * k / max(1, last - first))) if decay else 1.0)


# stage name -> per-sample loss(model, inputs, q, aux weight); inputs come from _inputs
LOSSES = {
    "flow": lambda model, inputs, q, aux: flow_loss(model, inputs[0][:, :2], *inputs[1:]),
    "joint": lambda model, inputs, q, aux: joint_loss(model, inputs[0], q, aux),
    "intra": lambda model, inputs, q, aux: intra_loss(model, inputs[0], q),
    "prior": lambda model, inputs, q, aux: prior_loss(model, inputs[0], q),
}


def schedule(spec: str) -> list[tuple[str, int, int]]:
    """``"flow:1500,joint:3500"`` -> [(stage, first step, end step), ...]; a bad spec is an error. A
    0-step schedule (``prior:0``) trains nothing: it only writes --init / --init-intra to --export."""
    out, start = [], 0
    for part in spec.split(","):
        name, _, n = part.partition(":")
        if name not in LOSSES or not n.isdigit():
            raise FlowcodecError(f"--stages: {part!r} is not STAGE:STEPS with STAGE one of "
                                 f"{', '.join(LOSSES)} and STEPS a whole number (0: only --init / export)")
        out.append((name, start, start + int(n)))
        start += int(n)
    return out


def stage_at(stages, step: int):
    """The (stage, first, end) entry of the schedule that step ``step`` belongs to."""
    return next(s for s in stages if s[1] <= step < s[2])


def _inputs(sampler: ClipSampler, stage: str, batch: int, seed: int, step: int) -> tuple:
    """What one step trains on: single frames for the intra stage, (frames, flows, has_flow) clips for
    the others. A pure function of its arguments (see ``ClipSampler``)."""
    if stage == "intra":
        return (sampler.images(batch, seed, step),)
    return sampler.batch(batch, seed, step)


class Batches(torch.utils.data.IterableDataset):
    """The inputs of steps ``start`` … ``end - 1``, in step order, as (step, inputs).

    In a DataLoader with N workers, worker k computes steps start + k, start + k + N, …; the loader
    takes one item from each worker in turn, so the training process receives the steps in order, each
    exactly what it would have computed itself. The sampler is built inside each worker (only paths
    and numbers cross the process boundary)."""

    def __init__(self, data, size, frames, batch, seed, stages, start, end):
        super().__init__()
        self.data, self.size, self.frames, self.batch, self.seed = data, size, frames, batch, seed
        self.stages, self.start, self.end = stages, start, end

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, n = (info.id, info.num_workers) if info else (0, 1)
        if info:
            torch.set_num_threads(1)  # the workers are the parallelism
        sampler = ClipSampler(self.data, size=self.size, frames=self.frames)
        for step in range(self.start + k, self.end, n):
            yield step, _inputs(sampler, stage_at(self.stages, step)[0], self.batch, self.seed, step)


def batches(args, stages, seed: int, start: int, end: int, pin: bool = False):
    """Iterator over (step, inputs) for steps start … end-1, from ``args.workers`` processes (0: here)."""
    data = Batches(args.data, args.size, args.frames, args.batch, seed, stages, start, end)
    return iter(torch.utils.data.DataLoader(data, batch_size=None, num_workers=args.workers, pin_memory=pin,
                                            prefetch_factor=4 if args.workers else None))


def pick_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when a GPU is present); under torchrun, this process's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise FlowcodecError("--device cuda: no CUDA GPU is available to this torch build")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its fastest kernels
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # training only
        return device
    return torch.device(name)


def train(args):
    torch.set_num_threads(args.threads)
    stages = schedule(args.stages)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.pt")
    torch.manual_seed(args.seed)  # the same initial weights on every rank and for every run
    model = VideoModel(args.motion)
    for path, prefix in ((args.init, ""), (args.init_intra, "intra.")):
        if path:
            left, widened = load_part(model, path, prefix, matching=not prefix)
            for names, what in ((left, f"left out (not in a {args.motion} model)"),
                                (widened, "widened into larger tensors, the rest zero")):
                if names and rank == 0:
                    print(f"{path}: {len(names)} tensors {what}: {', '.join(names)}", file=sys.stderr)
    step, state = 0, None
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False, map_location="cpu")
        model.load_state_dict(state["model"])
        step = state["step"]
    end = stages[-1][2] if args.stop_after is None else min(stages[-1][2], args.stop_after)
    seed = args.seed * 1000 + rank
    device = pick_device(args.device)
    # the loader's workers start (fork) here, before the model touches the GPU
    data = batches(args, stages, seed, step, end, pin=device.type == "cuda")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    model.to(device)
    priors = [p for n, p in model.named_parameters() if ".prior." in n]
    others = [p for n, p in model.named_parameters() if ".prior." not in n]
    groups = ((others, 1.0), (priors, PRIOR_LR))
    learning = {id(p) for n, p in model.named_parameters() if re.search(args.params, n)}  # --params
    opt = torch.optim.Adam([{"params": p, "lr": args.lr * k} for p, k in groups], lr=args.lr)
    balance = {name: LevelBalance(len(LAMBDAS), args.balance == "running") for name, _, _ in stages}
    val = Validation(args, model, state) if rank == 0 else None
    if state:
        opt.load_state_dict(state["opt"])
        for name, b in state.get("balance", {}).items():
            balance[name].load_state_dict(b)
    log = open(os.path.join(args.out, "log.jsonl"), "a") if rank == 0 else None
    if val and val.due(step):
        val.run(model, step, log)
    bar = tqdm(total=end, initial=step, unit="step", desc=f"train {args.motion}", file=sys.stderr,
               disable=rank != 0 or None, dynamic_ncols=True)
    last_save, t0 = time.time(), time.time()
    model.train()
    while step < end:
        name, first, last = stage_at(stages, step)
        got, inputs = next(data)
        assert got == step, (got, step)  # the loader's order is the training order
        inputs = [x.to(device, non_blocking=True) for x in inputs]
        torch.manual_seed(hash((args.seed, step, rank)) % (2**31))
        for p in others:
            p.requires_grad_(name != "prior" and id(p) in learning)
        factor = lr_factor(step, first, last, args.warmup, args.decay == "cosine")
        for group, (_, k) in zip(opt.param_groups, groups):
            group["lr"] = args.lr * k * factor
        q = torch.randint(0, len(LAMBDAS), (args.batch,)).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            per_sample, stats = LOSSES[name](model, inputs, q, aux_weight(args.aux, (step - first) / (last - first)))
        loss = (per_sample * balance[name].weights(q, per_sample)).mean()
        opt.zero_grad()
        loss.backward()
        if world > 1:
            for p in model.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= world
        if name != "flow":  # the flow stage needs its full gradient to leave the zero-flow start
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        out_of_time = _out_of_time(args.minutes, t0, world, device)
        if rank == 0:
            rec = {"step": step, "stage": name, "loss": round(loss.item(), 5),
                   **{k: round(v, 5) for k, v in stats.items()}, "lr": float(f"{args.lr * factor:.4g}"),
                   "level_loss": [round(v, 4) for v in balance[name].mean.tolist()],
                   "sec": round(time.time() - t0, 1)}
            bar.update()
            bar.set_postfix(stage=name, loss=f"{rec['loss']:.4g}", refresh=False)
            if step % args.log_every == 0:
                log.write(json.dumps(rec) + "\n")
                log.flush()
                bar.write(json.dumps(rec), file=sys.stdout)
            if val and val.enabled and (val.due(step) or step == end or out_of_time):
                val.run(model, step, log)
            if time.time() - last_save > 60 * args.ckpt_minutes or step == end or out_of_time:
                tmp = ckpt + ".tmp"
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                            "balance": {k: b.state_dict() for k, b in balance.items()},
                            "validation": val.state() if val else None}, tmp)
                os.replace(tmp, ckpt)
                last_save = time.time()
        if out_of_time:
            break
    bar.close()
    if rank == 0 and args.export:
        info = {"steps": step, "stages": args.stages, "init": args.init, "init_intra": args.init_intra,
                "data": args.data, "size": args.size, "frames": args.frames, "batch": args.batch * world,
                "lr": args.lr, "warmup": args.warmup, "decay": args.decay, "balance": args.balance,
                "params": args.params, "aux": args.aux, "device": _device_name(device), "amp": args.amp}
        if val and val.enabled:
            val.export(args.export, info, log)
        else:
            save(model, args.export, info)
    if log:
        log.close()
    if world > 1:
        dist.destroy_process_group()
    return model


class Validation:
    """The run's validation (``validate.py``) every ``--val-every`` steps and at the end: the start's
    curves at step 0, each later checkpoint's BD-rate against them in the log and in
    ``validation.png``, and the best checkpoint so far (lowest mean BD-rate; the start itself until one
    beats it) in ``best.safetensors`` of the run folder, which ``--export`` writes."""

    def __init__(self, args, model, state):
        self.every, self.out = args.val_every, args.out
        self.best_path = os.path.join(args.out, "best.safetensors")
        self.clips = validate.clips(ClipSampler(args.data, size=args.size, frames=args.frames)) \
            if self.every > 0 else {}
        self.enabled = bool(self.clips)
        if self.every > 0 and not self.clips:
            print(f"{args.data}: no video long enough to hold out validation frames; no validation",
                  file=sys.stderr)
        saved = (state or {}).get("validation") or {}
        self.start, self.best, self.records = saved.get("start"), saved.get("best"), saved.get("records", [])

    def due(self, step: int) -> bool:
        return self.enabled and (step == 0 and self.start is None or step > 0 and step % self.every == 0)

    def state(self) -> dict:
        return {"start": self.start, "best": self.best, "records": self.records}

    def run(self, model, step: int, log):
        if self.records and self.records[-1]["step"] == step:
            return  # already validated at this step (a resumed run's last checkpoint)
        rec = validate.validate(model, self.clips, self.start)
        if self.start is None:
            self.start, rec["score"], rec["bd_rate"] = rec["curves"], 0.0, {k: 0.0 for k in rec["curves"]}
        if self.best is None or rec["score"] < self.best["score"]:
            self.best = {"step": step, "score": rec["score"]}
            save(model, self.best_path, {"steps": step, "validation_score": rec["score"]})
        rec = {"step": step, "validation": rec.pop("curves"), **rec, "best_step": self.best["step"]}
        self.records.append(rec)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(f"validation at step {step}: BD-rate vs start {rec['score']:+.2f}% "
              f"({', '.join(f'{k} {v:+.2f}%' for k, v in rec['bd_rate'].items())}); "
              f"best step {self.best['step']}", file=sys.stderr)
        validate.plot(self.records, os.path.join(self.out, "validation.png"))

    def export(self, path: str, info: dict, log):
        """Write the best checkpoint to ``path``, with the run's provenance and validation in its info."""
        best = self.best["step"]
        if best == 0:
            note = "never beat its start: --export writes the start's weights"
            log.write(json.dumps({"event": note}) + "\n")
            print(f"the run {note}", file=sys.stderr)
        with safe_open(self.best_path, "pt") as f:
            meta = dict(f.metadata())
        meta["info"] = json.dumps({**info, "exported_step": best, "validation_bd_rate": self.best["score"]})
        tmp = path + ".tmp"
        save_file(load_file(self.best_path), tmp, metadata=meta)
        os.replace(tmp, path)


def _out_of_time(minutes, t0, world, device) -> bool:
    """Whether a wall-clock budget of ``minutes`` (None: none) is spent; all ranks agree."""
    if minutes is None:
        return False
    late = time.time() - t0 > 60 * minutes
    if world > 1:
        flag = torch.tensor(float(late), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        late = bool(flag.item())
    return late


def _device_name(device: torch.device) -> str:
    """What trained the weights, for their provenance (e.g. "cuda: NVIDIA H100 80GB HBM3")."""
    return f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else device.type
