"""What a user chooses when coding, defined once: the quality ladder (λ of the rate-distortion loss and
x265 QP of HEVC intra frames per quality level), how a quality between levels is coded, and the intra
codec modes and presets. Plain Python, so the command line can import it without loading torch."""
import math

# λ per quality level (MSE on [0,1] samples), doubling per level; levels 7–9 (added 2026-11-26, 7956adb) reach the
# near-transparent range that x265 QP 22 and below covers
LAMBDAS = (96.0, 192.0, 384.0, 768.0, 1536.0, 3072.0, 6144.0, 12288.0, 24576.0)
INTRA_QP = (42, 38, 35, 32, 29, 26, 23, 20, 17)  # x265 QP of intra frames per quality level
QUALITIES = len(LAMBDAS)  # quality 1 … QUALITIES on the command line; index q = quality - 1 inside
QUALITY_STEPS = 16
"""A quality is any multiple of 1/QUALITY_STEPS from 1 to QUALITIES: a frame record stores
QUALITY_STEPS × quality in one byte. Between two levels the codec interpolates the levels' gains
geometrically (``entropy.hyper``), λ geometrically and the intra QP linearly."""


def quality_steps(quality: float) -> int:
    """``quality`` in steps of 1/QUALITY_STEPS (rounded to the nearest step), as a stream stores it."""
    return round(quality * QUALITY_STEPS)


def snapped(quality: float) -> float:
    """The quality a stream can store nearest to ``quality`` (itself when it is a step)."""
    return quality_steps(quality) / QUALITY_STEPS


def lam(quality: float) -> float:
    """λ of a quality (1 … QUALITIES): the ladder's λ, geometrically interpolated between levels."""
    lo, t = _between(quality)
    return LAMBDAS[lo] * (LAMBDAS[lo + 1] / LAMBDAS[lo]) ** t if t else LAMBDAS[lo]


def intra_qp(quality: float) -> int:
    """x265 QP of an HEVC intra frame at a quality: the ladder's, linearly interpolated and rounded."""
    lo, t = _between(quality)
    return round(INTRA_QP[lo] + t * (INTRA_QP[lo + 1] - INTRA_QP[lo])) if t else INTRA_QP[lo]


def _between(quality: float) -> tuple[int, float]:
    """The level index at or below ``quality`` and the fraction of the way to the next one."""
    if not 1 <= quality <= QUALITIES:
        raise ValueError(f"quality {quality} is outside 1..{QUALITIES}")
    lo = min(math.floor(quality), QUALITIES - 1) - 1
    return lo, quality - 1 - lo


AUTO = "auto"
"""The motion choice of a stream whose P-frames each use one of the approaches (``model.MotionSet``)."""

INTRA_MODES = ("hevc", "learned", "auto")
"""Encoder choices for intra frames: always type 0, always type 1, or per frame the cheaper in R+λD."""

PRESETS = ("fast", "medium", "slow", "veryslow")
"""Encoder presets (time against rate; the decoder and the stream are the same): fast codes each P-frame
with the default motion predictor and no merge pass, medium tries every predictor and the merge and skip
modes, slow and veryslow then search the kept coding's latents (``codec/search.py``; ``encoder.SEARCH``)."""
