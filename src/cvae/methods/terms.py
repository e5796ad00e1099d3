"""Objective terms shared by all methods (thin adapters from :class:`Step` to the losses)."""

from __future__ import annotations

import torch
from torch import nn

from cvae.config import LossConfig
from cvae.methods.base import Step, Term
from cvae.objectives import bernoulli_nll, gaussian_nll, kl_loss, mse, nt_xent


def _regularised_views(step: Step, which: str) -> range:
    return range(len(step.views)) if which == "all" else range(1)


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
        values = []
        for v in _regularised_views(step, self.which):
            target = step.clean if self.target == "clean" else step.views[v]
            logits = step.logits(v)
            if self.kind == "bce":
                values.append(bernoulli_nll(logits, target, self.reduction))
                continue
            x_hat = step.model.activate(logits)
            if self.kind == "mse":
                values.append(mse(x_hat, target, self.reduction))
            else:
                values.append(gaussian_nll(x_hat, target, self.log_scale, self.reduction))
        return torch.stack(values).mean()


class KL(Term):
    """Analytic KL to N(0, I): sum over latent dims, mean over batch (and regularised views)."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.which = cfg.views_regularised

    def forward(self, step: Step) -> torch.Tensor:
        values = [
            kl_loss(step.posterior(v).mu, step.posterior(v).logvar)
            for v in _regularised_views(step, self.which)
        ]
        return torch.stack(values).mean()


class NTXent(Term):
    """SimCLR NT-Xent between the projections of views 1 and 2 (:func:`nt_xent`)."""

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.temperature = cfg.temperature

    def forward(self, step: Step) -> torch.Tensor:
        return nt_xent(step.projection(0), step.projection(1), self.temperature)
