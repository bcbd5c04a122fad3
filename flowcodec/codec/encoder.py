"""Sequence encoder: the encoder-only decisions (frame types, intra codec, intra QP, motion estimation
and analysis transforms) on top of the decoder.

Low-delay P: frame 0 is an intra frame, and so is every frame ``intra_period`` frames after the last
intra frame; the others are P-frames predicted from the decoder state.

Adaptive intra frames (as x264 places I-frames at scene cuts): a P-frame whose cost R + λ·D reaches
``INTRA_TRIAL`` times that of the last intra frame is also coded as an intra frame, and the cheaper of
the two is kept, so no frame is coded worse than intra would code it. An intra frame chosen this way
starts a new intra period. The gate keeps the extra intra trial off the P-frames that are far cheaper
than intra, which are nearly all of them on continuous content.

Motion predictors: where the motion module can predict the field from the decoder state in several
ways (``MotionModel.usable``), the frame is coded whole with each and the cheapest in R + λ·D is kept.

Block modes (x264's P-skip and x265's merge decisions, per 64×64 block; ``inter.MODES``): each P-frame
is first coded whole, measuring every block's distortion and the bits of its motion and residual
latents, then once more with the predicted motion in every block (no motion latents); each block then
takes the mode of lowest cost — CODED (λ·D + motion bits + residual bits), PREDICT (λ·D of the
prediction + motion bits), COPY (λ·D of the reference), MERGE (λ·D on the predicted motion + residual
bits) or SKIP (λ·D of the prediction from the predicted motion). A block's cost assumes its neighbours'
modes of the pass it was measured in, so the frame is coded again with that map and with the map
restricted to CODED, COPY and PREDICT, and the coding of least real R + λ·D (payload bytes, decoded
frame) is kept, the first pass's (every block coded) included. The choice is greedy per frame: what a
skipped block leaves to the frames after it is not weighed (measured on training-source clips, 33 frames
at qualities 2–5 against format 4's three modes: −3.1% BD-rate on a still camera, −0.3% and +0.4% on two
moving ones).

Motion sets (``--motion auto``, ``model.MotionSet``): a P-frame is coded as above by each member tried
and the one of least real R + λ·D is kept, as encoders choose a mode per block; which members are tried
is the preset's (``AUTO_TRIALS``: all of them on some frames, the best few of those on the others).

Intra frames are coded with HEVC (x265), with the learned intra codec, or — ``intra="auto"`` — with
both, keeping the one of lower cost R + λ·D (the training loss, with the quality level's λ).

Each frame's reconstruction is produced by the decoder's own functions (``decode_intra`` on the
payload; the learned paths with the encoder's symbols), so ``--recon`` equals what ``flowcodec
decode`` writes.
"""
import math

import numpy as np
import torch

from ..entropy.coder import Encode, factorized_bits, gaussian_bits, integer_bits
from ..layers.exact import exact
from ..frames import to_frame, to_tensor, weighted_se
from . import intra
from .bitstream import FrameType, payload_member, payload_pack
from .decoder import SequenceDecoder
from .hevc import decode_intra, encode_intra
from .inter import BLOCK, CODED, COPY, MERGE, MODES, PREDICT, SKIP
from .options import INTRA_MODES, PRESETS, QUALITY_STEPS, intra_qp, lam, snapped
from .search import Nudged, relaxed_state, search

INTRA_TRIAL = 0.5  # a P-frame costing this share of the last intra frame's R + λ·D is tried as intra too
# latent search per frame (steps, Adam's first step size; a quantization bin is 1), by preset: chosen on
# the validation split of the training sources (benchmarks/presets.py; docs/results.md)
SEARCH = {"fast": (0, 0.0), "medium": (0, 0.0), "slow": (30, 0.02), "veryslow": (64, 0.04)}
# motion sets (--motion auto), by preset: every how many P-frames all members are tried, and how many of
# the best of that trial are tried on the frames between (benchmarks/auto.py; docs/results.md)
AUTO_TRIALS = {"fast": (8, 2), "medium": (8, 5), "slow": (1, 0), "veryslow": (1, 0)}


