"""Objective terms (adapters from :class:`Step` to the losses) and their registry.

Every term is built from the run config and the model, and weighted by one config field
(:data:`TERMS`); a method only chooses default weights. Adding a term is one class here plus a
registry entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cvae.config import RunConfig
from cvae.methods.base import Step, Term
from cvae.networks.vae import VAE
from cvae.objectives import (
    KeyQueue,
    barlow_twins,
    bernoulli_nll,
    ema_update,
    gaussian_nll,
    info_nce_in_batch,
    info_nce_queue,
    kl_loss,
    make_ema_copy,
    mse,
    nt_xent,
)


def _mean_over_views(
    step: Step, which: str, per_view: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """Mean of ``per_view(v)`` over view 1 (``which='first'``) or every view (``'all'``)."""
    views = range(len(step.views)) if which == "all" else range(1)
    return torch.stack([per_view(v) for v in views]).mean()


class Reconstruction(Term):
    """Reconstruction NLL of the decoded latent sample; averaged over the regularised views.

    Target: the input view itself (``recon_target='view'``: CVAE, CR-VAE code) or the clean image
    (``'clean'``: AAVAE). Likelihood and reduction per :mod:`cvae.objectives.reconstruction`.
    """

    def __init__(self, cfg: RunConfig, model: VAE) -> None:
        super().__init__()
        loss = cfg.loss
        self.kind, self.reduction = loss.reconstruction, loss.reduction
        self.target, self.which = loss.recon_target, loss.views_regularised
        log_scale = torch.tensor(float(loss.log_scale))
        if loss.learn_scale:
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

    def __init__(self, cfg: RunConfig, model: VAE) -> None:
        super().__init__()
        self.which = cfg.loss.views_regularised

    def forward(self, step: Step) -> torch.Tensor:
        def kl(v: int) -> torch.Tensor:
            return kl_loss(step.posterior(v).mu, step.posterior(v).logvar)

        return _mean_over_views(step, self.which, kl)


class NTXent(Term):
    """SimCLR NT-Xent between the projections of views 1 and 2 (CVAE; :func:`nt_xent`), over the
    global batch under data-parallel training (every process's projections are the negatives)."""

    global_batch = True

    def __init__(self, cfg: RunConfig, model: VAE) -> None:
        super().__init__()
        self.temperature = cfg.loss.temperature

    def forward(self, step: Step) -> torch.Tensor:
        p1, p2 = step.gather(step.projection(0)), step.gather(step.projection(1))
        return nt_xent(p1, p2, self.temperature)


class BarlowTwins(Term):
    """BTVAE: Barlow Twins between the encodings of x (view 1) and of its reconstruction x_hat.

    ``barlow_on='mu+logvar'`` (BTVAE code): a fresh encoder pass on x and one on x_hat, loss
    ``BT(mu_x, mu_xhat) + BT(logvar_x, logvar_xhat)``; ``'z'`` (paper wording): BT between the
    VAE branch's latent sample and a sample of q(z | x_hat). Gradients reach the encoder through
    both passes and the decoder through x_hat (nothing is detached, as in the code). Under
    data-parallel training the cross-correlation is over the gathered global batch.
    """

    global_batch = True

    def __init__(self, cfg: RunConfig, model: VAE) -> None:
        super().__init__()
        self.on, self.norm, self.offdiag = (
            cfg.loss.barlow_on,
            cfg.loss.barlow_norm,
            cfg.loss.barlow_offdiag,
        )

    def forward(self, step: Step) -> torch.Tensor:
        x_hat = step.model.activate(step.logits(0))
        recon = step.encode(x_hat)

        def bt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            a, b = step.gather(a), step.gather(b)
            return barlow_twins(a, b, offdiag_weight=self.offdiag, normalization=self.norm)

        if self.on == "z":
            return bt(step.posterior(0).z, recon.z)
        fresh = step.encode(step.views[0])
        return bt(fresh.mu, recon.mu) + bt(fresh.logvar, recon.logvar)


class MoCoInfoNCE(Term):
    """CR-VAE: InfoNCE between a query (the VAE encoder on view 1) and a key from an EMA copy of
    the encoder on view 2, on L2-normalised latent samples (no projection head).

    Negatives: a FIFO queue of past keys (``negatives='queue'``, K=``queue_size``, code) or the
    other keys of the batch (``'in_batch'``, paper). EMA ``momentum`` per step before the keys are
    computed (code) or per epoch (``ema_every='epoch'``, Algorithm 1). Keys are computed on a
    shuffled batch and unshuffled (MoCo's shuffled BN; within one process it only reorders).
    The key encoder and the queue are buffers/submodules, so checkpoints restore them exactly.

    Data-parallel (sharded step): the shuffle is over the global batch (MoCo's
    ``batch_shuffle_ddp``: the views are gathered, each process encodes its rows of the shuffled
    batch, keys are gathered and unshuffled), queries are gathered with gradient, the loss is
    that of the global batch, and the queue receives the global batch's keys on every process.
    """

    global_batch = True

    def __init__(self, cfg: RunConfig, model: VAE) -> None:
        super().__init__()
        loss = cfg.loss
        self._online = [model.encoder]  # a plain list: not a second registration of the encoder
        self.key_encoder = make_ema_copy(model.encoder)
        self.queue = KeyQueue(model.latent_dim, loss.queue_size, seed=cfg.train.seed)
        self.temperature, self.momentum = loss.infonce_temperature, loss.momentum
        self.ema_every, self.negatives = loss.ema_every, loss.negatives
        self.separate_query = loss.separate_query

    def forward(self, step: Step) -> torch.Tensor:
        query = step.encode(step.views[0]) if self.separate_query else step.posterior(0)
        with torch.no_grad():
            if step.train and self.ema_every == "step":
                ema_update(self.key_encoder, self._online[0], self.momentum)
            x = step.gather(step.views[1], grad=False)
            perm = torch.randperm(len(x), generator=step.generator, device=x.device)
            shuffled = x[perm]
            mine = shuffled if step.shard is None else shuffled[step.shard.rows]
            mu, logvar = self.key_encoder(mine)
            z = step.gather(step.sample_latent(mu, logvar), grad=False)
            keys = torch.empty_like(z)
            keys[perm] = z
        q = step.gather(query.z)
        if self.negatives == "in_batch":
            loss = info_nce_in_batch(q, keys, self.temperature)
        else:
            loss = info_nce_queue(q, keys, self.queue.queue, self.temperature)
        if step.train and self.negatives == "queue":
            self.queue.enqueue(keys)
        return loss

    def after_epoch(self) -> None:
        if self.ema_every == "epoch":
            ema_update(self.key_encoder, self._online[0], self.momentum)


@dataclass(frozen=True)
class TermSpec:
    cls: type[Term]
    weight_field: str
    """The LossConfig field holding its weight."""
    views: int
    """Views of each image the term compares."""
    needs_head: bool = False


TERMS: dict[str, TermSpec] = {
    "recon": TermSpec(Reconstruction, "recon_weight", 1),
    "kl": TermSpec(KL, "beta", 1),
    "ntxent": TermSpec(NTXent, "contrastive_weight", 2, needs_head=True),
    "barlow": TermSpec(BarlowTwins, "barlow_weight", 1),
    "infonce": TermSpec(MoCoInfoNCE, "infonce_weight", 2),
}
