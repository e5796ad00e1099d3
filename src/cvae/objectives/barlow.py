"""Barlow Twins redundancy-reduction loss (Zbontar, Jing, Misra, LeCun, Deny, ICML 2021).

Used by BTVAE (Xu, Wei, Yin) between the encodings of ``x`` and of ``x_hat``.
Two normalisations are offered: the original paper's (BatchNorm1d semantics, divide by the actual
batch size) and the one in the BTVAE authors' code (PyTorch-VAE ``models/barlowtwins.py``:
unbiased std, divide by a fixed 64).
"""

from __future__ import annotations

import torch

NORMALIZATIONS = ("original", "reference")


def _off_diagonal(c: torch.Tensor) -> torch.Tensor:
    """Flattened off-diagonal entries of a square ``[D, D]`` matrix (the trick of the BT code)."""
    d = c.shape[0]
    return c.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()


def _standardize_original(z: torch.Tensor, eps: float) -> torch.Tensor:
    # BatchNorm1d(affine=False) in train mode: biased batch variance, eps inside the square root.
    mean = z.mean(0)
    var = z.var(0, correction=0)
    return (z - mean) / torch.sqrt(var + eps)


def _standardize_reference(z: torch.Tensor) -> torch.Tensor:
    # torch.std (unbiased); zero-std dimensions are divided by 1 instead. The std is taken as
    # sqrt(var) of a *masked* variance so that a constant dimension has a finite (zero) gradient;
    # torch.std itself back-propagates 0/0 = NaN there. Forward values equal the reference code's.
    mean = z.mean(0)
    var = z.var(0, correction=1)
    safe_var = torch.where(var > 0, var, torch.ones_like(var))
    return (z - mean) / torch.sqrt(safe_var)


def barlow_twins(
    z1: torch.Tensor,
    z2: torch.Tensor,
    *,
    offdiag_weight: float = 5e-3,
    normalization: str = "original",
    reference_batch: int = 64,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Barlow Twins loss between two batches of embeddings, a float32 scalar.

    ``z1, z2: [N, D]`` (row n of each describes the same sample, N >= 2). Each dimension is
    standardised over the batch, giving ``z1n, z2n``, then the cross-correlation matrix
    ``C: [D, D]`` is formed and

        loss = sum_i (1 - C_ii)^2 + offdiag_weight * sum_{i != j} C_ij^2

    (no reduction over the batch: the batch is already averaged inside ``C``).

    ``normalization``:
        "original": BatchNorm1d(affine=False) semantics of Zbontar et al. 2021,
            ``zn = (z - mean) / sqrt(var_biased + eps)`` and ``C = z1n^T z2n / N`` with the actual
            batch size N. For identical inputs ``C_ii = var_i / (var_i + eps) ~ 1``. (The original
            code uses offdiag weight 0.0051; BTVAE and this default use 5e-3.)
        "reference": the BTVAE code (PyTorch-VAE ``models/barlowtwins.py``),
            ``zn = (z - mean) / std_unbiased`` with zero-std dimensions left unscaled (std := 1),
            no eps, and ``C = z1n^T z2n / reference_batch`` (64 whatever N is). For identical
            inputs ``C_ii = (N - 1) / reference_batch``, i.e. 63/64 at N = 64, so the loss is never
            0; at N != reference_batch C is mis-scaled (BTVAE code).
    ``eps`` is used by "original" only; ``reference_batch`` by "reference" only.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(f"expected two [N, D] tensors of equal shape, got {z1.shape}, {z2.shape}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"Barlow Twins needs a batch of at least 2 samples, got N={n}")
    z1, z2 = z1.float(), z2.float()
    if normalization == "original":
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        c = _standardize_original(z1, eps).T @ _standardize_original(z2, eps) / n
    elif normalization == "reference":
        if reference_batch <= 0:
            raise ValueError(f"reference_batch must be positive, got {reference_batch}")
        c = _standardize_reference(z1).T @ _standardize_reference(z2) / reference_batch
    else:
        raise ValueError(
            f"unknown normalization '{normalization}'; expected one of {NORMALIZATIONS}"
        )
    on_diag = (1.0 - torch.diagonal(c)).pow(2).sum()
    off_diag = _off_diagonal(c).pow(2).sum()
    return on_diag + offdiag_weight * off_diag
