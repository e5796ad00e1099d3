"""A small CNN classifier whose penultimate layer is the domain feature space for FID."""

from __future__ import annotations

import torch
from torch import nn


class DomainClassifier(nn.Module):
    """``x [B, C, H, W] in [0, 1] -> logits [B, n_classes]``; :meth:`features` gives ``[B, 128]``.

    Conv(C->16, k3, s2, p1) + ReLU -> Conv(16->32, k3, s2, p1) + ReLU -> AdaptiveAvgPool(7x7) ->
    Linear(1568 -> 128) + ReLU (the features) -> Linear(128 -> classes). Strided convs keep it
    CPU-cheap (~0.45 MMAC per MNIST image). Inputs are centred by subtracting 0.5.
    """

    feature_dim = 128

    def __init__(self, in_channels: int, n_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(7),
            nn.Flatten(),
            nn.Linear(32 * 49, self.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations ``[B, 128]`` (after the ReLU)."""
        out: torch.Tensor = self.body(x - 0.5)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out
