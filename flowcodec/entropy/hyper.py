"""Hyperprior autoencoder with per-quality gains: the transform coder used for motion, residuals and
learned intra frames.

Analysis g_a → latent y → hyper-analysis h_a → z (factorized prior); hyper-synthesis h_s gives the mean
and scale of y (Minnen et al. 2018, mean-scale hyperprior without context model, so decoding is parallel).
One model covers many rates: y is multiplied by a learned per-channel gain for the quality level before
quantization and divided by the matching inverse gain after (Cui et al., "Asymmetric gained deep image
compression", CVPR 2021). Fractional levels interpolate the gains geometrically.
"""
import torch
import torch.nn as nn

from .models import FactorizedPrior, GaussianConditional
from ..layers import GDN, conv, deconv, exact

STRIDE = 8  # g_a downsamples by 8, h_a by a further 4


class HyperCodec(nn.Module):
    def __init__(self, cin: int, cout: int, n: int = 64, m: int = 96, nz: int = 32, *, levels: int):
        super().__init__()
        self.m, self.nz = m, nz
        self.g_a = nn.Sequential(conv(cin, n, 5, 2), GDN(n), conv(n, n, 5, 2), GDN(n), conv(n, m, 5, 2))
        self.g_s = nn.Sequential(deconv(m, n), GDN(n, True), deconv(n, n), GDN(n, True), deconv(n, cout))
        self.h_a = nn.Sequential(conv(m, n, 3), nn.LeakyReLU(0.1), conv(n, n, 5, 2), nn.LeakyReLU(0.1),
                                 conv(n, nz, 5, 2))
        self.h_s = nn.Sequential(deconv(nz, n), nn.LeakyReLU(0.1), deconv(n, n), nn.LeakyReLU(0.1),
                                 conv(n, 2 * m, 3))
        # low levels start with a coarse quantizer (small gain), high levels with a fine one
        start = torch.logspace(-2, 1, levels, base=2.0)[:, None].expand(levels, m)
        self.gain = nn.Parameter(start.clone())
        self.inv_gain = nn.Parameter(1.0 / start)
        self.prior = FactorizedPrior(nz)
        self.cond = GaussianConditional()

    @staticmethod
    def _pick(table: torch.Tensor, q) -> torch.Tensor:
        """Gain vector(s) for quality index q: an int, a float (interpolated), or a (B,) tensor.

        A level itself is its row. Between levels the rows are interpolated geometrically; inside
        ``exact()`` with exp and log from basic operations (``layers.exact``), since a library pow
        rounds differently from machine to machine and these gains scale the coded latents."""
        q = torch.as_tensor(q, dtype=torch.float32, device=table.device).clamp(0, table.shape[0] - 1).reshape(-1)
        lo = q.floor().long()
        hi = (lo + 1).clamp(max=table.shape[0] - 1)
        t = (q - lo.float())[:, None]
        g = table[lo].abs().clamp_min(1e-4)
        if t.any():
            g_hi = table[hi].abs().clamp_min(1e-4)
            if exact.active():
                t = t.double().numpy()
                mix = (1 - t) * exact.log(g.double().numpy()) + t * exact.log(g_hi.double().numpy())
                g = torch.from_numpy(exact.exp(mix))
            else:
                g = g ** (1 - t) * g_hi ** t
        return g[:, :, None, None]

    def forward(self, x, q, coder, tag: str, size, skip=None):
        """The one coding path. ``x`` is the input (None when decoding), ``size`` its (H, W); ``skip``
        (bool, shaped like the hyper-latent grid) marks blocks whose latents are not coded."""
        h, w = size
        zshape = (1, self.nz, h // (4 * STRIDE), w // (4 * STRIDE))
        keep_z = keep_y = None
        if skip is not None:
            keep_z = (~skip).expand(zshape)
            keep_y = keep_z[:, :1].repeat_interleave(4, -1).repeat_interleave(4, -2).expand(
                1, self.m, h // STRIDE, w // STRIDE)
        y = z = None
        if x is not None:
            y = self.g_a(x) * self._pick(self.gain, q)
            z = self.h_a(y)
        z_hat = coder.factorized(self.prior, z, tag, zshape, keep_z)
        mu, sigma = self.h_s(z_hat).chunk(2, dim=1)
        y_hat = coder.gaussian(self.cond, y, mu, sigma.abs(), tag, keep_y)
        return self.g_s(y_hat * self._pick(self.inv_gain, q))
