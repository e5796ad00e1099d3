"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al., 2020).

Used by the contrastive VAE (Lin, Zhang, Chahal, Eq. 2) on projections of two views' latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(p1: torch.Tensor, p2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Mean NT-Xent over all ``2N`` anchors with in-batch negatives.

    ``p1, p2: [N, k]`` projections of two views (row i of each is a positive pair). With
    ``P = [p1; p2] / ||.||`` (L2-normalised rows, eps 1e-12) and ``S = P P^T / temperature``:

        loss = (1 / 2N) sum_a [ -S[a, pos(a)] + log sum_{c != a} exp(S[a, c]) ],

    ``pos(a) = a + N`` for ``a < N`` and ``a - N`` otherwise, i.e. a cross-entropy over each row
    with the diagonal masked out (2N - 2 negatives per anchor). In float32, log-sum-exp.
    """
    if p1.shape != p2.shape or p1.ndim != 2:
        raise ValueError(f"expected two [N, k] tensors of equal shape, got {p1.shape}, {p2.shape}")
    n = p1.shape[0]
    p = F.normalize(torch.cat([p1, p2]).float(), dim=1)
    sim = (p @ p.T) / temperature
    sim.fill_diagonal_(float("-inf"))  # in place: the division's backward does not read it
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(sim.device)
    return F.cross_entropy(sim, targets)
