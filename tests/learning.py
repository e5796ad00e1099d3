"""Did training learn? Large, deterministic effects only (see CONTRIBUTING.md): a trained run is
compared with the same network built untrained, never with a fixed quality bar."""

from __future__ import annotations

import dataclasses

import torch

import cvae
from cvae.methods import build_method


def built_untrained(run: cvae.Run) -> cvae.Run:
    """``run``'s network as its training started (same config, same seed), never trained."""
    torch.manual_seed(run.config.train.seed)
    method = build_method(run.config, run.image_shape).to(run.device).eval()
    return dataclasses.replace(run, method=method, epoch=0)


def reconstruction_mse(run: cvae.Run, images: torch.Tensor) -> float:
    """Mean squared error of the posterior-mean reconstructions of uint8 ``images``, in [0, 1]
    pixel units (comparable across likelihoods and value ranges)."""
    target = images.float() / 255
    return float(((run.to_unit(run.reconstruct(images)).cpu() - target) ** 2).mean())


def mse_ratio(run: cvae.Run, images: torch.Tensor) -> float:
    """Held-out reconstruction error of ``run`` over that of its built-untrained twin."""
    return reconstruction_mse(run, images) / reconstruction_mse(built_untrained(run), images)
