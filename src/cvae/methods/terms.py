"""Objective terms shared by all methods (thin adapters from :class:`Step` to the losses)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cvae.config import LossConfig
from cvae.methods.base import Step, Term
from cvae.objectives import bernoulli_nll, gaussian_nll, kl_loss, mse, nt_xent


def _mean_over_views(
    step: Step, which: str, per_view: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """Mean of ``per_view(v)`` over view 1 (``which='first'``) or every view (``'all'``)."""
    views = range(len(step.views)) if which == "all" else range(1)
    return torch.stack([per_view(v) for v in views]).mean()


class Reconstruction(Term):
    """Reconstruction NLL of the decoded latent sample; averaged over the regularised views.

    Target: the input view itself (``recon_target='view'``, CVAE code) or the clean image
    (``'clean'``, AAVAE). Likelihood and reduction per :mod:`cvae.objectives.reconstruction`.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.kind, self.reduction = cfg.reconstruction, cfg.reduction
        self.target, self.which = cfg.recon_target, cfg.views_regularised
        log_scale = torch.tensor(float(cfg.log_scale))
        if cfg.learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self, step: Step) -> torch.Tensor:
        return _mean_over_views(step, self.which, lambda v: self._nll(step, v))

    def _nll(self, step: Step, view: int) -> torch.Tensor:
        target = step.clean if self.target == "clean" else step.views[view]
        logits = step.logits(view)
        if self.kind == "bce":
            return bernoulli_nll(logits, target, self.reduction)
        x_hat = step.model.activate(logits)
        if self.kind == "mse":
            return mse(x_hat, target, self.reduction)
        return gaussian_nll(x_hat, target, self.log_scale, self.reduction)


class KL(Term):
    """Analytic KL to N(0, I): sum over latent dims, mean over batch (and regularised views)."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.which = cfg.views_regularised

    def forward(self, step: Step) -> torch.Tensor:
        def kl(v: int) -> torch.Tensor:
            return kl_loss(step.posterior(v).mu, step.posterior(v).logvar)

        return _mean_over_views(step, self.which, kl)


class NTXent(Term):
    """SimCLR NT-Xent between the projections of views 1 and 2 (:func:`nt_xent`)."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.temperature = cfg.temperature

    def forward(self, step: Step) -> torch.Tensor:
        return nt_xent(step.projection(0), step.projection(1), self.temperature)
