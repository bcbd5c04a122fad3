"""P-frame codec of the residual-coding framework (DVC, Lu et al. CVPR 2019):

    motion estimation → motion autoencoder → motion compensation + refinement → residual autoencoder

in pixel space, or with compensation and residual in feature space (FVC, Hu et al. CVPR 2021) for the
modules that predict there (``motion.deform``), written once in ``InterCodec.forward``. The same function trains (``Train`` coder: noise, rate
estimate), encodes (``Encode``: round and range-code) and decodes (``Decode``: range-decode; no current
frame, so nothing encoder-only runs). The encoder's reconstruction is therefore the decoder's by
construction. The decoder state (``motion.DecodedPictures``) goes in and the advanced state comes out.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import ResBlock, conv
from ..motion import DecodedPictures, create
from ..entropy.hyper import STRIDE, HyperCodec
from .bitstream import STREAMS

TAGS = ("motion", "residual")
FIELD_SCALE = 4.0  # motion fields enter the autoencoder divided by this constant (pixels, not sizes)
BLOCK = 4 * STRIDE  # packed pixels per mode-block side: 64 luma pixels, one hyper-latent position
MODES = ("coded", "copy", "predict", "merge", "skip")
"""Block modes, one per 64×64 luma block (what each codes: motion latents, residual latents):
coded (both), copy (neither; the reference itself), predict (motion only; the prediction), merge (the
residual only, on the predicted motion) and skip (neither; the prediction from the predicted motion).
The predicted motion is the frame's motion predictor's field (``MotionModel.predict``), zero motion for
predictor "none", as x265's merge and skip take a neighbour's motion vector."""
CODED, COPY, PREDICT, MERGE, SKIP = range(len(MODES))


def pixels(block_map: torch.Tensor, scale: int = 1) -> torch.Tensor:
    """A per-block map at the resolution of the packed frame (``scale`` 2: of the luma-resolution field)."""
    return block_map.repeat_interleave(scale * BLOCK, -1).repeat_interleave(scale * BLOCK, -2)


class Refine(nn.Module):
    """Motion-compensation refinement: cleans the warped prediction using the reference and the field
    (the 'motion compensation network' of DVC, much smaller). Most of its work happens at half the
    packed resolution; the full-resolution path is one conv in and one out."""

    def __init__(self, field_channels: int, width: int = 32, inner: int = 48):
        super().__init__()
        self.head = conv(6 + 6 + 4 * field_channels, width)
        self.down = conv(width, inner, 3, 2)
        self.mid = nn.Sequential(nn.LeakyReLU(0.1), ResBlock(inner), nn.LeakyReLU(0.1))
        self.up = nn.Sequential(conv(inner, 4 * width, 1), nn.PixelShuffle(2))
        self.tail = nn.Sequential(nn.LeakyReLU(0.1), conv(width, 6))

    def forward(self, warped, ref, field):
        f = self.head(torch.cat((warped, ref, F.pixel_unshuffle(field / FIELD_SCALE, 2)), dim=1))
        return warped + self.tail(f + self.up(self.mid(self.down(f))))


class InterCodec(nn.Module):
    def __init__(self, motion: str, levels: int, hyper: dict | None = None):
        super().__init__()
        self.motion = create(motion, **(hyper or {}))
        self.tags = TAGS + self.motion.streams  # the sub-streams of this codec's payloads
        unknown = [t for t in self.tags if t not in STREAMS or t == "intra"]
        if unknown or len(set(self.tags)) != len(self.tags):
            raise TypeError(f"{motion}.streams {self.motion.streams} must be new sub-streams of the format "
                            f"({', '.join(STREAMS)}; docs/bitstream.md)")
        fc, width = self.motion.channels, self.motion.features_width
        self.mv = HyperCodec(4 * fc, 4 * fc, n=64, m=64, nz=32, levels=levels)
        self.refine = Refine(fc) if self.motion.space == "pixels" else None  # features: the module refines
        self.res = HyperCodec(width, width, n=64, m=96, nz=32, levels=levels)

    def compensate(self, state: DecodedPictures, field: torch.Tensor) -> torch.Tensor:
        """The prediction in the module's space: a pixel prediction refined, or the module's features."""
        pred = self.motion.compensate(state, field)
        return pred if self.refine is None else self.refine(pred, state.ref, field)

    def forward(self, cur, state: DecodedPictures, q, coder, estimate=None, predictor=None):
        """One P-frame through the channel. ``cur`` is None when decoding; ``state`` is the decoder state
        (read, never changed); ``estimate`` is the encoder's motion estimate for (cur, state) when it
        already has it (computed here otherwise); ``predictor`` is the motion predictor to use when the
        module has several usable on this state (the encoder's or training's choice, coded per frame;
        default: the last usable one).

        Block modes (a map from the coder, one per 64×64 luma block; never in training; ``MODES``): the
        latents a block's mode does not use are not coded. The decoded field of a COPY block is zero, of
        a MERGE or SKIP block the predicted motion (zero without a predictor), and that field goes into
        the state like any other, so that temporal prediction continues through such blocks. PREDICT and
        SKIP blocks take the prediction, COPY blocks the reference.
        Returns (reconstruction, prediction, decoded motion field, the state with this frame pushed);
        all padded packed tensors.
        """
        ref = state.ref
        size = ref.shape[-2:]
        modes = coder.modes((1, 1, size[0] // BLOCK, size[1] // BLOCK), len(MODES))
        no_motion = no_residual = None
        if modes is not None:
            no_motion = (modes == COPY) | (modes == MERGE) | (modes == SKIP)
            no_residual = (modes != CODED) & (modes != MERGE)
        usable = self.motion.usable(state)
        k = coder.choice(usable - 1 if predictor is None else predictor, usable) if usable > 1 else 0
        if cur is not None and estimate is None:
            estimate = self.motion.estimate(cur, state)
        guess = self.motion.predict(state, k, coder, estimate, cur)  # the motion coder codes what it leaves
        field_in = None
        if cur is not None:
            field_in = F.pixel_unshuffle((estimate if guess is None else estimate - guess) / FIELD_SCALE, 2)
        field = F.pixel_shuffle(self.mv(field_in, q, coder, "motion", size, no_motion), 2) * FIELD_SCALE
        if guess is not None:
            field = field + guess
        if modes is not None and no_motion.any():
            predicted = torch.zeros_like(field) if guess is None else guess
            field = torch.where(pixels(modes == COPY, 2), torch.zeros_like(field), field)
            field = torch.where(pixels((modes == MERGE) | (modes == SKIP), 2), predicted, field)
        pred = self.compensate(state, field)  # in the module's space (the identity maps for pixels)
        residual = None if cur is None else self.motion.extract(cur) - pred
        x_hat = self.motion.reconstruct(pred + self.res(residual, q, coder, "residual", size, no_residual))
        pred = self.motion.reconstruct(pred)
        if modes is not None:
            x_hat = torch.where(pixels((modes == PREDICT) | (modes == SKIP)), pred, x_hat)
            x_hat = torch.where(pixels(modes == COPY), ref, x_hat)
        return x_hat, pred, field, state.push(x_hat, field)
