"""CR-VAE "medium" encoder and its decoder (CR-VAE code: model/variatonal_encoder.py, decoder.py).

Encoder: Conv(C -> 32, k3, s2, p0)-BN-ReLU, Conv(32 -> 64, k3, s2, p1)-BN-ReLU,
Conv(64 -> 128, k3, s2, p1)-ReLU (no BN; as in the code, unlike the paper's Table VI), flatten
4*4*128 = 2048 -> two Linear(2048 -> d) heads with no activation. Sizes 28 -> 13 -> 7 -> 4 and
32 -> 15 -> 8 -> 4.

Decoder: Linear(d -> 4096)-ReLU -> (256, 4, 4) -> ConvT(256 -> 128)-BN-ReLU ->
ConvT(128 -> 64)-BN-ReLU -> ConvT(64 -> 32)-BN-ReLU (all k3, s2) -> ConvT(32 -> C, k3, s1, p1) ->
logits (the reference applies Sigmoid). Paddings [1, 1, 0] / output paddings [0, 0, 1] for 28 px
(4 -> 7 -> 13 -> 28) and [1, 1, 1] / [1, 1, 1] for 32 px (4 -> 8 -> 16 -> 32). The ConvTs are
:class:`cvae.networks.kernels.FastConvTranspose2d`: ``nn.ConvTranspose2d``'s parameters, faster
on CPU.

Only 28x28 and 32x32 inputs are supported. With d=16: encoder 158,432 (1 channel) / 159,008
(3 channels) parameters, decoder 457,665 / 458,243.
"""

from __future__ import annotations

import torch
from torch import nn

from cvae.errors import ConfigError
from cvae.networks.kernels import FastConvTranspose2d

#: image size -> (paddings, output paddings) of the decoder's three stride-2 ConvTs.
DECODER_PADDINGS: dict[int, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    28: ((1, 1, 0), (0, 0, 1)),
    32: ((1, 1, 1), (1, 1, 1)),
}


def _check_size(size: int) -> None:
    if size not in DECODER_PADDINGS:
        raise ConfigError(
            f"the crvae-medium architecture supports only 28x28 and 32x32 images, got {size}x{size}"
        )


class CRVAEMediumEncoder(nn.Module):
    """``x [B, C, 28|32, 28|32] -> (mu [B, d], logvar [B, d])``; no activation on either."""

    feature_dim = 4 * 4 * 128

    def __init__(self, in_channels: int, size: int, latent_dim: int) -> None:
        super().__init__()
        _check_size(size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=3, stride=2, padding=0),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 128, kernel_size=3, stride=2, padding=1),
            nn.Flatten(),  # before the ReLU: see cvae.networks.conv.ConvEncoder
            nn.ReLU(),
        )
        self.mu = nn.Linear(self.feature_dim, latent_dim)
        self.logvar = nn.Linear(self.feature_dim, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return self.mu(h), self.logvar(h)


class CRVAEDecoder(nn.Module):
    """``z [B, d] -> logits [B, C, 28|32, 28|32]`` (pre-activation; the reference uses Sigmoid)."""

    def __init__(self, out_channels: int, size: int, latent_dim: int) -> None:
        super().__init__()
        _check_size(size)
        pads, out_pads = DECODER_PADDINGS[size]
        self.fc = nn.Sequential(nn.Linear(latent_dim, 4 * 4 * 256), nn.ReLU())
        layers: list[nn.Module] = []
        for (a, b), p, op in zip(((256, 128), (128, 64), (64, 32)), pads, out_pads, strict=True):
            layers += [
                FastConvTranspose2d(a, b, 3, stride=2, padding=p, output_padding=op),
                nn.BatchNorm2d(b),
                nn.ReLU(),
            ]
        layers.append(FastConvTranspose2d(32, out_channels, 3, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.fc(z).view(-1, 256, 4, 4))
        return out
