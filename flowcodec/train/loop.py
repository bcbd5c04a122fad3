"""Training of the P-frame codec: staged as in DVC (Lu et al., CVPR 2019), resumable, data-parallel.

Stages (``--stages flow:N,joint:M``):
* ``flow`` — only the motion estimator: end-point error against the ground-truth flow of rendered clips
  plus the warping error on real clips.
* ``joint`` — everything with one loss  R_motion + R_residual + λ_q·D  (plus a decaying λ·D term on the
  motion-compensated prediction that helps compensation learn first), over T-frame clips where each
  P-frame references the previous reconstruction, so that error propagation is trained too. Every
  sample draws its own quality level q, so one model learns all rates.
* ``intra`` — the learned intra codec alone, R + λ_q·D on single frames (photographs and video frames).
* ``prior`` — calibration: only the factorized priors of the hyper-latents learn, by the bits of the
  *rounded* hyper-latents of real coding (intra and P-frames). Noise-trained priors stay wider than the
  integer-valued latents they end up coding; this stage fits them to what the range coder sees.

The factorized priors learn ``PRIOR_LR`` times faster than the rest: they are small density models that
must follow the hyper-latents as the transforms change.

Every step seeds its own RNG from (seed, step, rank): a run resumed from a checkpoint takes exactly the
steps an uninterrupted run would. With ``torchrun --nproc_per_node K`` each process draws its own
batches and gradients are averaged (gloo on CPU, nccl on GPU).
"""
import json
import os
import time

import torch
import torch.distributed as dist

from ..codec.frames import unpack, weighted_se
from ..codec.model import LAMBDAS, VideoModel, load_part, save
from ..entropy.coder import Train
from ..motion.warp import warp
from .data import ClipSampler

PRIOR_LR = 10.0


