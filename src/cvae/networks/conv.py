"""One parametric conv encoder/decoder builder for any image size and channel count.

The strided layers are :mod:`cvae.networks.kernels`' ``nn.Conv2d`` / ``nn.ConvTranspose2d``
subclasses (same parameters; faster kernels on CPU where the transposed direction has few channels).

Geometry of the CVAE paper's code (CVAE code: models/*_vae.py): every encoder layer is
Conv(k4, s2, p1) + ReLU (size -> floor(size/2)); the decoder is Linear -> reshape ->
ConvT(k4, s2, p1) + ReLU (size doubles) for every hidden layer, and a last ConvT that lands exactly
on the input size. MNIST (28, channels 8/16/32): 28->14->7->3, flatten 288; 3->6->12->28.
CIFAR-10 (32, channels 32/64/128/256): 32->16->8->4->2, flatten 1024; 2->4->...->32.
"""

from __future__ import annotations

import torch
from torch import nn

from cvae.errors import ConfigError
from cvae.networks.kernels import FastConv2d, FastConvTranspose2d, conv_transpose2d


def conv_sizes(size: int, depth: int) -> list[int]:
    """Spatial sizes through ``depth`` Conv(k4, s2, p1) layers, input first."""
    sizes = [size]
    for _ in range(depth):
        sizes.append(sizes[-1] // 2)
    if sizes[-1] < 1:
        raise ConfigError(f"{depth} stride-2 convs are too many for {size}x{size} images")
    return sizes


class ConvEncoder(nn.Module):
    """``x [B, C, H, W] -> (mu [B, d], logvar [B, d])``; no activation on either output."""

    def __init__(
        self, in_channels: int, size: int, channels: list[int], latent_dim: int, batchnorm: bool
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for ch in channels:
            layers.append(FastConv2d(prev, ch, 4, 2, 1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.ReLU())
            prev = ch
        # The last ReLU after the flatten (the same values): flattening a channels-last map copies
        # it to NCHW order, and a ReLU before it would run its backward on mixed memory formats
        # (a channels-last output, an NCHW gradient), which is ~40x slower on the CPU.
        self.features = nn.Sequential(*layers[:-1], nn.Flatten(), layers[-1])
        flat = channels[-1] * conv_sizes(size, len(channels))[-1] ** 2
        self.mu = nn.Linear(flat, latent_dim)
        self.logvar = nn.Linear(flat, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class PaddedConvTranspose2d(nn.Module):
    """ConvT(k4, s2, padding) followed by ``extra`` output rows/cols that receive only the bias.

    This is exactly what ``output_padding=extra`` computes, but legal for ``extra >= stride``: the
    CVAE reference's ``ConvT(8->1, k4, s2, p0, output_padding=2)`` (12 -> 28) fails on CPU/CUDA
    (CVAE paper's network); here it is ConvT(p0, no bias) -> zero-pad right/bottom by 2 -> add bias
    (:func:`cvae.networks.kernels.conv_transpose2d`). Parameters ``conv.weight`` and ``bias``.
    """

    def __init__(self, in_ch: int, out_ch: int, padding: int, extra: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 4, 2, padding, bias=False)
        self.bias = nn.Parameter(torch.empty(out_ch))
        bound = 1.0 / (out_ch * 16) ** 0.5  # nn.ConvTranspose2d's default bias init
        nn.init.uniform_(self.bias, -bound, bound)
        self.padding, self.extra = padding, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = (2 * n + 2 - 2 * self.padding + self.extra for n in x.shape[2:])
        return conv_transpose2d(x, self.conv.weight, self.bias, 2, self.padding, (h, w))


def _final_layer(in_ch: int, out_ch: int, in_size: int, out_size: int) -> nn.Module:
    """Last ConvT from ``in_size`` to exactly ``out_size`` (reference geometry when possible)."""
    if out_size == 2 * in_size:
        return FastConvTranspose2d(in_ch, out_ch, 4, 2, 1)
    if out_size == 2 * in_size + 1:
        return FastConvTranspose2d(in_ch, out_ch, 4, 2, 1, output_padding=1)
    if out_size >= 2 * in_size + 2:
        return PaddedConvTranspose2d(in_ch, out_ch, 0, out_size - 2 * in_size - 2)
    raise ConfigError(f"cannot decode {in_size}x{in_size} to {out_size}x{out_size}")


class ConvDecoder(nn.Module):
    """``z [B, d] -> logits [B, C, H, W]`` (pre-activation; the model applies the activation)."""

    def __init__(
        self, out_channels: int, size: int, channels: list[int], latent_dim: int, batchnorm: bool
    ) -> None:
        super().__init__()
        sizes = conv_sizes(size, len(channels))
        self.start = (channels[-1], sizes[-1], sizes[-1])
        self.fc = nn.Linear(latent_dim, channels[-1] * sizes[-1] ** 2)
        layers: list[nn.Module] = []
        rev = channels[::-1]
        cur = sizes[-1]
        for prev, ch in zip(rev[:-1], rev[1:], strict=True):
            layers.append(FastConvTranspose2d(prev, ch, 4, 2, 1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.ReLU())
            cur *= 2
        layers.append(_final_layer(rev[-1], out_channels, cur, size))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.fc(z).view(-1, *self.start))
        return out


class ProjectionHead(nn.Module):
    """MLP ``z [B, d] -> p [B, sizes[-1]]``: Linear-ReLU between layers (SimCLR head).

    ``final_relu=True`` adds a ReLU after the last layer, as the CVAE reference code does
    (projections become non-negative, so cosine similarities lie in [0, 1]).
    """

    def __init__(self, in_dim: int, sizes: list[int], final_relu: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dims = [in_dim, *sizes]
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 1 or final_relu:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(z)
        return out
