"""Loss functions, one per module; each states its shapes, formula and reduction."""

from cvae.objectives.barlow import barlow_twins
from cvae.objectives.ema import ema_update, make_ema_copy
from cvae.objectives.gather import all_gather, all_gather_grad
from cvae.objectives.infomax import Critic, mi_lower_bound
from cvae.objectives.infonce import KeyQueue, info_nce_in_batch, info_nce_queue
from cvae.objectives.kl import gaussian_kl, kl_loss
from cvae.objectives.mmd import kernel_matrix, mmd
from cvae.objectives.ntxent import nt_xent
from cvae.objectives.reconstruction import bernoulli_nll, gaussian_nll, mse

__all__ = [
    "Critic",
    "KeyQueue",
    "all_gather",
    "all_gather_grad",
    "barlow_twins",
    "bernoulli_nll",
    "ema_update",
    "gaussian_kl",
    "gaussian_nll",
    "info_nce_in_batch",
    "info_nce_queue",
    "kernel_matrix",
    "kl_loss",
    "make_ema_copy",
    "mi_lower_bound",
    "mmd",
    "mse",
    "nt_xent",
]