def distortion(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE weighted like PSNR-YUV: (6·Y + U + V) / 8, on packed frames."""
    return weighted_se(a, b).mean(dim=(1, 2))


def flow_loss(model, frames, flows, has_flow):
    ref, cur = frames[:, 0], frames[:, 1]
    est = model.inter.motion.estimate(cur, ref)[:, :2]
    epe = torch.linalg.vector_norm(est - flows[:, 0], dim=1).mean(dim=(1, 2))
    warped = warp(unpack(ref)[0], est)
    photo = ((warped - unpack(cur)[0]) ** 2).mean(dim=(1, 2, 3))
    loss = torch.where(has_flow, epe, 100.0 * photo).mean()
    return loss, {"epe": (epe[has_flow].mean().item() if has_flow.any() else float("nan")),
                  "warp_mse": photo.mean().item()}


def joint_loss(model, frames, q, aux):
    lam = torch.tensor(LAMBDAS)[q]
    ref = frames[:, 0]
    pixels = frames.shape[-1] * frames.shape[-2] * 4
    total, stats = 0.0, {"bpp": 0.0, "psnr": 0.0, "mv_bpp": 0.0}
    steps = frames.shape[1] - 1
    for t in range(1, frames.shape[1]):
        coder = Train()
        x_hat, pred, _ = model.inter(frames[:, t], ref, q, coder)
        bpp = coder.total() / pixels
        d = distortion(x_hat, frames[:, t])
        total = total + (bpp + lam * d + aux * lam * distortion(pred, frames[:, t])).mean()
        stats["bpp"] += bpp.mean().item() / steps
        stats["mv_bpp"] += (coder.bits["motion"] / pixels).mean().item() / steps
        stats["psnr"] += (-10 * torch.log10(d.detach())).mean().item() / steps
        ref = x_hat.clamp(0, 1)
    return total / steps, stats


def intra_loss(model, images, q):
    coder = Train()
    x_hat = model.intra(images, q, coder)
    bpp = coder.total() / (images.shape[-1] * images.shape[-2] * 4)
    d = distortion(x_hat, images)
    return (bpp + torch.tensor(LAMBDAS)[q] * d).mean(), {"bpp": bpp.mean().item(),
                                                         "psnr": (-10 * torch.log10(d.detach())).mean().item()}


def prior_loss(model, frames, q):
    """Bits per pixel of real (rounded) coding: the first frame as an intra frame, the others as P-frames
    referencing the previous reconstruction (the first reference is the source frame, close to what the
    default HEVC intra gives). Only the factorized priors are trainable in this stage, so only the
    hyper-latent bits give gradients."""
    coder = Train(noise=False)
    model.intra(frames[:, 0], q, coder)
    ref = frames[:, 0]
    for t in range(1, frames.shape[1]):
        ref = model.inter(frames[:, t], ref.clamp(0, 1), q, coder)[0]
    pixels = frames.shape[-1] * frames.shape[-2] * 4 * frames.shape[1]
    bpp = coder.total() / pixels
    return bpp.mean(), {f"{k}_bpp": (v / pixels).mean().item() for k, v in coder.bits.items()}


def _schedule(spec: str):
    out, start = [], 0
    for part in spec.split(","):
        name, n = part.split(":")
        out.append((name, start, start + int(n)))
        start += int(n)
    return out


def train(args):
    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.pt")
    torch.manual_seed(args.seed)  # the same initial weights on every rank and for every run
    model = VideoModel(args.motion)
    for path, prefix in ((args.init, ""), (args.init_intra, "intra.")):
        if path:
            load_part(model, path, prefix)
    priors = [p for n, p in model.named_parameters() if ".prior." in n]
    others = [p for n, p in model.named_parameters() if ".prior." not in n]
    opt = torch.optim.Adam([{"params": others}, {"params": priors, "lr": args.lr * PRIOR_LR}], lr=args.lr)
    step = 0
    if os.path.exists(ckpt):
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    sampler = ClipSampler(args.data, size=args.size, frames=args.frames)
    stages = _schedule(args.stages)
    end = stages[-1][2] if args.stop_after is None else min(stages[-1][2], args.stop_after)
    log = open(os.path.join(args.out, "log.jsonl"), "a") if rank == 0 else None
    last_save, t0 = time.time(), time.time()
    model.train()
    while step < end:
        name, first, last = next(s for s in stages if s[1] <= step < s[2])
        torch.manual_seed(hash((args.seed, step, rank)) % (2**31))
        for p in others:
            p.requires_grad_(name != "prior")
        q = torch.randint(0, len(LAMBDAS), (args.batch,))
        if name == "intra":
            loss, stats = intra_loss(model, sampler.images(args.batch, args.seed * 1000 + rank, step), q)
        else:
            frames, flows, has_flow = sampler.batch(args.batch, args.seed * 1000 + rank, step)
            if name == "flow":
                loss, stats = flow_loss(model, frames[:, :2], flows, has_flow)
            elif name == "prior":
                loss, stats = prior_loss(model, frames, q)
            else:
                aux = max(0.0, 1.0 - (step - first) / max(1, 0.3 * (last - first))) + 0.05
                loss, stats = joint_loss(model, frames, q, aux)
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
        if rank == 0:
            rec = {"step": step, "stage": name, "loss": round(loss.item(), 5),
                   **{k: round(v, 5) for k, v in stats.items()}, "sec": round(time.time() - t0, 1)}
            if step % args.log_every == 0:
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
            if time.time() - last_save > 60 * args.ckpt_minutes or step == end:
                tmp = ckpt + ".tmp"
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
                os.replace(tmp, ckpt)
                last_save = time.time()
    if rank == 0 and args.export:
        save(model, args.export, {"steps": step, "stages": args.stages, "init": args.init,
                                  "init_intra": args.init_intra, "data": args.data,
                                  "size": args.size, "frames": args.frames, "batch": args.batch * world})
    if world > 1:
        dist.destroy_process_group()
    return model
