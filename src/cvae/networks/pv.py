"""PyTorch-VAE ``VanillaVAE`` encoder/decoder, the BTVAE paper's architecture.

BTVAE code (models/bt_vae.py): 5 x [Conv(k3, s2, p1) -> BN -> LeakyReLU(0.01)] with hidden
channels 32, 64, 128, 256, 512 (64 -> 32 -> 16 -> 8 -> 4 -> 2), flatten -> fc_mu, fc_var (no
activation). Decoder: Linear(d -> 512*2*2) -> view -> 4 x [ConvT(k3, s2, p1, op1) -> BN ->
LeakyReLU] over the reversed hidden dims -> ConvT(32 -> 32, k3, s2, p1, op1) -> BN -> LeakyReLU ->
Conv(32 -> 3, k3, p1) (-> Tanh in the reference; here the decoder returns logits and the VAE applies
the configured activation).

Generalised: the reference hard-codes 512 in the decoder view and 3 output channels, so only
3x64x64 works there. Here the view uses ``hidden[-1]``, any channel count ``C`` works, and any
square size divisible by ``2 ** len(hidden)`` works (64 with the default five layers; 32 with four).
With the defaults on 3x64x64 and d=128: 3,937,635 parameters, encoder + heads 2,095,104.
"""

from __future__ import annotations

import torch
from torch import nn

from cvae.errors import ConfigError
from cvae.networks.kernels import FastConvTranspose2d

DEFAULT_HIDDEN: tuple[int, ...] = (32, 64, 128, 256, 512)


def pv_bottleneck_size(size: int, hidden: list[int] | tuple[int, ...]) -> int:
    """Spatial size after the encoder's ``len(hidden)`` stride-2 convs (exact halvings)."""
    if not hidden:
        raise ConfigError("the pv architecture needs at least one hidden layer")
    factor: int = 2 ** len(hidden)
    if size % factor != 0:
        raise ConfigError(
            f"the pv architecture with {len(hidden)} layers needs a size divisible by {factor}, "
            f"got {size}x{size}"
        )
    return size // factor


class PVEncoder(nn.Module):
    """``x [B, C, H, W] -> (mu [B, d], logvar [B, d])``; no activation on either output."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...] = DEFAULT_HIDDEN,
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        s = pv_bottleneck_size(size, hidden)
        layers: list[nn.Module] = []
        prev = in_channels
        for h in hidden:
            layers.append(
                nn.Sequential(
                    nn.Conv2d(prev, h, kernel_size=3, stride=2, padding=1),
                    nn.BatchNorm2d(h),
                    nn.LeakyReLU(),
                )
            )
            prev = h
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = hidden[-1] * s * s
        self.fc_mu = nn.Linear(self.feature_dim, latent_dim)
        self.fc_var = nn.Linear(self.feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.fc_mu(h), self.fc_var(h)


class PVDecoder(nn.Module):
    """``z [B, d] -> logits [B, C, H, W]`` (pre-activation; the reference applies Tanh)."""

    def __init__(
        self,
        out_channels: int,
        size: int,
        latent_dim: int,
        hidden: list[int] | tuple[int, ...] = DEFAULT_HIDDEN,
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        s = pv_bottleneck_size(size, hidden)
        self.start = (hidden[-1], s, s)
        self.decoder_input = nn.Linear(latent_dim, hidden[-1] * s * s)
        rev = hidden[::-1]
        layers: list[nn.Module] = [_up_block(a, b) for a, b in zip(rev[:-1], rev[1:], strict=True)]
        self.decoder = nn.Sequential(*layers)
        self.final_layer = nn.Sequential(
            _up_block(rev[-1], rev[-1]),
            nn.Conv2d(rev[-1], out_channels, kernel_size=3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_input(z).view(-1, *self.start)
        out: torch.Tensor = self.final_layer(self.decoder(h))
        return out


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """ConvT(k3, s2, p1, output_padding=1) -> BN -> LeakyReLU(0.01): doubles the size."""
    return nn.Sequential(
        FastConvTranspose2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1, output_padding=1),
        nn.BatchNorm2d(out_ch),
        nn.LeakyReLU(),
    )
