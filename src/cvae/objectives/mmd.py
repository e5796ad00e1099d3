"""Maximum mean discrepancy between the aggregate posterior q(z) and the prior p(z) = N(0, I).

InfoVAE (Zhao, Song, Ermon, AAAI 2019) replaces the KL's aggregate-posterior part by a divergence
D(q(z) || p(z)) and uses MMD for it (the MMD-VAE), estimated on a batch of latent samples against
as many prior samples.
"""

from __future__ import annotations

import torch

from cvae.config.schema import MMDEstimator, MMDKernel


def kernel_matrix(
    a: torch.Tensor, b: torch.Tensor, kernel: MMDKernel, bandwidth: float = 1.0
) -> torch.Tensor:
    """``a: [N, d], b: [M, d] -> K: [N, M]``; with ``c = 2 * d * bandwidth`` and
    ``D = ||a_i - b_j||^2``:

    - ``rbf`` (Gaussian, the InfoVAE paper's kernel): ``K = exp(-D / c)``;
    - ``imq`` (inverse multiquadratic, WAE): ``K = c / (c + D)``.

    ``bandwidth`` is the kernel's variance per latent dimension (1: the prior's), so ``c`` is the
    expected squared distance of two prior samples. Float32.
    """
    c = 2.0 * a.shape[1] * bandwidth
    d2 = (a.float()[:, None, :] - b.float()[None, :, :]).pow(2).sum(-1)
    return torch.exp(-d2 / c) if kernel == "rbf" else c / (c + d2)


def mmd(
    z: torch.Tensor,
    prior: torch.Tensor,
    kernel: MMDKernel = "rbf",
    bandwidth: float = 1.0,
    estimator: MMDEstimator = "biased",
) -> torch.Tensor:
    """Squared MMD between samples ``z: [N, d]`` of q(z) and ``prior: [M, d]`` of p(z).

    ``biased`` (V-statistic, InfoVAE's code): ``mean K(z, z) + mean K(p, p) - 2 mean K(z, p)``
    over all pairs, diagonals included (>= 0). ``unbiased`` (U-statistic, Gretton et al. 2012):
    the two within-sample means exclude the diagonal (``/ N(N-1)``, ``/ M(M-1)``; needs N, M >= 2;
    can be negative). Kernel per :func:`kernel_matrix`. Scalar, float32.
    """
    if z.ndim != 2 or prior.ndim != 2 or z.shape[1] != prior.shape[1]:
        raise ValueError(f"expected [N, d] and [M, d] samples, got {z.shape}, {prior.shape}")
    kzz = kernel_matrix(z, z, kernel, bandwidth)
    kpp = kernel_matrix(prior, prior, kernel, bandwidth)
    cross = kernel_matrix(z, prior, kernel, bandwidth).mean()
    if estimator == "biased":
        return kzz.mean() + kpp.mean() - 2.0 * cross
    n, m = len(z), len(prior)
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD estimator needs at least two samples of each")
    within_z = (kzz.sum() - kzz.diagonal().sum()) / (n * (n - 1))
    within_p = (kpp.sum() - kpp.diagonal().sum()) / (m * (m - 1))
    return within_z + within_p - 2.0 * cross
