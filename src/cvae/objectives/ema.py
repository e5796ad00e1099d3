"""Exponential moving average (momentum) of network parameters: the MoCo key encoder.

He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning"
(CVPR 2020); used by CR-VAE (Lygerakis & Rueckert, 2023) with m = 0.99 every step (its code).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """In place, for every *parameter*: ``theta_t <- m * theta_t + (1 - m) * theta_s``.

    ``target`` and ``source`` must have the same parameter names and shapes. Buffers (e.g.
    BatchNorm running statistics) are not averaged: the target keeps its own, updated by its own
    forward passes, as in the CR-VAE and MoCo code. Runs under ``no_grad``; ``momentum`` in [0, 1]
    (1: target frozen, 0: copy of the source).
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    src = dict(source.named_parameters())
    tgt = dict(target.named_parameters())
    if src.keys() != tgt.keys():
        raise ValueError(
            f"parameter names differ: only in target {sorted(tgt.keys() - src.keys())}, "
            f"only in source {sorted(src.keys() - tgt.keys())}"
        )
    for name, p_t in tgt.items():
        p_s = src[name]
        if p_t.shape != p_s.shape:
            raise ValueError(f"shape mismatch for '{name}': {p_t.shape} vs {p_s.shape}")
        p_t.mul_(momentum).add_(p_s.detach().to(p_t), alpha=1.0 - momentum)


def make_ema_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with ``requires_grad=False`` on every parameter (and no ``.grad``).

    The MoCo / CR-VAE key-encoder initialisation: same weights and buffers as the query encoder,
    updated afterwards only by :func:`ema_update` (and its own BatchNorm statistics).
    """
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
        p.grad = None
    return twin
