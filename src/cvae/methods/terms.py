"""Objective terms (adapters from :class:`Step` to the losses) and their table.

Every term is built from its own sub-config (``loss.terms.<name>``) plus what it needs, and
weighted by that sub-config's ``weight``; a method only chooses default weights. Adding a term
is one class here, a :data:`TERMS` entry, a line in :func:`build_term` and its sub-config in
:mod:`cvae.config.schema`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cvae.config import (
    BarlowConfig,
    InfoMaxConfig,
    InfoNCEConfig,
    LossConfig,
    MMDConfig,
    NTXentConfig,
    ReconConfig,
    TermName,
    TermsConfig,
)
from cvae.config.schema import ViewsRegularised
from cvae.methods.base import Step, Term
from cvae.networks.vae import VAE
from cvae.objectives import (
    Critic,
    KeyQueue,
    barlow_twins,
    bernoulli_nll,
    ema_update,
    gaussian_nll,
    info_nce_in_batch,
    info_nce_queue,
    kl_loss,
    make_ema_copy,
    mi_lower_bound,
    mmd,
    mse,
    nt_xent,
)


def _mean_over_views(
    step: Step, which: ViewsRegularised, per_view: Callable[[int], torch.Tensor]
) -> torch.Tensor:
    """Mean of ``per_view(v)`` over view 1 (``which='first'``) or every view (``'all'``)."""
    views = _regularised(which, len(step.views))
    if len(views) == 1:
        return per_view(views[0])
    return torch.stack([per_view(v) for v in views]).mean()


def _regularised(which: ViewsRegularised, num_views: int) -> tuple[int, ...]:
    return tuple(range(num_views if which == "all" else 1))


class Reconstruction(Term):
    """Reconstruction NLL of the decoded latent sample; averaged over the regularised views.

    Target: the input view itself (``target='view'``: CVAE, CR-VAE code) or the clean image
    (``'clean'``: AAVAE). Likelihood and reduction per :mod:`cvae.objectives.reconstruction`.
    """

    log_scale: torch.Tensor

    def __init__(self, cfg: ReconConfig, which: ViewsRegularised) -> None:
        super().__init__()
        self.kind, self.reduction, self.target, self.which = (
            cfg.likelihood,
            cfg.reduction,
            cfg.target,
            which,
        )
        log_scale = torch.tensor(float(cfg.log_scale))
        if cfg.learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def forward(self, step: Step) -> torch.Tensor:
        return _mean_over_views(step, self.which, lambda v: self._nll(step, v))

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return _regularised(self.which, num_views)

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

    def __init__(self, which: ViewsRegularised) -> None:
        super().__init__()
        self.which = which

    def forward(self, step: Step) -> torch.Tensor:
        def kl(v: int) -> torch.Tensor:
            return kl_loss(step.posterior(v).mu, step.posterior(v).logvar)

        return _mean_over_views(step, self.which, kl)

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return _regularised(self.which, num_views)


class NTXent(Term):
    """SimCLR NT-Xent between the projections of views 1 and 2 (:func:`nt_xent`), over the
    global batch under data-parallel training (every process's projections are the negatives).

    ``features='z'`` (CVAE): the projection head on each view's latent sample; ``'mu'`` (the
    ``simclr`` method): the posterior mean, which for the AAVAE ResNet encoder is SimCLR's
    projection g(h) = W2 ReLU(BN(W1 h)) of the backbone's features h (no decoder pass).
    """

    global_batch = True

    def __init__(self, cfg: NTXentConfig) -> None:
        super().__init__()
        self.temperature, self.features = cfg.temperature, cfg.features

    def forward(self, step: Step) -> torch.Tensor:
        def proj(v: int) -> torch.Tensor:
            return step.gather(
                step.posterior(v).mu if self.features == "mu" else step.projection(v)
            )

        return nt_xent(proj(0), proj(1), self.temperature)

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return (0, 1)


class MMD(Term):
    """InfoVAE: MMD between the latent samples of the (global) batch and as many N(0, I) samples
    drawn from the step's generator (:func:`cvae.objectives.mmd`); averaged over the regularised
    views. Gradients reach the encoder through the reparameterised samples."""

    global_batch = True

    def __init__(self, cfg: MMDConfig, which: ViewsRegularised) -> None:
        super().__init__()
        self.kernel, self.bandwidth, self.estimator = cfg.kernel, cfg.bandwidth, cfg.estimator
        self.which = which

    def forward(self, step: Step) -> torch.Tensor:
        def per_view(v: int) -> torch.Tensor:
            z = step.gather(step.posterior(v).z)
            prior = torch.randn(z.shape, generator=step.generator, device=z.device, dtype=z.dtype)
            return mmd(z, prior, self.kernel, self.bandwidth, self.estimator)

        return _mean_over_views(step, self.which, per_view)

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return _regularised(self.which, num_views)


class InfoMax(Term):
    """InfoMax-VAE: ``-bound``, the negative dual lower bound on I(x; z) (so a positive weight
    maximises the mutual information), :func:`cvae.objectives.mi_lower_bound`.

    Joint samples: (view 1, its latent sample); marginal samples: view 1 with the latents
    permuted within the batch (a permutation from the step's generator). The critic
    ``T(x, z)`` (:class:`cvae.objectives.Critic`) is a submodule, so it is in the optimizer and
    the checkpoint; encoder and critic both minimise ``-bound`` (nothing is detached, unlike the
    CR-VAE code's ``info_loss.item()``). Under data-parallel training the bound is per process.
    """

    def __init__(self, cfg: InfoMaxConfig, image_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        self.critic = Critic(math.prod(image_shape), latent_dim, cfg.hidden)
        self.divergence = cfg.divergence

    def forward(self, step: Step) -> torch.Tensor:
        x, z = step.views[0], step.posterior(0).z
        perm = torch.randperm(len(z), generator=step.generator, device=z.device)
        bound = mi_lower_bound(self.critic(x, z), self.critic(x, z[perm]), self.divergence)
        return -bound

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return (0,)


class BarlowTwins(Term):
    """BTVAE: Barlow Twins between the encodings of x (view 1) and of its reconstruction x_hat.

    ``features='mu+logvar'`` (BTVAE code): a fresh encoder pass on x and one on x_hat, loss
    ``BT(mu_x, mu_xhat) + BT(logvar_x, logvar_xhat)``; ``'z'`` (paper wording): BT between the
    VAE branch's latent sample and a sample of q(z | x_hat). Gradients reach the encoder through
    both passes and the decoder through x_hat (nothing is detached, as in the code). Under
    data-parallel training the cross-correlation is over the gathered global batch.
    """

    global_batch = True

    def __init__(self, cfg: BarlowConfig) -> None:
        super().__init__()
        self.features, self.norm, self.offdiag = cfg.features, cfg.norm, cfg.offdiag

    def forward(self, step: Step) -> torch.Tensor:
        x_hat = step.model.activate(step.logits(0))
        recon = step.encode(x_hat)

        def bt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            a, b = step.gather(a), step.gather(b)
            return barlow_twins(a, b, offdiag_weight=self.offdiag, normalization=self.norm)

        if self.features == "z":
            return bt(step.posterior(0).z, recon.z)
        fresh = step.encode(step.views[0])
        return bt(fresh.mu, recon.mu) + bt(fresh.logvar, recon.logvar)

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return (0,)


class MoCoInfoNCE(Term):
    """CR-VAE: InfoNCE between a query (the VAE encoder on view 1) and a key from an EMA copy of
    the encoder on view 2, on L2-normalised latent samples (no projection head).

    Negatives: a FIFO queue of past keys (``negatives='queue'``, K=``queue_size``, code) or the
    other keys of the batch (``'in_batch'``, paper). EMA ``momentum`` per step before the keys are
    computed (code) or once per epoch (``ema_every='epoch'``, Algorithm 1) with momentum
    ``epoch_momentum``, by default ``momentum ** steps`` over the epoch's training steps (the
    weight the key encoder keeps over an epoch of per-step updates). Keys are computed on a
    shuffled batch and unshuffled (MoCo's shuffled BN; within one process it only reorders).
    The key encoder, the queue and the epoch's step count are buffers/submodules, so checkpoints
    restore them exactly (also mid-epoch).

    Data-parallel (sharded step): the shuffle is over the global batch (MoCo's
    ``batch_shuffle_ddp``: the views are gathered, each process encodes its rows of the shuffled
    batch, keys are gathered and unshuffled), queries are gathered with gradient, the loss is
    that of the global batch, and the queue receives the global batch's keys on every process.
    """

    global_batch = True
    epoch_steps: torch.Tensor

    def __init__(self, cfg: InfoNCEConfig, encoder: nn.Module, latent_dim: int, seed: int) -> None:
        """``encoder``: the online encoder the key encoder follows; ``seed``: the queue's
        initial random keys."""
        super().__init__()
        self._online = [encoder]  # a plain list: not a second registration of the encoder
        self.key_encoder = make_ema_copy(encoder)
        self.queue = KeyQueue(latent_dim, cfg.queue_size, seed=seed)
        self.temperature, self.momentum = cfg.temperature, cfg.momentum
        self.ema_every, self.negatives = cfg.ema_every, cfg.negatives
        self.epoch_momentum = cfg.epoch_momentum
        self.separate_query = cfg.separate_query
        # training steps since the last per-epoch update (a buffer: mid-epoch resume is exact)
        self.register_buffer("epoch_steps", torch.zeros((), dtype=torch.long))

    @torch.compiler.disable  # type: ignore[untyped-decorator]  # eager under train.compile
    def forward(self, step: Step) -> torch.Tensor:
        """Compiled, the negatives' copy of the queue was elided and the backward read the queue
        after :meth:`KeyQueue.enqueue` overwrote it in place; eager, the copy is kept."""
        query = step.encode(step.views[0]) if self.separate_query else step.posterior(0)
        with torch.no_grad():
            if step.train and self.ema_every == "step":
                ema_update(self.key_encoder, self._online[0], self.momentum)
            self.epoch_steps.add_(int(step.train))
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

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        return () if self.separate_query else (0,)

    def after_epoch(self) -> None:
        if self.ema_every == "epoch":
            m = self.epoch_momentum
            steps = int(self.epoch_steps)
            ema_update(self.key_encoder, self._online[0], self.momentum**steps if m is None else m)
        self.epoch_steps.zero_()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # checkpoints written before the step count was kept restore it as 0
        state_dict.setdefault(f"{prefix}epoch_steps", torch.zeros((), dtype=torch.long))
        super()._load_from_state_dict(state_dict, prefix, *args)


@dataclass(frozen=True)
class TermSpec:
    views: int
    """Views of each image the term compares."""
    needs_head: Callable[[TermsConfig], bool] = lambda terms: False
    """Whether, under these term settings, it reads the projection head (``model.projection``)."""
    decodes: bool = False
    """Whether its gradient trains the decoder."""


TERMS: dict[TermName, TermSpec] = {
    "recon": TermSpec(views=1, decodes=True),
    "kl": TermSpec(views=1),
    "ntxent": TermSpec(views=2, needs_head=lambda terms: terms.ntxent.features != "mu"),
    "barlow": TermSpec(views=1, decodes=True),
    "infonce": TermSpec(views=2),
    "mmd": TermSpec(views=1),
    "infomax": TermSpec(views=1),
}


def build_term(
    name: TermName,
    loss: LossConfig,
    model: VAE,
    seed: int,
    image_shape: tuple[int, int, int],
) -> Term:
    """The term ``name`` from its sub-config (``loss.terms.<name>``) and what it needs."""
    terms, which = loss.terms, loss.views_regularised
    builders: dict[TermName, Callable[[], Term]] = {
        "recon": lambda: Reconstruction(terms.recon, which),
        "kl": lambda: KL(which),
        "ntxent": lambda: NTXent(terms.ntxent),
        "barlow": lambda: BarlowTwins(terms.barlow),
        "infonce": lambda: MoCoInfoNCE(terms.infonce, model.encoder, model.latent_dim, seed),
        "mmd": lambda: MMD(terms.mmd, which),
        "infomax": lambda: InfoMax(terms.infomax, image_shape, model.latent_dim),
    }
    return builders[name]()
