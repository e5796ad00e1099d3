"""Posterior-collapse metrics on encoded test features (CR-VAE paper, spec 5.5)."""

from __future__ import annotations

from typing import Any

import torch

from cvae.objectives import gaussian_kl


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> dict[str, Any]:
    """AU = #{j : Var_x[mu_j] >= threshold}, unbiased variance over the set (CR-VAE code, ">=").

    ``mu: [N, d]`` posterior means of the evaluation set.
    """
    var = mu.double().var(dim=0, unbiased=True)
    return {
        "value": int((var >= threshold).sum()),
        "protocol": {
            "name": "active_units",
            "definition": "#latent dims with Var over the set of mu_j >= delta",
            "delta": threshold,
            "variance": "unbiased (n-1)",
            "n": int(mu.shape[0]),
            "latent_dim": int(mu.shape[1]),
            "per_dim_variance": [round(float(v), 6) for v in var],
        },
    }


def mean_kl(mu: torch.Tensor, logvar: torch.Tensor) -> dict[str, Any]:
    """Analytic KL(q(z|x) || N(0, I)) summed over dims, averaged over the set (nats), plus the
    per-dimension means."""
    per_dim = gaussian_kl(mu, logvar).double().mean(0)
    return {
        "value": float(per_dim.sum()),
        "protocol": {
            "name": "kl",
            "definition": "mean over the set of sum_j KL(q(z_j|x) || N(0, 1)), analytic, nats",
            "n": int(mu.shape[0]),
            "per_dim": [round(float(v), 6) for v in per_dim],
        },
    }
