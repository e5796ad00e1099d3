"""An example of a user's own networks for cvae: an MLP encoder/decoder (docs/networks.md).

Train with it, without editing cvae::

    PYTHONPATH=examples cvae train --dataset digits --set model.module=my_nets \
        --set model.arch=mlp --set model.channels=[64] --out runs/mlp

``model.channels`` gives the hidden widths (null: one layer of 128).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cvae.errors import ConfigError
from cvae.networks import register_architecture


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, ReLU after each but the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """``x [B, C, H, W] -> (mu [B, d], logvar [B, d])``."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, hidden: list[int]):
        super().__init__()
        self.net = _mlp([math.prod(image_shape), *hidden, 2 * latent_dim])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar


class MLPDecoder(nn.Module):
    """``z [B, d] -> logits [B, C, H, W]`` (cvae applies the output activation)."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, hidden: list[int]):
        super().__init__()
        self.image_shape = image_shape
        self.net = _mlp([latent_dim, *hidden[::-1], math.prod(image_shape)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(z).view(-1, *self.image_shape)
        return out


@register_architecture("mlp")
def build_mlp(
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    channels: list[int] | None,
    batchnorm: bool,
) -> tuple[nn.Module, nn.Module]:
    """The MLP pair; ``channels`` (``model.channels``) are the hidden widths."""
    hidden = channels or [128]
    if batchnorm:
        raise ConfigError("the mlp architecture has no batchnorm option")
    return MLPEncoder(image_shape, latent_dim, hidden), MLPDecoder(image_shape, latent_dim, hidden)
