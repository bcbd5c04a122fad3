"""How latents cross the channel. One P-frame/I-frame path serves training, encoding and decoding;
only this object changes:

* ``Train``: additive uniform noise for the rate term and straight-through rounding for the
  reconstruction (Ballé et al. 2017; Minnen & Singh 2020); collects the estimated bits.
* ``Encode``: rounds, range-codes the symbols with ``constriction``, returns exactly what the decoder
  will see.
* ``Decode``: range-decodes the symbols in the same order.

Each latent group (``tag``: e.g. "motion", "residual") has its own stream so bits can be accounted per
group. Within a stream, the hyper-latent z is coded first, then y given z.

Per-frame choices (``choice``): a small integer, e.g. which motion predictor a P-frame uses, coded
uniformly in the first stream after the mode map.

Side parameters (``integers``): a few integers per frame in a module's own stream (e.g. global motion
parameters), each coded with a zero-mean discretized Laplace of a fixed scale per position.

Block modes: a P-frame carries a mode map (one mode per hyper-latent position, i.e. per 64×64 luma
block; the codec says how many modes there are and what they mean: ``codec/inter.py``), coded at the
start of its first stream. Latents of blocks that
do not use them are not coded: their z is 0 and their y its mean μ, on both sides (``keep`` masks in
``factorized`` / ``gaussian``). Training never uses modes (``modes`` returns None); the encoder decides
the map (``codec/encoder.py``).
"""
import functools
import math

import constriction
import numpy as np
import torch

from ..errors import BitstreamError
from ..layers import exact
from .models import LIKELIHOOD_FLOOR, SCALES, SYMBOL_RANGE, Z_RANGE, FactorizedPrior, gaussian_pmf, laplace_pmf

PARAM_RANGE = 2**14  # side parameters are clamped to [-PARAM_RANGE, PARAM_RANGE]
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)
_FEWEST = 0.99  # margin of the bits-per-stream floor for the coder's fixed-point probabilities


def _mode_table(counts, n: int) -> np.ndarray:
    """Probabilities (n, len(counts)) of each block mode, from the number of blocks in each mode."""
    p = np.maximum(np.asarray(counts, np.float64), 0.5) / n
    return np.tile((p / p.sum()).astype(np.float32)[None], (n, 1))


def gaussian_bits(cond, y_hat, mu, sigma, keep=None) -> torch.Tensor:
    """Code length in bits of every element of ``y_hat`` as ``Encode`` codes it (σ snapped to its entry
    of the scale table); 0 where ``keep`` leaves an element uncoded."""
    scale = torch.from_numpy(SCALES[cond.scale_index(sigma)]).to(mu.dtype).view_as(sigma)
    bits = -torch.log2(cond.likelihood(y_hat, mu, scale))
    return bits if keep is None else bits * keep


def factorized_bits(prior, z_hat, keep=None) -> torch.Tensor:
    """Code length in bits of every hyper-latent of ``z_hat``; 0 where ``keep`` leaves one uncoded."""
    bits = -torch.log2(prior.likelihood(z_hat))
    return bits if keep is None else bits * keep


def _kept(x, keep) -> np.ndarray:
    """The elements of x (array or tensor, flattened in C-order) that are coded."""
    flat = np.asarray(x).reshape(-1)
    return flat if keep is None else flat[np.asarray(keep).reshape(-1)]


def _place(values: np.ndarray, shape, keep) -> torch.Tensor:
    """Inverse of ``_kept``: decoded values at the coded positions, 0 elsewhere."""
    out = torch.zeros(int(np.prod(shape)))
    out[slice(None) if keep is None else keep.reshape(-1)] = torch.from_numpy(values.astype(np.float32))
    return out.reshape(shape)


@functools.cache
def _gaussian(index: int):
    """The fixed model of latent symbols (+ SYMBOL_RANGE) whose scale is SCALES[index]."""
    return constriction.stream.model.Categorical(gaussian_pmf(index), perfect=False)


