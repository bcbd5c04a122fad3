"""Encode-time latent search: rate bought at the encoder alone, the decoder and the stream unchanged.

The analysis transforms are amortised guesses of the latents that minimise R + λ·D for one frame; a few
gradient steps on that frame's own latents close part of the gap (Campos et al., "Content adaptive
optimization for neural image compression", CVPR-W 2019; Yang et al., "Improving inference for neural
image compression", NeurIPS 2020; for video, Lu et al., "Content adaptive and error propagation aware
deep video compression", ECCV 2020).

What moves: an offset added to every latent a frame codes (the hyper-latents z and latents y of a
P-frame's motion and residual, or of a learned intra frame), through ``Nudged`` coders. The residual
latents are the analysis of the residual *plus* their offset, so each step recomputes the residual from
the motion as it now decodes: the motion offsets are searched knowing what they do to the residual. The
frame's one coding path (``InterCodec.forward``, ``IntraCodec.forward``) runs with the ``Relaxed``
coder — rounding straight-through for the values, uniform noise for the rate, the frame's block modes
as the encoder chose them — in float32 outside ``exact()``, and Adam takes the steps with a
cosine-decayed step size. The encoder's other decisions (motion predictor, block modes) are taken
before the search, on the analysis' latents; adaptive intra compares the searched P-frame. The search
keeps the offsets of the step whose rate at the rounded latents (as coded: σ snapped) plus λ·D was
least; the encoder then codes them for real (``Nudged`` with ``Encode``) and keeps that coding only if
its real R + λ·D (payload bytes, decoded frame) is below the unsearched one's.
"""
import math

import torch

from ..entropy.coder import Train, factorized_bits, gaussian_bits
from ..layers.exact import relaxed
from ..motion import DecodedPictures


class Nudged:
    """Mixin for a coder: every latent that the analysis hands it is moved by the offset of its
    (tag, "z" | "y") in ``offsets`` (none until ``search`` fills them: then the coder codes as its base)."""

    offsets: dict

    def _moved(self, x, tag, kind):
        offset = self.offsets.get((tag, kind))
        return x if x is None or offset is None else x + offset.to(x.dtype)

    def factorized(self, prior, z, tag, shape, keep=None):
        return super().factorized(prior, self._moved(z, tag, "z"), tag, shape, keep)

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        return super().gaussian(cond, self._moved(y, tag, "y"), mu, sigma, tag, keep)


class Relaxed(Train):
    """The channel of the search: the values rounded straight-through, ``noisy`` the rate at the
    values plus uniform noise (differentiable), ``rounded`` the bits as coded (σ snapped); latents of
    blocks whose mode leaves them uncoded cost nothing and decode as the coder would (z 0, y μ).
    The offsets are leaf tensors created at the first call for each latent (zero)."""

    def __init__(self, offsets: dict, modes: torch.Tensor | None):
        super().__init__(noise=True)
        self.offsets, self.map = offsets, modes
        self.noisy = self.rounded = 0.0

    def modes(self, shape, n: int):
        return self.map

    def _free(self, x, tag, kind):
        if (tag, kind) not in self.offsets:
            self.offsets[tag, kind] = torch.zeros_like(x, requires_grad=True)
        return x + self.offsets[tag, kind]

    @staticmethod
    def _through(v, keep, fill):
        """v rounded straight-through; ``fill`` where ``keep`` leaves it uncoded."""
        r = v + (torch.round(v) - v).detach()
        return r if keep is None else torch.where(keep, r, fill)

    def _count(self, likelihood, rounded, keep):
        """Add the noisy values' ``likelihood`` and the ``rounded`` bits of one latent."""
        k = 1.0 if keep is None else keep
        self.noisy = self.noisy + (-torch.log2(likelihood) * k).sum()
        self.rounded += float(rounded.sum())

    def factorized(self, prior, z, tag, shape, keep=None):
        z = self._free(z, tag, "z")
        z_hat = self._through(z, keep, torch.zeros_like(z))
        with torch.no_grad():
            rounded = factorized_bits(prior, z_hat.detach(), keep)
        self._count(prior.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5)), rounded, keep)
        return z_hat

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        y = self._free(y, tag, "y")
        y_hat = mu + self._through(y - mu, keep, torch.zeros_like(y))
        with torch.no_grad():
            rounded = gaussian_bits(cond, y_hat.detach(), mu.detach(), sigma.detach(), keep)
        self._count(cond.likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mu, sigma), rounded, keep)
        return y_hat


def relaxed_state(state: DecodedPictures) -> DecodedPictures:
    """The decoder state in float32, for the search's fast kernels (the coding itself stays exact)."""
    return DecodedPictures(tuple(f.float() for f in state.frames),
                           tuple(None if m is None else m.float() for m in state.motion), state.size, state.mono)


def search(run, distortion, steps: int, step_size: float, modes=None) -> dict:
    """Offsets of the latents that ``run(coder)`` codes — one frame through its codec's coding path,
    returning its reconstruction, whose λ·D in bits is ``distortion(reconstruction)`` — after ``steps``
    Adam steps on R + λ·D (the step size ``step_size`` at first, cosine-decayed to 0), with block
    ``modes`` as the encoder chose them; {} when no step beat the analysis' own latents."""
    offsets, best, best_cost, opt = {}, {}, math.inf, None
    torch.manual_seed(0)  # the rate noise: one encoder run codes one stream
    with relaxed():
        for step in range(steps + 1):
            coder = Relaxed(offsets, modes)
            d = distortion(run(coder))
            cost = coder.rounded + d.item()
            if cost < best_cost:
                best_cost = cost
                best = {} if step == 0 else {k: v.detach().clone() for k, v in offsets.items()}
            if step == steps:
                break
            if opt is None:
                opt = torch.optim.Adam(list(offsets.values()), lr=step_size)
            for group in opt.param_groups:
                group["lr"] = step_size * 0.5 * (1 + math.cos(math.pi * step / steps))
            opt.zero_grad()
            (coder.noisy + d).backward(inputs=list(offsets.values()))
            opt.step()
    return best
