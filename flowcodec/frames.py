"""Frames as network tensors: YUV 4:2:0 packed into 6 channels at half resolution.

Luma is split into its four 2x2 phases (pixel-unshuffle) and stacked with U and V, so the codec works
on the native 4:2:0 samples (no colour conversion, the metric is PSNR-YUV) at a quarter of the pixels.
Sizes are padded by edge replication to a multiple of ``ALIGN`` luma pixels and cropped on output.
"""
import numpy as np
import torch
import torch.nn.functional as F

ALIGN = 64  # luma alignment: packed 2x, analysis 8x, hyper-analysis 4x


def pack(y: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) luma + (B,2,H/2,W/2) chroma -> (B,6,H/2,W/2)."""
    return torch.cat((F.pixel_unshuffle(y, 2), uv), dim=1)


def unpack(x: torch.Tensor):
    """(B,6,H/2,W/2) -> luma (B,1,H,W), chroma (B,2,H/2,W/2)."""
    return F.pixel_shuffle(x[:, :4], 2), x[:, 4:]


def padded_size(width: int, height: int):
    """Luma size the network codes for a frame of this size."""
    up = lambda v: -(-v // ALIGN) * ALIGN
    return up(width), up(height)


def to_tensor(frame, width: int, height: int) -> torch.Tensor:
    """uint8 (y, u, v) planes -> padded packed tensor (1,6,Hp/2,Wp/2) in [0,1]."""
    wp, hp = padded_size(width, height)
    y, u, v = (np.asarray(p, dtype=np.float32) / 255.0 for p in frame)
    y = np.pad(y, ((0, hp - y.shape[0]), (0, wp - y.shape[1])), mode="edge")
    uv = np.stack([np.pad(c, ((0, hp // 2 - c.shape[0]), (0, wp // 2 - c.shape[1])), mode="edge")
                   for c in (u, v)])
    return pack(torch.from_numpy(y)[None, None], torch.from_numpy(uv)[None])


def to_frame(x: torch.Tensor, width: int, height: int):
    """Packed tensor -> uint8 (y, u, v) planes cropped to the frame size (round half up, clip)."""
    y, uv = unpack(x)
    q = lambda t: np.floor(t.detach().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    cw, ch = (width + 1) // 2, (height + 1) // 2
    return q(y[0, 0, :height, :width]), q(uv[0, 0, :ch, :cw]), q(uv[0, 1, :ch, :cw])


def weighted_se(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per packed pixel (B,H,W), the squared error weighted like PSNR-YUV: (6·SE_Y + SE_U + SE_V)/8,
    with SE_Y the mean over the four luma phases. The one definition of the codec's distortion."""
    se = (a - b) ** 2
    return (6 * se[:, :4].mean(dim=1) + se[:, 4] + se[:, 5]) / 8


def quantize_frame(x: torch.Tensor) -> torch.Tensor:
    """Round a packed frame to 8-bit levels k/255 (what a decoder stores as its reference). When ``x``
    requires gradients the rounding is straight-through (the clamp is not), so training sees the
    decoder's values and still propagates errors through its references."""
    c = x.clamp(0, 1)
    q = torch.floor(c * 255.0 + 0.5) / 255.0
    return c + (q - c).detach() if x.requires_grad else q


NEUTRAL = 128 / 255.0  # the 8-bit chroma value of gray


def neutral_chroma(x: torch.Tensor) -> torch.Tensor:
    """A packed frame with its chroma exactly gray (8-bit 128): how a monochrome stream stores frames."""
    return torch.cat((x[:, :4], torch.full_like(x[:, 4:], NEUTRAL)), dim=1)


def repad(x: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """A packed frame whose padding is replaced by edge replication of its visible width x height part,
    exactly as ``to_tensor`` pads: what lies outside the frame never depends on what was coded there."""
    y, uv = unpack(x)
    (hp, wp), cw, ch = y.shape[-2:], (width + 1) // 2, (height + 1) // 2
    y = F.pad(y[..., :height, :width], (0, wp - width, 0, hp - height), mode="replicate")
    uv = F.pad(uv[..., :ch, :cw], (0, wp // 2 - cw, 0, hp // 2 - ch), mode="replicate")
    return pack(y, uv)
