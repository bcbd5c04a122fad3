"""Network building blocks shared by the codecs and the motion modules."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import exact


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes exactly inside ``exact()`` (``layers.exact``, rule 1)."""

    def forward(self, x):
        if not exact.active():
            return super().forward(x)
        return exact.conv(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                          dilation=self.dilation, groups=self.groups)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` that computes exactly inside ``exact()`` (``layers.exact``, rule 1)."""

    def forward(self, x):
        if not exact.active():
            return super().forward(x)
        return exact.conv(x, self.weight, self.bias, transposed=True, stride=self.stride, padding=self.padding,
                          output_padding=self.output_padding, groups=self.groups, dilation=self.dilation)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d`` (stride 1, no padding) of x with a computed kernel; exact inside ``exact()``."""
    return exact.conv(x, weight, bias) if exact.active() else F.conv2d(x, weight, bias)


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> Conv2d:
    return Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> ConvTranspose2d:
    """Transposed conv that exactly multiplies the spatial size by ``stride``."""
    return ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al., ICLR 2016), y = x / sqrt(beta + gamma * x^2).

    With ``inverse`` it multiplies instead (IGDN, used in synthesis transforms). beta and gamma are kept
    positive by squaring a reparameterized value.
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if exact.active():  # x² on the grid, an exact sum, then a correctly rounded √ and × or ÷
            x = exact.grid(x)
            norm = exact.conv(x * x, self.gamma.abs(), self.beta.abs() + 1e-6)
            return x * torch.sqrt(norm) if self.inverse else x / torch.sqrt(norm)
        norm = F.conv2d(x * x, self.gamma.abs(), self.beta.abs() + 1e-6)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip: the refinement network's unit."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.LeakyReLU(0.1), conv(channels, channels))

    def forward(self, x):
        return x + self.body(x)
