"""How latents cross the channel. One P-frame/I-frame path serves training, encoding and decoding;
only this object changes:

* ``Train``: additive uniform noise for the rate term and straight-through rounding for the
  reconstruction (Ballé et al. 2017; Minnen & Singh 2020); collects the estimated bits.
* ``Encode``: rounds, range-codes the symbols with ``constriction``, returns exactly what the decoder
  will see.
* ``Decode``: range-decodes the symbols in the same order.

Each latent group (``tag``: e.g. "motion", "residual") has its own stream so bits can be accounted per
group. Within a stream, the hyper-latent z is coded first, then y given z.
"""
import constriction
import numpy as np
import torch

from ..errors import BitstreamError
from .models import SCALES, SYMBOL_RANGE, Z_RANGE, FactorizedPrior, GaussianConditional

_GAUSS = constriction.stream.model.QuantizedGaussian(-SYMBOL_RANGE, SYMBOL_RANGE)
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def _z_tables(prior: FactorizedPrior) -> np.ndarray:
    """Cached pmf table of a prior; computed once per weights (it depends on nothing else)."""
    table = getattr(prior, "_pmf_cache", None)
    if table is None:
        table = prior.pmf_table().astype(np.float32)
        prior._pmf_cache = table
    return table


class Train:
    """Noise / straight-through quantization with a rate estimate (bits per sample, by tag)."""

    def __init__(self, noise: bool = True):
        self.noise = noise
        self.bits: dict[str, torch.Tensor] = {}

    def _add(self, tag, lik):
        bits = -torch.log2(lik).sum(dim=(1, 2, 3))
        self.bits[tag] = self.bits.get(tag, 0) + bits

    def factorized(self, prior, z, tag, shape=None):
        z_hat = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.noise else torch.round(z)
        self._add(tag, prior.likelihood(z_hat))
        return z_hat

    def gaussian(self, cond, y, mu, sigma, tag):
        if self.noise:
            self._add(tag, cond.likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mu, sigma))
            return mu + (y - mu) + (torch.round(y - mu) - (y - mu)).detach()
        y_hat = mu + torch.round(y - mu)
        self._add(tag, cond.likelihood(y_hat, mu, sigma))
        return y_hat

    def total(self) -> torch.Tensor:
        return sum(self.bits.values())


class Encode:
    """Round, range-code; return the dequantized latents the decoder will reconstruct."""

    def __init__(self, tags):
        self.streams = {t: constriction.stream.queue.RangeEncoder() for t in tags}

    def factorized(self, prior, z, tag, shape=None):
        sym = torch.round(z).clamp(-Z_RANGE, Z_RANGE)
        table = _z_tables(prior)
        channel = np.broadcast_to(np.arange(z.shape[1])[None, :, None, None], z.shape).reshape(-1)
        s = sym.to(torch.int32).numpy().reshape(-1)
        self.streams[tag].encode(s + Z_RANGE, _CATEGORICAL, table[channel])
        return sym

    def gaussian(self, cond, y, mu, sigma, tag):
        sym = torch.round(y - mu).clamp(-SYMBOL_RANGE, SYMBOL_RANGE)
        idx = cond.scale_index(sigma)
        s = sym.to(torch.int32).numpy().reshape(-1)
        self.streams[tag].encode(s, _GAUSS, np.zeros(len(s)), SCALES[idx])
        return mu + sym

    def payloads(self) -> list[bytes]:
        return [e.get_compressed().tobytes() for e in self.streams.values()]


class Decode:
    """Range-decode symbols in the order the encoder wrote them."""

    def __init__(self, tags, payloads):
        if len(payloads) != len(tags):
            raise BitstreamError("inter payload has the wrong number of streams")
        self.streams = {}
        for t, p in zip(tags, payloads):
            if len(p) % 4:
                raise BitstreamError(f"{t} stream length is not a multiple of 4 bytes")
            self.streams[t] = constriction.stream.queue.RangeDecoder(np.frombuffer(p, dtype=np.uint32).copy())

    def factorized(self, prior, z, tag, shape):
        table = _z_tables(prior)
        channel = np.broadcast_to(np.arange(shape[1])[None, :, None, None], shape).reshape(-1)
        s = self.streams[tag].decode(_CATEGORICAL, table[channel]).astype(np.int64) - Z_RANGE
        return torch.from_numpy(s.reshape(shape)).float()

    def finish(self):
        """Every stream must have been read to its end: leftover data means a damaged payload."""
        for tag, dec in self.streams.items():
            if not dec.maybe_exhausted():
                raise BitstreamError(f"{tag} stream has data left over after decoding (damaged payload)")

    def gaussian(self, cond, y, mu, sigma, tag):
        idx = cond.scale_index(sigma)
        n = mu.numel()
        s = self.streams[tag].decode(_GAUSS, np.zeros(n), SCALES[idx])
        return mu + torch.from_numpy(s.astype(np.float32).reshape(mu.shape))
