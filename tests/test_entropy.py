"""Entropy coding through the hyperprior codec: Encode/Decode are exact inverses, the training-time
rate estimate predicts the real coded size, and the quality gains steer the rate."""
import numpy as np
import pytest
import torch

from flowcodec.entropy.hyper import HyperCodec
from flowcodec.entropy.coder import Decode, Encode, Train, _z_tables
from flowcodec.entropy.models import SCALES, Z_RANGE, FactorizedPrior, GaussianConditional
from flowcodec.errors import BitstreamError

SIZE = (32, 64)  # multiples of 32 (analysis 8x, hyper-analysis 4x more)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return HyperCodec(6, 6, levels=6).eval()


def _inputs(seed):
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 6, 4, 8, generator=g), size=SIZE,
                                             mode="bilinear", align_corners=False)
    return [torch.rand(1, 6, *SIZE, generator=g) * 2 - 1, smooth]


@torch.no_grad()
def _code(model, x, q, tag="t"):
    enc = Encode([tag])
    x_enc = model(x, q, enc, tag, SIZE)
    payloads = enc.payloads()
    x_dec = model(None, q, Decode([tag], payloads), tag, SIZE)
    est = Train(noise=False)
    x_est = model(x, q, est, tag, SIZE)
    return x_enc, x_dec, x_est, payloads[0], float(est.total()) / 8


@pytest.mark.parametrize("q", [0, 2, 5, 3.5])
def test_encode_decode_identical(codec, q):
    for x in _inputs(int(q)):
        x_enc, x_dec, x_est, payload, _ = _code(codec, x, q)
        assert len(payload) > 0 and len(payload) % 4 == 0
        assert torch.equal(x_enc, x_dec)
        assert torch.equal(x_enc, x_est)  # noise-free training path rounds the same way
        assert x_dec.shape == x.shape


@pytest.fixture(scope="module")
def gained():
    """A small codec whose per-level gains are set explicitly: 0.4 .. 16, a factor 2 per level."""
    torch.manual_seed(3)
    model = HyperCodec(6, 6, n=32, m=48, nz=16, levels=6).eval()
    gains = 4 * torch.logspace(-1, 2, 6, base=2.0)
    with torch.no_grad():
        model.gain.copy_(gains[:, None].expand_as(model.gain))
        model.inv_gain.copy_(1 / gains[:, None].expand_as(model.inv_gain))
    return model


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_estimated_bits_match_coded_size(gained, q):
    """Train(noise=False) counts -log2 of the same discrete model the range coder uses (up to the
    scale table snapping and coder overhead): within 10 % + 8 bytes of the real size, at rates from
    ~200 to ~2500 bytes."""
    for x in _inputs(4):
        *_, payload, est_bytes = _code(gained, x, q)
        assert est_bytes > 150
        assert abs(len(payload) - est_bytes) <= 0.1 * est_bytes + 8, (len(payload), est_bytes)


def test_estimated_bits_default_codec(codec):
    for x in _inputs(7):
        *_, payload, est_bytes = _code(codec, x, 5)
        assert abs(len(payload) - est_bytes) <= 0.1 * est_bytes + 8, (len(payload), est_bytes)


def test_higher_gain_more_bits(gained):
    x = _inputs(4)[0]
    sizes, errors = [], []
    for q in range(6):
        x_enc, x_dec, _, payload, est = _code(gained, x, q)
        assert torch.equal(x_enc, x_dec)
        sizes.append(len(payload))
        with torch.no_grad():
            errors.append(float(((gained.g_s(gained.g_a(x)) - x_dec) ** 2).mean()))
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] > 10 * sizes[0], sizes
    # the latents are represented ever more finely: the quantisation error of the synthesis shrinks
    assert errors[-1] < errors[0], errors


def test_fractional_level_interpolates_gain(codec):
    lo, hi = codec._pick(codec.gain, 2), codec._pick(codec.gain, 3)
    mid = codec._pick(codec.gain, 2.5)
    assert torch.allclose(mid, (lo * hi).sqrt(), rtol=1e-5)
    assert torch.equal(codec._pick(codec.gain, 9), codec._pick(codec.gain, 5))  # clamped
    batch = codec._pick(codec.gain, torch.tensor([0, 5]))
    assert batch.shape == (2, codec.m, 1, 1)
    assert torch.equal(batch[1], codec._pick(codec.gain, 5)[0])


