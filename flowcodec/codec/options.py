"""What a user chooses when coding, defined once: the quality ladder (λ of the rate-distortion loss and
x265 QP of HEVC intra frames per quality level) and the intra codec modes. Plain Python, so the
command line can import it without loading torch."""

LAMBDAS = (96.0, 192.0, 384.0, 768.0, 1536.0, 3072.0)  # λ per quality level (MSE on [0,1] samples)
INTRA_QP = (42, 38, 35, 32, 29, 26)  # x265 QP of intra frames per quality level (tuned to the P-frames)
QUALITIES = len(LAMBDAS)  # quality 1 … QUALITIES on the command line; index q = quality - 1 inside

INTRA_MODES = ("hevc", "learned", "auto")
"""Encoder choices for intra frames: always type 0, always type 1, or per frame the cheaper in R+λD."""
