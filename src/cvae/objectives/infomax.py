"""The InfoMax-VAE mutual-information term (Rezaabad & Vishwanath, ISIT 2020): a lower bound on
I(x; z) under the encoder's joint q(x, z) = p_D(x) q(z | x), from the dual (variational)
representation of an f-divergence between the joint and the product of marginals q(x) q(z),
with a learned critic T(x, z).

Samples of the joint are the batch's pairs ``(x_i, z_i)``; samples of the product of marginals
pair each ``x_i`` with the latent of another image (z shuffled within the batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cvae.config.schema import MIDivergence


class Critic(nn.Module):
    """``T(x, z)``: an MLP on ``[flatten(x), z]`` -> ``[B]`` scores (two hidden ReLU layers)."""

    def __init__(self, x_dim: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(x_dim + latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(torch.cat([x.flatten(1), z], dim=1))
        return out.squeeze(1)


def mi_lower_bound(
    t_joint: torch.Tensor, t_marginal: torch.Tensor, divergence: MIDivergence = "kl"
) -> torch.Tensor:
    """Dual lower bound from critic scores ``t_joint: [N]`` on joint samples and
    ``t_marginal: [M]`` on product-of-marginals samples (nats; scalar, float32; means over N, M):

    - ``kl`` (the f-divergence dual of KL, f-GAN / NWJ; InfoMax-VAE's KL form):
      ``mean T_j - mean exp(T_m - 1)`` <= KL(joint || marginals) = I(x; z);
    - ``dv`` (Donsker-Varadhan, MINE): ``mean T_j - log mean exp(T_m)`` <= I(x; z);
    - ``js`` (the Jensen-Shannon form, Deep InfoMax):
      ``mean -softplus(-T_j) - mean softplus(T_m)`` <= 2 JS(joint || marginals) - 2 log 2
      (not a bound on I itself, but maximised by the same critic/encoder directions).
    """
    tj, tm = t_joint.float(), t_marginal.float()
    if divergence == "kl":
        return tj.mean() - torch.exp(tm - 1.0).mean()
    if divergence == "dv":
        return tj.mean() - (torch.logsumexp(tm, dim=0) - math.log(len(tm)))
    return (-F.softplus(-tj)).mean() - F.softplus(tm).mean()
