"""Loss functions, one per module; each states its shapes, formula and reduction."""

from cvae.objectives.kl import gaussian_kl, kl_loss
from cvae.objectives.ntxent import nt_xent
from cvae.objectives.reconstruction import bernoulli_nll, gaussian_nll, mse

__all__ = ["bernoulli_nll", "gaussian_kl", "gaussian_nll", "kl_loss", "mse", "nt_xent"]