def test_factorized_pmf_table():
    torch.manual_seed(0)
    prior = FactorizedPrior(8)  # random biases: every channel has its own density
    table = prior.pmf_table()
    assert table.shape == (8, 2 * Z_RANGE + 1)
    assert np.all(table > 0)
    np.testing.assert_allclose(table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    # before normalisation the integer grid already holds nearly all the mass (the density at init is
    # broad, a fraction of a percent lies beyond +-Z_RANGE): the table is the density itself
    grid = torch.arange(-Z_RANGE, Z_RANGE + 1, dtype=torch.float32)
    raw = prior.likelihood(grid.view(1, 1, 1, -1).expand(1, 8, 1, -1))[0, :, 0].detach().numpy()
    np.testing.assert_allclose(raw.sum(axis=1), 1.0, atol=0.02)
    np.testing.assert_allclose(table, raw / raw.sum(axis=1, keepdims=True), atol=1e-6)
    assert not np.allclose(table[0], table[-1])
    # computing the table leaves the module in float32 (it evaluates in float64)
    assert all(p.dtype == torch.float32 for p in prior.parameters())
    cached = _z_tables(prior)
    assert cached.dtype == np.float32
    np.testing.assert_allclose(cached.sum(axis=1), 1.0, atol=1e-5)


def test_gaussian_scale_index_covers_sigma():
    sigma = torch.tensor([0.0, 0.05, 0.11, 0.5, 3.0, 64.0, 1e3])
    idx = GaussianConditional.scale_index(sigma)
    assert idx.min() >= 0 and idx.max() == len(SCALES) - 1
    inside = (sigma >= SCALES[0]) & (sigma <= SCALES[-1])
    assert np.all(SCALES[idx[inside.numpy()]] >= sigma[inside].double().numpy() * (1 - 1e-9))
    assert np.all(np.diff(idx) >= 0)


def test_gaussian_likelihood_sums_to_one():
    cond = GaussianConditional()
    y = torch.arange(-300, 301, dtype=torch.float64).view(-1, 1)
    for s in (0.11, 1.0, 7.5, 40.0):
        p = cond.likelihood(y, torch.tensor(0.3, dtype=torch.float64), torch.tensor(s, dtype=torch.float64))
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)


def test_decode_rejects_bad_stream_layout():
    """A range-coded stream is whole 32-bit words (the pairing of tags and streams is the sequence
    decoder's check: tests/test_errors.py)."""
    with pytest.raises(BitstreamError, match="not a multiple of 4"):
        Decode(["a"], [b"\0" * 6])


@pytest.mark.parametrize("damage", ["a word appended", "last word missing", "a bit flipped", "empty"])
def test_decode_refuses_a_stream_that_is_not_exactly_its_symbols(codec, damage):
    """Range decoding accepts any bytes (it reads zeros past the end, an extra word as lookahead): the
    decoder must still refuse data missing, left over or changed, as a BitstreamError."""
    x = _inputs(1)[1]
    enc = Encode(["t"])
    with torch.no_grad():
        codec(x, 2, enc, "t", SIZE)
    good = enc.payloads()[0]
    bad = {"a word appended": good + b"\x01\x02\x03\x04", "last word missing": good[:-4],
           "a bit flipped": good[:8] + bytes([good[8] ^ 0x10]) + good[9:], "empty": b""}[damage]
    dec = Decode(["t"], [good])
    with torch.no_grad():
        codec(None, 2, dec, "t", SIZE)
    dec.finish()  # the undamaged stream passes
    dec = Decode(["t"], [bad])
    with pytest.raises(BitstreamError), torch.no_grad():
        codec(None, 2, dec, "t", SIZE)
        dec.finish()


def test_prior_table_follows_new_weights():
    """The range coder's pmf table of a hyper-latent prior is cached, but loading other weights into
    the same prior (as ``load_state_dict`` does, in place) must give the new table, not the cached one."""
    torch.manual_seed(0)
    a, b = FactorizedPrior(4), FactorizedPrior(4)
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn_like(p))
    before = _z_tables(a).copy()
    assert np.array_equal(_z_tables(a), before)  # cached
    a.load_state_dict(b.state_dict())
    assert np.array_equal(_z_tables(a), _z_tables(b)) and not np.array_equal(_z_tables(a), before)