def rd_cost(frame, recon, nbytes: int, lam: float) -> float:
    """bits per luma pixel + λ·(6·MSE_Y + MSE_U + MSE_V)/8 on [0,1] samples: the training loss."""
    mse = [np.mean((a.astype(np.float64) - b) ** 2) / 255.0**2 for a, b in zip(frame, recon)]
    return 8 * nbytes / frame[0].size + lam * (6 * mse[0] + mse[1] + mse[2]) / 8


def block_sum(values: torch.Tensor, grid) -> torch.Tensor:
    """Sums of a 2-D map over the cells of a (rows, cols) grid that tiles it exactly."""
    (h, w), (rows, cols) = values.shape, grid
    return values.reshape(rows, h // rows, cols, w // cols).sum((1, 3))


def block_sse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per mode block, Σ over the frame's real pixels of the weighted squared error in luma-pixel units
    (the training distortion times the pixel count), for packed tensors a and b."""
    e = 4 * weighted_se(a, b)[0] * valid
    return block_sum(e, (e.shape[0] // BLOCK, e.shape[1] // BLOCK))


class _Measured(Nudged, Encode):
    """Range-codes like ``Encode`` (with the block modes ``modes`` and the latent ``offsets`` of a search,
    if given) and keeps every coded element's bits per tag and mode block, as coded (σ snapped to the
    scale table)."""

    def __init__(self, tags, grid, modes=None, offsets=None):
        super().__init__(tags, modes)
        self.offsets = offsets or {}
        self.bits = {t: torch.zeros(grid) for t in tags}
        self.param_bits = 0.0  # bits of the frame's side parameters (not tied to a block)

    def _count(self, tag, bits):
        self.bits[tag] += block_sum(bits.sum((0, 1)), self.bits[tag].shape)

    def factorized(self, prior, z, tag, shape, keep=None):
        z_hat = super().factorized(prior, z, tag, shape, keep)
        self._count(tag, factorized_bits(prior, z_hat, keep))
        return z_hat

    def gaussian(self, cond, y, mu, sigma, tag, keep=None):
        y_hat = super().gaussian(cond, y, mu, sigma, tag, keep)
        self._count(tag, gaussian_bits(cond, y_hat, mu, sigma, keep))
        return y_hat

    def integers(self, values, scales, tag):
        v = super().integers(values, scales, tag)
        self.param_bits += integer_bits(v, scales).item()
        return v


class SequenceEncoder(SequenceDecoder):
    def __init__(self, model, width, height, quality, intra_period=32, intra_mode="hevc", adaptive_intra=True,
                 mono=False, preset="medium"):
        super().__init__(model, width, height, mono)
        self.quality = quality  # of every frame that ``encode`` is not given another for
        if intra_mode not in INTRA_MODES:
            raise ValueError(f"intra mode must be one of {INTRA_MODES}")
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}")
        self.preset = preset
        self.trials = AUTO_TRIALS[preset]  # which members of a motion set each P-frame tries (``_members``)
        self.ranking = None  # the members, best first, in the last P-frame that tried them all
        self.chosen = []  # the member that coded each P-frame (a motion set's choices, for reports)
        self.intra_period, self.intra_mode, self.adaptive_intra = intra_period, intra_mode, adaptive_intra
        self.since_intra = 0  # frames coded since the last intra frame; 0 before the first
        self.intra_cost = None  # R + λ·D of the last intra frame
        hp, wp = self.packed
        rows, cols = torch.arange(hp)[:, None], torch.arange(wp)[None, :]
        self.valid = ((2 * rows < height) & (2 * cols < width)).float()  # packed pixels inside the frame
        self.grid = (hp // BLOCK, wp // BLOCK)  # mode blocks (rows, columns)

    def _inter(self, x):
        """Code a P-frame with each member of a motion set that ``_members`` names (the model's one
        codec otherwise; ``_coding``), keep the one of least real R + λ·D, and, under slow and veryslow,
        search its latents (``search.py``). Returns (payload, state after the frame)."""
        choices = self.model.choices
        codings = {m: self._coding(x, choices[m], m) for m in self._members()}
        ranked = sorted(codings, key=lambda m: self._real(x, *codings[m][:2]))
        if len(codings) > 1 and len(codings) == len(choices):
            self.ranking = ranked
        member = ranked[0]
        payload, state, k, modes, estimate = codings[member]
        steps, size = SEARCH[self.preset]
        if steps:
            inter, lam = choices[member], self.lam
            state32, x32, estimate32 = relaxed_state(self.state), x.float(), estimate.float()
            offsets = search(lambda c: inter(x32, state32, self.level, c, estimate32, k)[0],
                             lambda y: lam * block_sse(y, x32, self.valid).sum(), steps, size, modes)
            if offsets:
                coder, (_, _, _, after) = self._code(x, inter, estimate, k, modes, offsets)
                searched = (self._pack(coder, inter, member), after)
                payload, state = min((payload, state), searched, key=lambda c: self._real(x, *c))
        return payload, state

    def _members(self):
        """The members of the model's P-frame codecs to try on this frame: all of them on the first
        P-frame after an intra frame and every ``trials[0]`` P-frames after it, else the ``trials[1]``
        that coded best in the last such frame (``AUTO_TRIALS``)."""
        every, keep = self.trials
        if len(self.model.choices) == 1:
            return [0]
        if (self.since_intra - 1) % every == 0 or self.ranking is None:
            return range(len(self.model.choices))
        return self.ranking[:keep]

    def _real(self, x, payload, state):
        """The real R + λ·D of a coded P-frame (payload bits, the decoded frame's λ·D), in bits."""
        return 8 * len(payload) + self.lam * block_sse(state.ref, x, self.valid).sum().item()

    def _coding(self, x, inter, member):
        """Code a P-frame with one P-frame codec: whole with each motion predictor the state supports,
        keeping the cheapest; once more with the predicted motion in every block (merge); then with the
        block modes chosen from those two passes, among all modes and among coded, copy and predict
        only; the coding (all blocks coded included) of least real R + λ·D is kept. The preset trims
        this (fast: the default predictor, no merge pass). Returns (payload, state after the frame,
        predictor, block modes, motion estimate)."""
        lam = self.lam
        estimate = inter.motion.estimate(x, self.state)  # once for every pass
        sse = lambda y: lam * block_sse(y, x, self.valid)
        usable = inter.motion.usable(self.state)
        code = lambda k, modes=None: self._code(x, inter, estimate, k, modes)
        trials = []
        for k in ([usable - 1] if self.preset == "fast" else range(usable)):
            coder, (x_hat, pred, _, state) = code(k)
            coded = sse(state.ref) + coder.bits["motion"] + coder.bits["residual"]
            trials.append((coded.sum().item() + coder.param_bits, k, coder, coded, pred, state))
        _, k, coder, coded, pred, state = min(trials, key=lambda t: t[0])
        cost = torch.full((len(MODES), *self.grid), math.inf)
        cost[CODED] = coded
        cost[COPY] = sse(self.state.ref)
        stored = self.state.stored  # what the decoder keeps of a frame (8-bit; gray chroma if monochrome)
        cost[PREDICT] = sse(stored(pred)) + coder.bits["motion"]
        if self.preset != "fast":
            merged, (merged_hat, merged_pred, _, _) = code(k, torch.full((1, 1, *self.grid), MERGE))
            cost[MERGE] = sse(stored(merged_hat)) + merged.bits["residual"]
            cost[SKIP] = sse(stored(merged_pred))
        options = {(CODED,) * cost[0].numel(): (self._pack(coder, inter, member), state, None)}  # every block coded
        for modes in (cost.argmin(0), cost[:MERGE].argmin(0)):  # every mode; coded, copy and predict only
            key = tuple(modes.reshape(-1).tolist())
            if key not in options:
                coder, (_, _, _, after) = code(k, modes[None, None])
                options[key] = (self._pack(coder, inter, member), after, modes[None, None])
        # the real R + λ·D of each distinct map: a block's mode was chosen with its neighbours as they were
        payload, state, modes = min(options.values(), key=lambda o: self._real(x, o[0], o[1]))
        return payload, state, k, modes, estimate

    def _code(self, x, inter, estimate, predictor, modes=None, offsets=None):
        """Code P-frame ``x`` once with P-frame codec ``inter`` (block ``modes``, latent ``offsets``);
        returns the coder (its bits per block, its payloads) and the codec's outputs."""
        coder = _Measured(inter.tags, self.grid, modes, offsets)
        return coder, inter(x, self.state, self.level, coder, estimate, predictor)

    def _pack(self, coder, inter, member):
        return payload_pack(inter.tags, coder.payloads(), inter.motion.streams, member)

    def _intra(self, frame):
        """Code an intra frame with HEVC, the learned codec or both (keeping the lower R + λ·D);
        returns ((frame type, payload, state after the frame), its R + λ·D)."""
        options, size = [], (self.width, self.height)
        if self.intra_mode != "learned":
            payload = encode_intra(frame, intra_qp(self.level + 1))
            recon = to_tensor(decode_intra(payload, *size), *size)
            options.append((FrameType.INTRA_HEVC, payload, self._intra_state(recon)))
        if self.intra_mode != "hevc":
            x = to_tensor(frame, *size)
            x32, lam = x.float(), self.lam
            offsets = {} if not SEARCH[self.preset][0] else search(
                lambda c: self.model.intra(x32, self.level, c), lambda y: lam * block_sse(y, x32, self.valid).sum(),
                *SEARCH[self.preset])
            for tried in ({}, offsets) if offsets else ({},):
                coder = _Measured(intra.TAGS, (1, 1), None, tried)
                x_hat = self.model.intra(x, self.level, coder)
                payload = payload_pack(intra.TAGS, coder.payloads())
                options.append((FrameType.INTRA_LEARNED, payload, self._intra_state(x_hat)))
        return min(((o, self._cost(frame, o)) for o in options), key=lambda c: c[1])

    def _cost(self, frame, option):
        """R + λ·D of a coded option (frame type, payload, state after the frame)."""
        return rd_cost(frame, to_frame(option[2].ref, self.width, self.height), len(option[1]), self.lam)

    def _at(self, quality):
        if snapped(quality) != quality:  # the decoder reads it in these steps
            raise ValueError(f"quality {quality} is not a multiple of 1/{QUALITY_STEPS}")
        super()._at(quality)
        self.lam = lam(quality)  # of the rate-distortion cost R + λ·D that every decision minimises

    @exact()
    def encode(self, frame, quality: float | None = None):
        """Code one 8-bit 4:2:0 frame at ``quality`` (default: the encoder's; a multiple of
        ``options.QUALITY_STEPS``'s inverse, as the frame record stores it); return (frame type,
        payload, reconstruction). In a monochrome stream the frame's chroma is taken as gray."""
        self._at(self.quality if quality is None else quality)
        if self.mono:
            frame = (frame[0], *(np.full_like(c, 128) for c in frame[1:]))
        if self.since_intra % self.intra_period == 0:
            option, cost = self._intra(frame)
        else:
            option = (FrameType.INTER, *self._inter(to_tensor(frame, self.width, self.height)))
            cost = self._cost(frame, option)
            if self.adaptive_intra and cost >= INTRA_TRIAL * self.intra_cost:
                option, cost = min((option, cost), self._intra(frame), key=lambda c: c[1])
        if option[0] != FrameType.INTER:
            self.since_intra, self.intra_cost = 0, cost
        self.since_intra += 1
        ftype, payload, state = option
        if ftype == FrameType.INTER:
            self.chosen.append(payload_member(payload))
        return ftype, payload, self._accept(state)