@functools.cache
def _laplace(scale: float):
    """The fixed model of a side parameter (+ PARAM_RANGE) of Laplace ``scale``."""
    return constriction.stream.model.Categorical(laplace_pmf(scale, PARAM_RANGE), perfect=False)


def _by_scale(idx: np.ndarray):
    """The order in which a latent's symbols are coded — grouped by scale index, ascending, and in
    C-order within a group, so that each group is coded with one fixed model — and the groups' sizes."""
    return np.argsort(idx, kind="stable"), np.bincount(idx, minlength=len(SCALES))


def integer_bits(values: torch.Tensor, scales) -> torch.Tensor:
    """Bits per row of side parameters (B, n) under their zero-mean discretized Laplace models."""
    law = torch.distributions.Laplace(0.0, torch.as_tensor(scales, dtype=values.dtype, device=values.device))
    p = (law.cdf(values + 0.5) - law.cdf(values - 0.5)).clamp_min(LIKELIHOOD_FLOOR)
    return -torch.log2(p).sum(1)


def _z_tables(prior: FactorizedPrior) -> np.ndarray:
    """The pmf table of a prior, cached until its weights change (it depends on nothing else): the
    cache is keyed on the parameters' in-place version counters, which loading or training bumps."""
    key = tuple((p.data_ptr(), p._version) for p in prior.parameters())
    cached = getattr(prior, "_pmf_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, prior.pmf_table().astype(np.float32))
        prior._pmf_cache = cached
    return cached[1]


class Train:
    """Noise / straight-through quantization with a rate estimate (bits per sample, by tag)."""

    def __init__(self, noise: bool = True):
        self.noise = noise
        self.bits: dict[str, torch.Tensor] = {}

    def _add(self, tag, lik):
        bits = -torch.log2(lik).sum(dim=(1, 2, 3))
        self.bits[tag] = self.bits.get(tag, 0) + bits

    def modes(self, shape, n: int):
        return None

    def choice(self, value: int, n: int) -> int:
        """A per-frame decision among ``n`` options (e.g. the motion predictor): training takes the value
        given, at no rate (a few bits per frame)."""
        return value

    def factorized(self, prior, z, tag, shape, keep=None):
        z_hat = z + torch.empty_like(z).uniform_(-0.5, 0.5) if self.noise else torch.round(z)
        self._add(tag, prior.likelihood(z_hat))
        return z_hat

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        if self.noise:
            self._add(tag, cond.likelihood(y + torch.empty_like(y).uniform_(-0.5, 0.5), mu, sigma))
            return mu + (y - mu) + (torch.round(y - mu) - (y - mu)).detach()
        y_hat = mu + torch.round(y - mu)
        self._add(tag, cond.likelihood(y_hat, mu, sigma))
        return y_hat

    def integers(self, values, scales, tag):
        """Side parameters (B, n), rounded and clamped as coded, and their bits (no gradient: the
        parameters are computed from the input, not learned)."""
        v = values.detach().round().clamp(-PARAM_RANGE, PARAM_RANGE)
        self.bits[tag] = self.bits.get(tag, 0) + integer_bits(v, scales)
        return v

    def total(self) -> torch.Tensor:
        return sum(self.bits.values())


class Encode:
    """Round, range-code; return the dequantized latents the decoder will reconstruct."""

    def __init__(self, tags, modes: torch.Tensor | None = None):
        self.streams = {t: constriction.stream.queue.RangeEncoder() for t in tags}
        self.mode_map = modes  # the encoder's block modes (int, shaped like the hyper-latent grid)

    def modes(self, shape, n: int):
        """Code the map of ``n`` block modes (every block mode 0 unless the encoder gave one); return it."""
        if self.mode_map is None:
            self.mode_map = torch.zeros(shape, dtype=torch.long)
        assert tuple(self.mode_map.shape) == tuple(shape), (self.mode_map.shape, shape)
        first = next(iter(self.streams.values()))
        m = self.mode_map.reshape(-1).numpy().astype(np.int32)
        counts = np.bincount(m, minlength=n)[1:]  # the count of mode 0 follows from the block count
        present = counts > 0
        first.encode(np.array([int((present * 2 ** np.arange(n - 1)).sum())], np.int32),
                     constriction.stream.model.Uniform(2 ** (n - 1)))
        remaining = len(m)
        for c in counts[present]:  # each present mode's count, 1 … the blocks not yet counted (1: no symbol)
            if remaining > 1:
                first.encode(np.array([c - 1], np.int32), constriction.stream.model.Uniform(remaining))
            remaining -= int(c)
        if present.any():
            first.encode(m, _CATEGORICAL, _mode_table([len(m) - counts.sum(), *counts], len(m)))
        return self.mode_map

    def choice(self, value: int, n: int) -> int:
        """Code a per-frame decision ``value`` in 0..n-1 (uniform) in the first stream; return it."""
        assert 0 <= value < n, (value, n)
        next(iter(self.streams.values())).encode(np.array([value], np.int32), constriction.stream.model.Uniform(n))
        return value

    def factorized(self, prior, z, tag, shape, keep=None):
        sym = torch.round(z).clamp(-Z_RANGE, Z_RANGE)
        if keep is not None:
            sym = sym * keep
        channel = np.broadcast_to(np.arange(z.shape[1])[None, :, None, None], z.shape)
        s = _kept(sym.to(torch.int32), keep)
        self.streams[tag].encode(s + Z_RANGE, _CATEGORICAL, _z_tables(prior)[_kept(channel, keep)])
        return sym

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        sym = torch.round(y - mu).clamp(-SYMBOL_RANGE, SYMBOL_RANGE)
        if keep is not None:
            sym = sym * keep
        order, sizes = _by_scale(_kept(cond.scale_index(sigma).reshape(sigma.shape), keep))
        s = _kept(sym.to(torch.int32), keep)[order] + SYMBOL_RANGE
        for index, group in zip(np.flatnonzero(sizes), np.split(s, np.cumsum(sizes[sizes > 0])[:-1])):
            self.streams[tag].encode(group, _gaussian(index))
        return mu + sym

    def integers(self, values, scales, tag):
        """Code side parameters (1, n) in stream ``tag``; return them as decoded."""
        v = values.round().clamp(-PARAM_RANGE, PARAM_RANGE)
        for value, scale in zip(v.reshape(-1).to(torch.int32).numpy(), scales):
            self.streams[tag].encode(np.array([value + PARAM_RANGE], np.int32), _laplace(float(scale)))
        return v

    def payloads(self) -> list[bytes]:
        return [e.get_compressed().tobytes() for e in self.streams.values()]


class Decode:
    """Range-decode symbols in the order the encoder wrote them, and refuse a stream that is not exactly
    the coding of the symbols it decodes to:

    * before its hyper-latents are decoded, a stream must hold at least the bits that the most probable
      value of every z symbol costs: a frame's payload must be plausible for its size before any
      synthesis runs;
    * every symbol read is coded again (``echo``); ``finish`` then requires the stream to be exactly
      those bytes. Range decoding itself accepts anything (constriction reads zeros past the end and
      any extra word as lookahead), so this is what finds data missing or left over, and most changed
      data (a change that makes the stream the coding of other symbols is a valid stream: only the
      record's CRC can tell).

    What constriction raises on data no symbol fits becomes a BitstreamError like every other failure.
    """

    def __init__(self, tags, payloads):
        assert len(payloads) == len(tags), (tags, len(payloads))  # the sequence decoder pairs them
        self.streams, self.echo, self.words = {}, {}, {}
        for t, p in zip(tags, payloads):
            if len(p) % 4:
                raise BitstreamError(f"{t} stream length is not a multiple of 4 bytes")
            self.words[t] = np.frombuffer(p, dtype=np.uint32)
            self.streams[t] = constriction.stream.queue.RangeDecoder(self.words[t].copy())
            self.echo[t] = constriction.stream.queue.RangeEncoder()

    def _read(self, tag, model, *params, count=None):
        """The next symbols of stream ``tag``: per-symbol ``params`` of ``model``, or ``count`` symbols of a
        fixed model. The one place that range-decodes."""
        try:
            symbols = self.streams[tag].decode(model, *(params if count is None else (count,)))
        except (AssertionError, ValueError, RuntimeError) as e:  # constriction: no symbol fits the data
            raise BitstreamError(f"{tag} stream could not be decoded ({e}): damaged payload") from None
        self.echo[tag].encode(symbols, model, *params)
        return symbols

    def modes(self, shape, n: int):
        first = next(iter(self.streams))
        blocks = int(np.prod(shape))
        mask = int(self._read(first, constriction.stream.model.Uniform(2 ** (n - 1)), count=1)[0])
        counts, remaining = np.zeros(n - 1, np.int64), blocks
        for mode in range(n - 1):
            if mask >> mode & 1:
                if remaining < 1:
                    raise BitstreamError("block mode counts exceed the number of blocks (damaged payload)")
                counts[mode] = 1 if remaining == 1 else \
                    self._read(first, constriction.stream.model.Uniform(remaining), count=1)[0] + 1
                remaining -= int(counts[mode])
        if not mask:
            return torch.zeros(shape, dtype=torch.long)
        m = self._read(first, _CATEGORICAL, _mode_table([blocks - counts.sum(), *counts], blocks))
        if not np.array_equal(np.bincount(m, minlength=n)[1:], counts):
            raise BitstreamError("block modes do not match their counts (damaged payload)")
        return torch.from_numpy(m.astype(np.int64).reshape(shape))

    def choice(self, value, n: int) -> int:
        """Decode a per-frame decision in 0..n-1 (``value``, the encoder's, is not known here)."""
        return int(self._read(next(iter(self.streams)), constriction.stream.model.Uniform(n), count=1)[0])

    def factorized(self, prior, z, tag, shape, keep=None):
        table = _z_tables(prior)
        coded = (np.full(shape[1], int(np.prod(shape[2:]))) if keep is None
                 else keep[0].reshape(shape[1], -1).sum(1).numpy())  # z symbols per channel
        # bits if every symbol were its channel's likeliest (exact log, correctly rounded sum: the same
        # verdict on every machine)
        need = math.fsum(coded * -exact.log(table.max(1).astype(np.float64))) / exact.log(2.0)
        if _FEWEST * need - 64 > 32 * len(self.words[tag]):
            raise BitstreamError(f"{tag} stream of {4 * len(self.words[tag])} bytes is too short for the frame "
                                 f"size (its hyper-latents alone take at least {need / 8:.0f} bytes)")
        channel = np.broadcast_to(np.arange(shape[1])[None, :, None, None], shape)
        s = self._read(tag, _CATEGORICAL, table[_kept(channel, keep)]).astype(np.int64) - Z_RANGE
        return _place(s, shape, keep)

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        order, sizes = _by_scale(_kept(cond.scale_index(sigma).reshape(sigma.shape), keep))
        s = np.empty(len(order), np.int64)
        s[order] = np.concatenate([self._read(tag, _gaussian(index), count=int(sizes[index]))
                                   for index in np.flatnonzero(sizes)] or [np.zeros(0, np.int32)])
        return mu + _place(s - SYMBOL_RANGE, mu.shape, keep)

    def integers(self, values, scales, tag):
        """Decode ``len(scales)`` side parameters from stream ``tag`` (``values`` is not known here)."""
        s = [self._read(tag, _laplace(float(scale)), count=1)[0] - PARAM_RANGE for scale in scales]
        return torch.tensor(s, dtype=torch.float32)[None]

    def finish(self):
        """Every stream must be exactly the coding of the symbols read from it: nothing missing, nothing
        left over."""
        for tag, words in self.words.items():
            if not np.array_equal(self.echo[tag].get_compressed(), words):
                raise BitstreamError(f"{tag} stream is not the coding of the symbols it holds "
                                     "(damaged payload: data missing, left over or changed)")
