"""Posterior-collapse metrics on encoded test features (CR-VAE paper, Sec. IV).

All functions take the posterior parameters of the evaluation set, ``mu, logvar: [N, d]``, and
return ``{"value": number, "protocol": {...}}`` (nats unless stated).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cvae.objectives import gaussian_kl

LOG_2PI = math.log(2 * math.pi)


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
    """Analytic KL(q(z|x) || N(0, I)) summed over dims, averaged over the set (nats); the
    per-dimension means are in the extra key ``per_dim``."""
    per_dim = gaussian_kl(mu, logvar).double().mean(0)
    return {
        "value": float(per_dim.sum()),
        "per_dim": [round(float(v), 6) for v in per_dim],
        "protocol": {
            "name": "kl",
            "definition": "mean over the set of sum_j KL(q(z_j|x) || N(0, 1)), analytic, nats",
            "n": int(mu.shape[0]),
        },
    }


def log_aggregate_posterior(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    chunk: int = 1024,
    own_eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """``log q(z_i) = logsumexp_j log N(z_i; mu_j, diag(exp(logvar_j))) - log N`` for each row.

    ``z: [M, d]`` points; ``mu, logvar: [N, d]`` the mixture components (equal weights 1/N).
    Returns ``[M]`` float64. The squared Mahalanobis terms are expanded into matrix products and
    the components are reduced ``chunk`` at a time with a running logsumexp, so memory is
    ``O(M * chunk)``: never an ``[M, N, d]`` tensor.

    ``own_eps: [M, d]``, when each ``z_i = mu_i + exp(logvar_i / 2) * own_eps_i`` was drawn from
    its own component (``M <= N``): the term ``j = i`` is then computed from ``own_eps`` directly.
    The expansion cancels ``z^2 / v`` against ``m^2 / v``, which loses every digit for a tiny
    variance (``logvar`` near -100 gave an MI of -7e25); the own term is the one that matters.
    """
    z, mu, logvar = z.double(), mu.double(), logvar.double()
    # -2 log N(z; m, diag(v)) = z^2 . (1/v) - 2 z . (m/v) + sum(m^2/v + log v) + d log 2 pi:
    # one matrix product of [z^2, z, 1] with a per-component [1/v, -2 m/v, const] row.
    precision = torch.exp(-logvar)
    const = (mu.pow(2) * precision + logvar).sum(1, keepdim=True) + z.shape[1] * LOG_2PI
    points = torch.cat([z.pow(2), z, torch.ones_like(z[:, :1])], dim=1)  # [M, 2d + 1]
    comps = torch.cat([precision, -2.0 * mu * precision, const], dim=1)  # [N, 2d + 1]
    if own_eps is not None:
        m = z.shape[0]
        own = -0.5 * (own_eps.double().pow(2) + logvar[:m] + LOG_2PI).sum(1)  # [M]
    total = torch.full((z.shape[0],), -math.inf, dtype=torch.float64, device=z.device)
    for start in range(0, comps.shape[0], chunk):
        log_dens = (points @ comps[start : start + chunk].T).mul_(-0.5)  # [M, chunk]
        if own_eps is not None:  # the diagonal j = i of this chunk, rows start..start+chunk
            mine = torch.arange(start, min(start + log_dens.shape[1], m), device=z.device)
            log_dens[mine, mine - start] = own[mine]
        total = torch.logaddexp(total, torch.logsumexp(log_dens, dim=1))
    return total - math.log(mu.shape[0])


def _neg_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """``E_q[log q(z|x)] = -d/2 log 2 pi - 1/2 sum_j (1 + logvar_j)`` per row, float64 ``[N]``."""
    logvar = logvar.double()
    return -0.5 * logvar.shape[1] * LOG_2PI - 0.5 * (1.0 + logvar).sum(1)


def mutual_information(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    batch_size: int | None = 256,
    seed: int = 0,
    chunk: int = 1024,
) -> dict[str, Any]:
    """I(x; z) under the aggregate posterior, the jxhe/vae-lagging-encoder ``calc_mi`` estimator
    with its **positive** sign (the CR-VAE code returns -MI).

    For each batch of ``batch_size`` rows (in order; ``None``: the whole set as one batch): draw
    one ``z_i ~ q(z|x_i)``; ``MI_b = mean_i E_q[log q(z|x_i)] - mean_i log q_b(z_i)`` with
    ``q_b = (1/B) sum_{j in batch} q(z|x_j)``; the value is the batch-size-weighted mean of
    ``MI_b``. It is at most ``log B`` up to Monte-Carlo noise of the entropy term. ``seed``
    drives a CPU generator for the samples.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    n = mu.shape[0]
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(mu.shape, generator=gen, dtype=torch.float64)
    z = mu.double().cpu() + eps * torch.exp(0.5 * logvar.double().cpu())
    mu, logvar = mu.double().cpu(), logvar.double().cpu()
    step = n if batch_size is None else batch_size
    total = 0.0
    for start in range(0, n, step):
        sl = slice(start, start + step)
        log_qz = log_aggregate_posterior(z[sl], mu[sl], logvar[sl], chunk, own_eps=eps[sl])
        total += float((_neg_entropy(logvar[sl]) - log_qz).sum())
    batch = "whole set (N)" if batch_size is None else f"consecutive batches of {batch_size}"
    return {
        "value": total / n,
        "protocol": {
            "name": "mutual_information",
            "definition": "E_x E_q(z|x)[log q(z|x) - log q(z)], q(z) = mean of the posteriors "
            "in the batch, one z per x, E_q[log q(z|x)] analytic (jxhe calc_mi, + sign)",
            "aggregate_posterior": batch,
            "batch_size": n if batch_size is None else int(batch_size),
            "weighting": "batch-size-weighted mean over batches",
            "upper_bound": f"log B = {math.log(min(step, n)):.4f} (+ Monte-Carlo noise)",
            "samples_per_x": 1,
            "seed": seed,
            "n": int(n),
        },
    }


def marginal_kl(
    kl: dict[str, Any], mi_batch: dict[str, Any], mi_full: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``KL(q(z) || N(0, I)) = KL - MI`` from the results of :func:`mean_kl` and
    :func:`mutual_information`: ``value`` uses the batch MI (CR-VAE Table III), the extra key
    ``value_full`` the whole-set MI when given."""
    out: dict[str, Any] = {
        "value": kl["value"] - mi_batch["value"],
        "protocol": {
            "name": "marginal_kl",
            "definition": "KL(q(z) || N(0, I)) = KL - MI (CR-VAE Table III); value: MI with "
            f"aggregate posterior over batches of {mi_batch['protocol']['batch_size']}",
            "n": kl["protocol"]["n"],
            "seed": mi_batch["protocol"]["seed"],
        },
    }
    if mi_full is not None:
        out["value_full"] = kl["value"] - mi_full["value"]
        out["protocol"]["value_full"] = "KL - MI with the whole set as aggregate posterior"
    return out
