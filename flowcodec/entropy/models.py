"""Entropy models: the probability of each quantized latent, for the rate term and for range coding.

Two models, as in Ballé et al., "Variational image compression with a scale hyperprior" (ICLR 2018)
and Minnen et al., "Joint autoregressive and hierarchical priors" (NeurIPS 2018, mean-scale variant):

* ``FactorizedPrior``: a learned, per-channel univariate density for the hyper-latents ``z``; its
  probability tables over the integers are fixed once the weights are fixed.
* ``GaussianConditional``: a Gaussian per latent element whose scale comes from the hyper-decoder.
  Scales are snapped to a fixed table (``SCALES``), so encoder and decoder pick the same discrete
  model from the same index.
"""
import copy
import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LIKELIHOOD_FLOOR = 1e-9
SYMBOL_RANGE = 255  # latent symbols are clamped to [-SYMBOL_RANGE, SYMBOL_RANGE]
Z_RANGE = 63  # hyper-latent symbols are clamped to [-Z_RANGE, Z_RANGE]
SCALES = np.exp(np.linspace(math.log(0.11), math.log(64.0), 64))


def full_precision(likelihood):
    """Run a likelihood in float32 (float64 stays float64) with autocast off, even when training with
    mixed precision (``flowcodec train --amp``): in bfloat16 a probability near 1, or a small tail
    probability, rounds to a few significant bits and the rate term with it."""
    @functools.wraps(likelihood)
    def run(self, *xs):
        xs = [x.float() if x.dtype in (torch.float16, torch.bfloat16) else x for x in xs]
        with torch.autocast(xs[0].device.type, enabled=False):
            return likelihood(self, *xs)
    return run


class FactorizedPrior(nn.Module):
    """Per-channel density p(z) = c'(z), with c a monotone function built from small matrices.

    Follows appendix 6.1 of Ballé et al. 2018: c = sigmoid(f_K ∘ … ∘ f_1), each f_k an affine map
    with softplus-positive weights plus a tanh nonlinearity with a learned gain.
    """

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (C, 1, N) -> logits of the cumulative (C, 1, N)."""
        for k, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)
        return x

    @full_precision
    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(z - 1/2 < Z < z + 1/2) per element of z (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower, upper = self._logits(v - 0.5), self._logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where sigmoid is accurate
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.clamp_min(LIKELIHOOD_FLOOR).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf_table(self) -> np.ndarray:
        """Probabilities of the integers -Z_RANGE..Z_RANGE per channel, (C, 2*Z_RANGE+1) float64."""
        c = self.matrices[0].shape[0]
        grid = torch.arange(-Z_RANGE, Z_RANGE + 1, dtype=torch.float64)
        grid = grid.view(1, 1, 1, -1).expand(1, c, 1, grid.numel())
        p = copy.deepcopy(self).double().likelihood(grid)[0, :, 0].numpy()  # leaves self untouched
        return p / p.sum(axis=1, keepdims=True)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


class GaussianConditional(nn.Module):
    """Discretized Gaussian N(mu, sigma) per latent element, sigma floored at the smallest table scale."""

    @full_precision
    def likelihood(self, y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.clamp_min(float(SCALES[0]))
        v = torch.abs(y - mu)
        p = _std_normal_cdf((0.5 - v) / sigma) - _std_normal_cdf((-0.5 - v) / sigma)
        return p.clamp_min(LIKELIHOOD_FLOOR)

    @staticmethod
    def scale_index(sigma: torch.Tensor) -> np.ndarray:
        """Index of the smallest table scale >= sigma (encoder and decoder compute it identically)."""
        s = sigma.detach().double().flatten().numpy()
        return np.searchsorted(SCALES, s).clip(0, len(SCALES) - 1)
