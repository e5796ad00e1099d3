"""Analytic KL divergence of a diagonal Gaussian posterior from the standard normal prior."""

from __future__ import annotations

import torch


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-dimension ``KL(N(mu, exp(logvar)) || N(0, 1)) = -(1 + logvar - mu^2 - exp(logvar)) / 2``.

    ``mu, logvar: [B, d]`` -> ``[B, d]`` in float32. Sum over ``d`` and mean over the batch gives
    the KL term every seed paper's code uses (see :func:`kl_loss`).
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp())


def kl_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Scalar KL: sum over latent dims, mean over the batch (``sum_{b,j} KL_{b,j} / B``)."""
    return gaussian_kl(mu, logvar).sum(1).mean()
