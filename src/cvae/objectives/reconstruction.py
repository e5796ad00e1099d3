"""Reconstruction likelihoods with explicit reductions.

Reductions (``reduction``):
    "mean": average over batch *and* pixels, ``sum_{b,i} l_{b,i} / (B * D)`` (the CVAE code's
        ``F.mse_loss(x_hat, x)``; effective Gaussian variance D*beta/2).
    "sum":  sum over the D pixel values of each image, then mean over the batch,
        ``sum_{b,i} l_{b,i} / B`` (per-image SSE / NLL; CR-VAE and AAVAE).
All functions return a float32 scalar.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _reduce(per_value: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_value.mean()
    if reduction == "sum":
        return per_value.flatten(1).sum(1).mean()
    raise ValueError(f"unknown reduction '{reduction}'")


def mse(x_hat: torch.Tensor, x: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Squared error ``(x_hat - x)^2``; ``x_hat, x: [B, C, H, W]``."""
    return _reduce((x_hat.float() - x.float()).pow(2), reduction)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Binary cross-entropy ``-[x log s(l) + (1-x) log(1-s(l))]`` from *logits* (stable)."""
    per = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return _reduce(per, reduction)


def gaussian_nll(
    x_hat: torch.Tensor, x: torch.Tensor, log_scale: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """``-log N(x; x_hat, sigma^2)`` with ``sigma = exp(log_scale)`` (scalar, fixed or learned).

    Per value: ``(x - x_hat)^2 / (2 sigma^2) + log sigma + log(2 pi) / 2`` (AAVAE, sigma = 1).
    """
    log_scale = log_scale.float()
    per = (x.float() - x_hat.float()).pow(2) * torch.exp(-2.0 * log_scale) / 2.0
    per = per + log_scale + 0.5 * math.log(2 * math.pi)
    return _reduce(per, reduction)
