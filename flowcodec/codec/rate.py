"""One-pass rate control (``--bitrate``): each frame's quality chosen so that the stream meets an
average bit rate, with no second pass and no look-ahead, as x264's and x265's ABR mode does.

The model: a frame of kind k (intra or inter) coded at quality q costs c_k · 2^(SLOPE · q) bits, where
c_k, the kind's complexity, is re-estimated from every frame coded (a running mean in the log domain,
so one odd frame moves it only part of the way). At one quality an intra frame thus costs r =
c_intra / c_inter P-frames, and each frame is given bits by that weight (r for an intra frame, 1 for a
P-frame), so that every frame of a stable scene gets about the same quality, intra frames included:

* stream length known (the command line reads it from a y4m or yuv file's size): the target's bits
  not yet spent, split by weight over the frames left, whose periodic intra frames are known — the
  stream meets its target exactly, as far as the quality range allows;
* length unknown (a pipe): each intra period's target split by weight over its frames, less
  1/``HORIZON`` of what the stream has spent beyond those shares so far, so a misjudged frame is
  repaid over the next ones.

An intra frame the encoder adds itself (adaptive intra, at a scene cut) is not planned: it shows up as
overspending, which the frames after it repay (or, as the last frames of a stream, cannot). The
quality moves by at most ``MAX_STEP`` from one frame to the next, so it does not flicker, and stays on
the grid that a frame record stores (``options.QUALITY_STEPS``).
"""
import math

from .options import QUALITIES, snapped

SLOPE = 0.5  # log2 of a frame's bits gained per quality level (shipped pyramid, bundled clip: 0.3–0.65)
HORIZON = 16  # frames over which the controller repays over- or underspending
MAX_STEP = 1.0  # most the quality moves from one frame to the next
FIRST_BPP = {"intra": 0.25, "inter": 0.03}  # bits per pixel at quality 1 assumed before a frame is seen
MEMORY = {"intra": 0.5, "inter": 0.3}  # weight of a kind's newest frame in its complexity (after its first)


class RateControl:
    """Chooses each frame's quality for an average of ``kbps`` kilobits per second at ``fps`` frames
    per second. ``frames``: how many frames the stream will have, if known (the last frames then meet
    the target exactly, as far as the quality range allows)."""

    def __init__(self, kbps: float, fps: float, width: int, height: int, intra_period: int,
                 frames: int | None = None):
        if not (kbps > 0 and fps > 0):
            raise ValueError("bit rate and frame rate must be positive")
        self.frame_bits = 1000 * kbps / fps
        self.period, self.frames = intra_period, frames
        self.complexity = {k: math.log2(bpp * width * height) - SLOPE for k, bpp in FIRST_BPP.items()}
        self.spent, self.coded, self.last, self.seen = 0, 0, None, set()
        self.share = 0.0  # the target's bits given to the frame being coded
        self.allotted = 0.0  # the shares of the frames coded in this intra period and before (length unknown)

    def quality(self, since_intra: int) -> float:
        """The next frame's quality, given how many frames were coded since the last intra frame (0:
        the next one is an intra frame)."""
        kind = "intra" if since_intra % self.period == 0 else "inter"
        r = 2 ** (self.complexity["intra"] - self.complexity["inter"])  # an intra frame in P-frames
        weight = r if kind == "intra" else 1.0
        if self.frames is None:  # a share of each intra period's target; the overspending repaid
            if kind == "intra":  # an intra period's shares add up to its target: start again from there
                self.allotted = self.coded * self.frame_bits
            self.share = self.frame_bits * self.period / (r + self.period - 1) * weight
            want = self.share - (self.spent - self.allotted) / HORIZON
        else:  # what is left of the stream's target, by weight over the frames left
            left = max(1, self.frames - self.coded)
            first = -since_intra % self.period  # frames until the next periodic intra frame
            intra = 0 if first >= left else 1 + (left - 1 - first) // self.period
            self.share = (self.frames * self.frame_bits - self.spent) * weight / (r * intra + left - intra)
            want = self.share
        q = (math.log2(max(want, self.frame_bits * weight / 8)) - self.complexity[kind]) / SLOPE
        if self.last is not None:
            q = min(max(q, self.last - MAX_STEP), self.last + MAX_STEP)
        q = min(max(q, 1.0), float(QUALITIES))
        return snapped(q)

    def update(self, intra: bool, bits: int, quality: float):
        """Account a coded frame: its kind, size in bits and quality. The first frame of a kind replaces
        that kind's assumed complexity, and moves the other kind's by as much while it is unseen."""
        kind, other = ("intra", "inter") if intra else ("inter", "intra")
        step = math.log2(max(bits, 1)) - SLOPE * quality - self.complexity[kind]
        self.complexity[kind] += step * (MEMORY[kind] if kind in self.seen else 1.0)
        if other not in self.seen:
            self.complexity[other] += step
        self.seen.add(kind)
        self.spent += bits
        self.allotted += self.share
        self.coded += 1
        self.last = quality
