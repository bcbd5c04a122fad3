"""What a user chooses when coding, defined once: the quality ladder (λ of the rate-distortion loss and
x265 QP of HEVC intra frames per quality level) and the intra codec modes. Plain Python, so the
command line can import it without loading torch."""

# λ per quality level (MSE on [0,1] samples), doubling per level; levels 7–9 (added 2026-11-26, 7956adb) reach the
# near-transparent range that x265 QP 22 and below covers
LAMBDAS = (96.0, 192.0, 384.0, 768.0, 1536.0, 3072.0, 6144.0, 12288.0, 24576.0)
INTRA_QP = (42, 38, 35, 32, 29, 26, 23, 20, 17)  # x265 QP of intra frames per quality level
QUALITIES = len(LAMBDAS)  # quality 1 … QUALITIES on the command line; index q = quality - 1 inside

INTRA_MODES = ("hevc", "learned", "auto")
"""Encoder choices for intra frames: always type 0, always type 1, or per frame the cheaper in R+λD."""

PRESETS = ("fast", "medium", "slow", "veryslow")
"""Encoder presets (time against rate; the decoder and the stream are the same): fast codes each P-frame
with the default motion predictor and no merge pass, medium tries every predictor and the merge and skip
modes, slow and veryslow then search the kept coding's latents (``codec/search.py``; ``encoder.SEARCH``)."""
