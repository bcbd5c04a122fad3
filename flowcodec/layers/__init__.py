"""Network building blocks shared by the codecs and the motion modules."""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed conv that exactly multiplies the spatial size by ``stride``."""
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1)


@contextlib.contextmanager
def one_thread():
    """Run what the decoder computes on one thread. oneDNN picks convolution kernels by thread count,
    and some of them (1×1 and small transposed convolutions) then round differently; a decoder whose
    output depended on the machine's threads would not decode other machines' files exactly. The
    encoder-only analysis (motion estimation, analysis transforms) may use any number of threads, and
    so may training (with gradients enabled this does nothing)."""
    if torch.is_grad_enabled():
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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
        norm = F.conv2d(x * x, self.gamma.abs(), self.beta.abs() + 1e-6)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class ResBlock(nn.Module):
    """Two 3x3 convs with a skip: the refinement network's unit."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels), nn.LeakyReLU(0.1), conv(channels, channels))

    def forward(self, x):
        return x + self.body(x)
