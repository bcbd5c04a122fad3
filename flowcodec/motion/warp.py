"""Backward warping with flows in pixel units (decoder side)."""
import torch
import torch.nn.functional as F

from ..frames import pack, unpack


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` (B,C,H,W) at p + flow(p); flow (B,2,H,W) in pixels (x, y); borders replicate."""
    b, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    return F.grid_sample(img, torch.stack((gx, gy), dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def carried(flow: torch.Tensor) -> torch.Tensor:
    """The backward flow ``flow`` (B,2,H,W) of the last frame carried along itself onto the current
    grid: each pixel's motion if it kept its last velocity (the constant-velocity prediction)."""
    return warp(flow, flow)


def downsample_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow at half resolution, in half-resolution pixels."""
    return F.avg_pool2d(flow, 2) * 0.5


def upsample_flow(flow: torch.Tensor) -> torch.Tensor:
    """Flow at double resolution, in double-resolution pixels."""
    return F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=False) * 2.0


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
