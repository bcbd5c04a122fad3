"""Approach 5: motion decomposition — global camera motion plus local motion.

Most motion in video is the camera's: a handful of parameters describe it for the whole frame, as in
AV1's global motion and VVC's affine prediction, and only objects that move on their own need a dense
local field. Here the global part is fitted per frame by the encoder, coded with a fixed precision in the
module's own sub-stream ("global"), and the learned motion coder codes only the local difference between
the estimated flow and the global field (the codec's predictor mechanism: the global field is the
prediction). Compensation warps with global + local motion, so the whole chain trains end to end.

Predictors (the model order), chosen per frame by the encoder in R + λ·D like every predictor:

* 0 — none: the flow is coded as it is (the pyramid's coding);
* 1 — translation: 2 parameters, the flow of every pixel;
* 2 — affine (pan, zoom, rotation, shear): 6 parameters ``(a, b, c)`` with the field
  ``a + b·x/W + c·y/H`` at luma pixel (x, y) of a frame whose visible size is W×H: ``a`` is the flow at
  the top-left corner, ``b`` its change across the width, ``c`` across the height (the corner motion
  vectors of VVC's 6-parameter affine model, written as differences).

Parameters are integers in 1/``PEL`` luma pixel, each coded with a zero-mean Laplace of a fixed scale
(``PARAM_SCALES``: 8 pixels for ``a``, 1 pixel for ``b`` and ``c``).

Fitting (encoder only, ``fit``) is a robust weighted least-squares fit to the estimated flow: iteratively
reweighted with Cauchy weights whose scale follows the median residual, starting from the median flow,
so objects that move on their own (up to about half the frame) do not pull the camera model; the
translation is then refined by the prediction error of a few nearby values (``_closest``).
Estimation and compensation are those of the pyramid (approach 2), whose weights this module starts from.
"""
import torch

from .base import DecodedPictures, register
from .pyramid import PyramidFlow

PEL = 8  # global parameters are coded in 1/PEL luma pixel
SEARCH = 1  # the encoder tries the fitted translation ± up to SEARCH/PEL pixel each way (``_closest``)
COUNTS = (0, 2, 6)  # parameters of each predictor: none, translation, affine
PARAM_SCALES = (64.0, 64.0, 8.0, 8.0, 8.0, 8.0)  # Laplace scale of each parameter, in 1/PEL pixel


def _coordinates(h: int, w: int, size, step: int = 1, device=None):
    """x/W and y/H (each (h', w')) on the grid of every ``step``-th pixel of an h×w field, where W×H is
    the visible size (the whole field when ``size`` is None)."""
    vw, vh = size if size is not None else (w, h)
    ys = torch.arange(0, h, step, dtype=torch.float32, device=device) / vh
    xs = torch.arange(0, w, step, dtype=torch.float32, device=device) / vw
    return torch.meshgrid(ys, xs, indexing="ij")[::-1]


def global_field(params: torch.Tensor, shape, size) -> torch.Tensor:
    """The flow (B,2,h,w) of global parameters (B, 2 or 6) in 1/PEL pixel, for a field of ``shape``
    (h, w) whose visible size is ``size`` (W, H; None: all of it)."""
    p = params.float() / PEL
    h, w = shape
    field = p[:, :2, None, None].expand(p.shape[0], 2, h, w)
    if p.shape[1] == 6:
        x, y = _coordinates(h, w, size, device=p.device)
        field = field + p[:, 2:4, None, None] * x + p[:, 4:6, None, None] * y
    return field


@torch.no_grad()
def fit(flow: torch.Tensor, size, count: int, step: int = 4, rounds: int = 8, spread: float = 0.5):
    """Robust fit of the global model with ``count`` parameters (2 or 6) to the visible part of ``flow``
    (B,2,h,w), reading every ``step``-th pixel each way, with ``rounds`` of reweighting and a Cauchy
    scale of at least ``spread`` pixels; returns the parameters (B, count) in 1/PEL pixel, not rounded."""
    h, w = flow.shape[-2:]
    vw, vh = size if size is not None else (w, h)
    f = flow[:, :2, :vh:step, :vw:step].float()
    x, y = _coordinates(f.shape[-2] * step, f.shape[-1] * step, size, step, f.device)
    basis = torch.stack((torch.ones_like(x), x, y), -1).reshape(-1, 3)[:, :count // 2]  # (N, k)
    target = f.flatten(2).transpose(1, 2)  # (B, N, 2)
    coef = torch.zeros(f.shape[0], basis.shape[1], 2, device=f.device)
    coef[:, 0] = target.median(1).values
    ridge = 1e-6 * torch.eye(basis.shape[1], device=f.device)
    for _ in range(rounds):
        r = torch.linalg.vector_norm(target - basis @ coef, dim=-1)  # (B, N)
        scale = (1.5 * r.median(1, keepdim=True).values).clamp_min(spread)
        weighted = basis.T[None] / (1 + (r / scale) ** 2)[:, None, :]  # (B, k, N)
        coef = torch.linalg.solve(weighted @ basis + ridge, weighted @ target)
    return coef.reshape(f.shape[0], -1) * PEL  # (a_x, a_y, b_x, b_y, c_x, c_y)


@register("decomposed")
class DecomposedFlow(PyramidFlow):
    predictors = len(COUNTS)
    streams = ("global",)
    hyper = {"step": 4, "rounds": 8, "spread": 0.5}  # of the fit (encoder only): see ``fit``

    def usable(self, state: DecodedPictures) -> int:
        return self.predictors  # the global model needs nothing from earlier frames

    def predict(self, state: DecodedPictures, k: int, coder=None, estimate=None, cur=None):
        if k == 0:
            return None
        n = COUNTS[k]
        h, w = state.ref.shape[-2:]
        field = lambda p: global_field(p, (2 * h, 2 * w), state.size)
        params = None
        if estimate is not None:  # encoder only
            params = fit(estimate, state.size, n, **self.hyper).round()
            if cur is not None and not self.training:
                params = self._closest(params, cur, state, field)
        params = coder.integers(params, PARAM_SCALES[:n], "global")
        return field(params)

    def _closest(self, params, cur, state, field):
        """Encoder only: of the fitted parameters, those with the translation moved by up to ``SEARCH``
        steps of 1/PEL pixel each way, those with the translation rounded to whole pixels, and (affine)
        both translations alone, the ones whose compensated prediction has the least luma error. The flow
        estimate is accurate to a fraction of a pixel only, and a global model a fraction off shifts and
        blurs every block that takes it as it is (merge and skip blocks)."""
        candidates = []
        for dy in range(-SEARCH, SEARCH + 1):
            for dx in range(-SEARCH, SEARCH + 1):
                p = params.clone()
                p[:, 0] += dx
                p[:, 1] += dy
                candidates.append(p)
        whole = params.clone()
        whole[:, :2] = torch.round(params[:, :2] / PEL) * PEL
        candidates.append(whole)
        if params.shape[1] > 2:  # the affine model as a pure translation too, fitted or whole-pixel
            for p in (params, whole):
                candidates.append(torch.cat((p[:, :2], torch.zeros_like(p[:, 2:])), 1))
        errors = [float(((self.compensate(state, field(p)) - cur)[:, :4] ** 2).sum()) for p in candidates]
        return candidates[min(range(len(errors)), key=errors.__getitem__)]
