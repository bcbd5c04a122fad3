"""Backward warping with flows in pixel units (decoder side)."""
import torch
import torch.nn.functional as F

from ..frames import pack, unpack
from ..layers.exact import snap


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (B,C,H,W) at p + flow(p), bilinearly; flow (B,2,H,W) in pixels (x, y); positions are
    clamped to the frame (borders replicate, as ``grid_sample``'s border mode with aligned corners).
    Written as element-wise operations in a fixed order, it computes the same bits on every machine
    (``layers.exact``, rule 2), in training as in coding."""
    b, c, h, w = img.shape
    px = (torch.arange(w, dtype=flow.dtype, device=flow.device) + flow[:, 0]).clamp(0, w - 1)
    py = (torch.arange(h, dtype=flow.dtype, device=flow.device)[:, None] + flow[:, 1]).clamp(0, h - 1)
    x0, y0 = px.floor(), py.floor()
    fx, fy = (px - x0)[:, None], (py - y0)[:, None]
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
    flat = img.reshape(b, c, h * w)
    at = lambda y, x: flat.gather(2, (y * w + x).reshape(b, 1, h * w).expand(b, c, h * w)).reshape(b, c, h, w)
    v00, v01, v10, v11 = at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)
    top = v00 + fx * (v01 - v00)
    bottom = v10 + fx * (v11 - v10)
    return top + fy * (bottom - top)


def carried(flow: torch.Tensor) -> torch.Tensor:
    """The backward flow ``flow`` (B,2,H,W) of the last frame carried along itself onto the current
    grid: each pixel's motion if it kept its last velocity (the constant-velocity prediction)."""
    return warp(flow, flow)


def downsample_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow at half resolution, in half-resolution pixels."""
    return F.avg_pool2d(snap(flow), 2) * 0.5


def upsample_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow at double resolution, in double-resolution pixels."""
    return F.interpolate(snap(flow), scale_factor=2, mode="bilinear", align_corners=False) * 2.0


def warp_frame(ref: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Warp a packed 4:2:0 frame: luma with the full-resolution flow, chroma with the half-res flow."""
    y, uv = unpack(ref)
    return pack(warp(y, flow), warp(uv, downsample_flow(flow)))


def occluded(backward: torch.Tensor, forward: torch.Tensor, alpha: float = 0.01, beta: float = 0.5):
    """Pixels of the current frame whose motion fails the forward-backward consistency check (Sundaram
    et al., ECCV 2010): following ``backward`` (current → reference) and then ``forward`` (reference →
    current) should come back to the start; where |b + f(p + b)|² > alpha (|b|² + |f|²) + beta, the
    pixel is occluded or disoccluded (or the flow is wrong). Returns a (B,1,H,W) bool mask."""
    f = warp(forward, backward)
    gap = (backward + f).square().sum(1, keepdim=True)
    return gap > alpha * (backward.square().sum(1, keepdim=True) + f.square().sum(1, keepdim=True)) + beta
