"""Entropy models: the probability of each quantized latent, for the rate term and for range coding.

Two models, as in Ballé et al., "Variational image compression with a scale hyperprior" (ICLR 2018)
and Minnen et al., "Joint autoregressive and hierarchical priors" (NeurIPS 2018, mean-scale variant):

* ``FactorizedPrior``: a learned, per-channel univariate density for the hyper-latents ``z``; its
  probability tables over the integers are fixed once the weights are fixed.
* ``GaussianConditional``: a Gaussian per latent element whose scale comes from the hyper-decoder.
  Scales are snapped to a fixed table (``SCALES``), so encoder and decoder pick the same discrete
  model from the same index.

The tables the range coder codes with (``pmf_table``, ``gaussian_pmf``, ``laplace_pmf``) are computed
with the basic operations and the exp / log of ``layers.exact``, never a library's transcendental
functions, so every machine builds the same tables bit for bit; the likelihoods that training
differentiates use torch's functions (the tables agree with them to 5·10⁻⁴ relative or better wherever
a probability exceeds 10⁻⁶).
"""
import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import exact

LIKELIHOOD_FLOOR = 1e-9
SYMBOL_RANGE = 255  # latent symbols are clamped to [-SYMBOL_RANGE, SYMBOL_RANGE]
Z_RANGE = 63  # hyper-latent symbols are clamped to [-Z_RANGE, Z_RANGE]
SCALES = np.round(exact.exp(np.linspace(exact.log(0.11), exact.log(64.0), 64)) * 2**16) / 2**16  # dyadic


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
        """P(z - 1/2 < Z < z + 1/2) per element of z (B, C, H, W), in the parameters' type (z may be the
        float64 integers of the exact coders)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1).to(self.matrices[0].dtype)
        lower, upper = self._logits(v - 0.5), self._logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # evaluate in the tail where sigmoid is accurate
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.clamp_min(LIKELIHOOD_FLOOR).reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def pmf_table(self) -> np.ndarray:
        """Probabilities of the integers -Z_RANGE..Z_RANGE per channel, (C, 2*Z_RANGE+1) float64: the
        likelihood above, computed with ``layers.exact``'s exp and log and the small matrix products
        summed in a fixed order, so that it is the same on every machine."""
        as64 = lambda ps: [p.detach().double().cpu().numpy() for p in ps]
        matrices = [_softplus(m) for m in as64(self.matrices)]
        biases, factors = as64(self.biases), [_tanh(f) for f in as64(self.factors)]

        def logits(v):  # (N,) → (C, N)
            x = np.broadcast_to(v, (matrices[0].shape[0], 1, len(v)))
            for k, (m, b) in enumerate(zip(matrices, biases)):
                terms = [m[:, :, i, None] * x[:, None, i] for i in range(m.shape[2])]
                x = functools.reduce(np.add, terms) + b
                if k < len(factors):
                    x = x + factors[k] * _tanh(x)
            return x[:, 0]

        grid = np.arange(-Z_RANGE, Z_RANGE + 1, dtype=np.float64)
        lower, upper = logits(grid - 0.5), logits(grid + 0.5)
        sign = -np.sign(lower + upper)  # evaluate in the tail where the sigmoid is accurate
        return _normalized(np.abs(_sigmoid(sign * upper) - _sigmoid(sign * lower)))


def _softplus(x):
    return np.maximum(x, 0) + exact.log(1 + exact.exp(-np.abs(x)))


def _tanh(x):
    return np.sign(x) * (1 - 2 / (exact.exp(2 * np.abs(x)) + 1))


def _sigmoid(x):
    return 1 / (1 + exact.exp(-x))


def _normalized(p: np.ndarray) -> np.ndarray:
    """Rows of probabilities floored at LIKELIHOOD_FLOOR and divided by their correctly rounded sum."""
    p = np.maximum(p, LIKELIHOOD_FLOOR)
    return p / np.array([math.fsum(row) for row in p.reshape(-1, p.shape[-1])]).reshape(p.shape[:-1] + (1,))


@functools.cache
def gaussian_pmf(index: int) -> np.ndarray:
    """Probabilities of the symbols -SYMBOL_RANGE..SYMBOL_RANGE under a zero-mean Gaussian of scale
    SCALES[index]: the density integrated over each unit bin by Simpson's rule in steps of at most σ/8,
    with ``layers.exact.exp``, so the table is the same on every machine (its probabilities are within
    5e-4 relative of the exact Gaussian's wherever they exceed 1e-6)."""
    sigma = float(SCALES[index])
    reach = min(SYMBOL_RANGE, math.ceil(12 * sigma) + 1)  # bins further out get the floor
    n = 2 * max(1, math.ceil(4 / sigma))  # Simpson steps per bin (even)
    t = np.arange(-reach, reach + 1)[:, None] - 0.5 + np.arange(n + 1)[None, :] / n  # (bins, n+1)
    density = exact.exp(-0.5 * np.square(t / sigma)) / (sigma * math.sqrt(2 * math.pi))
    weight = np.where(np.arange(n + 1) % 2 == 1, 4.0, 2.0)
    weight[0] = weight[-1] = 1.0
    p = np.full(2 * SYMBOL_RANGE + 1, LIKELIHOOD_FLOOR)
    p[SYMBOL_RANGE - reach:SYMBOL_RANGE + reach + 1] = [math.fsum(row) / (3 * n) for row in density * weight]
    return _normalized(p)


@functools.cache
def laplace_pmf(scale: float, reach: int) -> np.ndarray:
    """Probabilities of the integers -reach..reach under a zero-mean Laplace of ``scale`` (exact in
    closed form from ``layers.exact.exp``): the side parameters' model."""
    k = np.arange(-reach, reach + 1, dtype=np.float64)
    inner = exact.exp(-np.maximum(np.abs(k) - 0.5, 0) / scale)  # P(|X| > |k| - 1/2), halved below
    p = 0.5 * (inner - exact.exp(-(np.abs(k) + 0.5) / scale))
    p[reach] = 1 - exact.exp(-0.5 / scale)[()]
    return _normalized(p)


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
