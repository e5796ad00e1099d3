"""A method is a weighted sum of objective terms over one or more views of a batch.

:class:`Step` caches each view's posterior, decoding and projection, so terms that share them
(reconstruction and KL both need view 1's posterior) compute them once. A method itself is only
a name and its defaults (:class:`cvae.methods.specs.MethodSpec`); which terms run follows from
the weights, so any term can be switched on or off for any method from the config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from cvae.augmentations import BatchAugment
from cvae.augmentations.pipeline import AugmentParams
from cvae.config import TermName, ValueRange
from cvae.data.base import to_float
from cvae.errors import CvaeError
from cvae.methods.schedules import WeightPlan
from cvae.networks.vae import VAE
from cvae.objectives import all_gather, all_gather_grad


@dataclass(frozen=True)
class Shard:
    """This process's contiguous rows of a global batch of ``total`` images split over ``world``
    processes: near-equal parts in rank order, the first ``total % world`` one row longer."""

    rank: int
    world: int
    total: int

    @property
    def sizes(self) -> list[int]:
        base, extra = divmod(self.total, self.world)
        return [base + (r < extra) for r in range(self.world)]

    @property
    def rows(self) -> slice:
        start = sum(self.sizes[: self.rank])
        return slice(start, start + self.sizes[self.rank])

    @property
    def share(self) -> float:
        """``world * n_r / total``: 1 for equal parts (see :meth:`Method.loss`)."""
        return self.world * self.sizes[self.rank] / self.total


@dataclass
class Posterior:
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class Step:
    """One training step's inputs and lazily computed, cached network outputs.

    ``clean``: the un-augmented batch ``[B, C, H, W]`` in the model's value range;
    ``views``: the (augmented) inputs, one tensor per view, same shape; ``train``: whether this is
    a training step (terms with state, such as a queue, only update then).

    ``fuse``: views whose encoder passes are one pass over the concatenated views (only for an
    encoder whose output for an image does not depend on the rest of the batch, i.e. without
    BatchNorm). ``stacked``: all views as one tensor ``[V*B, C, H, W]`` when ``views`` are its
    consecutive chunks (that pass then reads it as is).

    ``noise``: the posterior noise ``eps ~ N(0, I)`` of the views whose cached posteriors the terms
    read, drawn before the network passes (:meth:`Method.make_step`), so that no random draw
    interrupts a compiled loss; a view without one draws its noise when first sampled, as do
    fresh passes (:meth:`encode`).

    ``shard``: under data-parallel training, which rows of the global batch these are. Random
    draws (posterior noise, key shuffles) are then made for the whole global batch, identically
    on every process, and sliced, so the generator stays in step across processes and a row gets
    the same noise whatever the number of processes.
    """

    def __init__(
        self,
        model: VAE,
        clean: torch.Tensor,
        views: list[torch.Tensor],
        generator: torch.Generator,
        train: bool,
        shard: Shard | None = None,
        fuse: tuple[int, ...] = (),
        stacked: torch.Tensor | None = None,
        noise: dict[int, torch.Tensor] | None = None,
    ) -> None:
        self.model, self.clean, self.views = model, clean, views
        self.generator, self.train, self.shard, self.fuse = generator, train, shard, fuse
        self.stacked, self.noise = stacked, noise or {}
        self._moments: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._posteriors: dict[int, Posterior] = {}
        self._logits: dict[int, torch.Tensor] = {}
        self._projections: dict[int, torch.Tensor] = {}

    def encode(self, x: torch.Tensor) -> Posterior:
        """A fresh (uncached) encoder pass with its own posterior sample."""
        mu, logvar = self.model.encode(x)
        return Posterior(mu, logvar, self.sample_latent(mu, logvar))

    def sample_latent(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The model's posterior sample; sharded: the global batch's noise, this shard's rows
        (``mu, logvar`` are zero-padded to the global batch, sampled, then sliced)."""
        if self.shard is None:
            return self.model.sample_latent(mu, logvar, self.generator)
        rows = self.shard.rows
        pad = (0, 0, rows.start, self.shard.total - rows.stop)
        z = self.model.sample_latent(F.pad(mu, pad), F.pad(logvar, pad), self.generator)
        return z[rows]

    def gather(self, x: torch.Tensor, grad: bool = True) -> torch.Tensor:
        """``x: [n_r, ...]`` -> the global batch's ``[total, ...]`` (differentiable when ``grad``,
        see :func:`cvae.objectives.all_gather_grad`); ``x`` itself when not sharded."""
        if self.shard is None:
            return x
        return (all_gather_grad if grad else all_gather)(x, self.shard.sizes)

    def moments(self, view: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of ``view``: one encoder pass for all ``fuse`` views when it is one."""
        if view not in self._moments:
            group = self.fuse if view in self.fuse else (view,)
            if len(group) == 1:
                x = self.views[view]
            elif self.stacked is not None and group == tuple(range(len(self.views))):
                x = self.stacked
            else:
                x = torch.cat([self.views[v] for v in group])
            mu, logvar = self.model.encode(x)
            for v, m, lv in zip(group, mu.chunk(len(group)), logvar.chunk(len(group)), strict=True):
                self._moments[v] = (m, lv)
        return self._moments[view]

    def posterior(self, view: int) -> Posterior:
        if view not in self._posteriors:
            mu, logvar = self.moments(view)
            eps = self.noise.get(view)
            z = (
                self.sample_latent(mu, logvar)
                if eps is None
                else self.model.sample_latent(mu, logvar, eps=eps)
            )
            self._posteriors[view] = Posterior(mu, logvar, z)
        return self._posteriors[view]

    def logits(self, view: int) -> torch.Tensor:
        """Decoder output (pre-activation) for the latent sample of ``view``."""
        if view not in self._logits:
            self._logits[view] = self.model.decode_logits(self.posterior(view).z)
        return self._logits[view]

    def projection(self, view: int) -> torch.Tensor:
        if self.model.head is None:
            raise RuntimeError("this term needs a projection head (model.projection is empty)")
        if view not in self._projections:
            self._projections[view] = self.model.head(self.posterior(view).z)
        return self._projections[view]


class Term(nn.Module):
    """An objective term: ``forward(step) -> float32 scalar``; an optional per-epoch hook.

    ``global_batch``: a sharded step's value is the loss of the gathered global batch (the same on
    every process), not the mean over this process's rows.
    """

    global_batch = False

    def forward(self, step: Step) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def after_epoch(self) -> None:
        """Called after every training epoch (e.g. a per-epoch EMA update)."""

    def encoded_views(self, num_views: int) -> tuple[int, ...]:
        """The views whose cached posterior (:meth:`Step.posterior`) the term reads."""
        return ()


class Method(nn.Module):
    """``loss = sum_t w_t(epoch) * term_t(step)``; terms whose weight is 0 now are skipped.

    ``forward(images)`` takes a uint8 batch ``[B, C, H, W]``, makes ``num_views`` views (augmented
    when ``augment`` is given and ``train`` is true, else clean copies), maps them to the value
    range and returns ``{"loss": total, <term>: unweighted value, "sigma": mean posterior std}``.
    """

    def __init__(
        self,
        model: VAE,
        terms: Mapping[TermName, Term],
        plan: WeightPlan,
        num_views: int,
        value_range: ValueRange,
        augment: BatchAugment | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.terms = nn.ModuleDict({name: term for name, term in terms.items()})
        self.term_names = list(terms)
        self.plan, self.num_views, self.value_range, self.augment = (
            plan,
            num_views,
            value_range,
            augment,
        )
        self.epoch_progress = 0.0  # fractional epoch, set by the trainer (drives schedules)
        # BatchNorm normalises over the batch: views encoded together would share statistics
        self.fusable = not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.encoder.modules()
        )
        self._compiled: (
            tuple[int, Callable[[Step, dict[TermName, float]], dict[str, torch.Tensor]]] | None
        ) = None

    @property
    def weights(self) -> dict[TermName, float]:
        """Effective weight of every built term at the current point of training."""
        plan = self.plan.weights(self.epoch_progress)
        return {name: plan.get(name, 0.0) for name in self.term_names}

    def _range(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 if self.value_range == "01" else x01 * 2.0 - 1.0

    def make_step(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        train: bool,
        shard: Shard | None = None,
    ) -> Step:
        x01 = to_float(images)
        stacked = None
        if train and self.augment is not None and not self.augment.config.identity:
            # each view's parameters drawn in turn, then all views augmented in one call
            params = self._views_params(x01, generator, shard)
            x = x01.repeat(self.num_views, 1, 1, 1)
            stacked = self._range(self.augment.apply(x, params))
            views = list(stacked.chunk(self.num_views))
        else:
            views = [self._range(x01)] * self.num_views
        encoded = self._encoded_views()
        fused = encoded if self.fusable and len(encoded) > 1 else ()
        noise = self._noise(encoded, len(x01), generator, shard, x01.device)
        return Step(
            self.model, self._range(x01), views, generator, train, shard, fused, stacked, noise
        )

    def _encoded_views(self) -> tuple[int, ...]:
        """The views whose cached posteriors the active terms read, in order. Several are encoded
        in one pass when the encoder allows it (no BatchNorm; see :class:`Step`)."""
        terms, views = self._terms(), set[int]()
        for name, weight in self.weights.items():
            if weight != 0.0:
                views.update(terms[name].encoded_views(self.num_views))
        return tuple(sorted(views))

    def _noise(
        self,
        views: tuple[int, ...],
        n: int,
        generator: torch.Generator,
        shard: Shard | None,
        device: torch.device,
    ) -> dict[int, torch.Tensor]:
        """Each view's posterior noise ``[n, d]`` (fp32), view after view; sharded: drawn for
        the global batch, this shard's rows kept (as :meth:`Step.sample_latent` would)."""
        if self.model.deterministic:
            return {}
        total = n if shard is None else shard.total
        rows = slice(None) if shard is None else shard.rows
        shape = (total, self.model.latent_dim)
        return {v: torch.randn(shape, generator=generator, device=device)[rows] for v in views}

    def _views_params(
        self, x01: torch.Tensor, generator: torch.Generator, shard: Shard | None
    ) -> AugmentParams:
        """The views' augmentation parameters, view after view; sharded: each view's drawn for
        the global batch, this shard's rows kept."""
        augment, views = self.augment, self.num_views
        assert augment is not None
        n, _, h, w = x01.shape
        if shard is None:
            return augment.sample_params(n, h, w, generator, x01.device, views)
        params = augment.sample_params(shard.total, h, w, generator, x01.device, views)
        rows = torch.arange(shard.rows.start, shard.rows.stop, device=params.crop.device)
        return params.rows(torch.cat([rows + v * shard.total for v in range(views)]))

    def forward(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        train: bool = True,
        shard: Shard | None = None,
    ) -> dict[str, torch.Tensor]:
        """``images``: this process's rows of the global batch when ``shard`` is given."""
        return self.loss(self.make_step(images, generator, train, shard))

    def loss(self, step: Step) -> dict[str, torch.Tensor]:
        """Weighted sum of the terms on a prepared step (network passes happen here).

        Sharded steps (DDP averages gradients over processes): a term that is a mean over this
        process's rows gets its gradient scaled by ``shard.share = world * n_r / total``, so the
        average equals the gradient of the global batch's mean even for unequal shards (the
        reported value is unscaled); a ``global_batch`` term needs no scaling (see
        :mod:`cvae.objectives.gather`).
        """
        weights = {name: w for name, w in self.weights.items() if w != 0.0}
        if self._compiled is not None and step.train and len(step.clean) == self._compiled[0]:
            return self._compiled[1](step, weights)
        return self._weighted_sum(step, weights)

    def compile_loss(self, batch_size: int) -> None:
        """Run :meth:`loss` through ``torch.compile`` for training steps of ``batch_size`` images
        (others, such as an epoch's last partial batch or validation, stay eager: no recompile).
        The weights enter the graph as tensors, so a schedule does not recompile it; a term turned
        on or off (its weight reaching or leaving 0) does. A failed compile (e.g. no C++ compiler
        for inductor's kernels) is a :class:`CvaeError` naming the reason."""
        from torch._dynamo.exc import BackendCompilerFailed

        compiled = torch.compile(self._weighted_sum)

        def run(step: Step, weights: dict[TermName, float]) -> dict[str, torch.Tensor]:
            values = torch.tensor(list(weights.values()), device=step.clean.device).unbind()
            try:
                return compiled(step, dict(zip(weights, values, strict=True)))
            except BackendCompilerFailed as e:
                reason = str(e.inner_exception).strip().splitlines()[0]
                raise CvaeError(f"train.compile: torch.compile failed ({reason}); train without "
                                "it") from None  # fmt: skip

        self._compiled = (batch_size, run)

    def _weighted_sum(
        self, step: Step, weights: Mapping[TermName, float | torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=step.clean.device)
        share = 1.0 if step.shard is None else step.shard.share
        terms = self._terms()
        for name, weight in weights.items():
            term = terms[name]
            value = term(step)
            out[name] = value
            total = total + weight * (value if term.global_batch else _grad_scaled(value, share))
        out["loss"] = total
        out["sigma"] = step.posterior(0).logvar.detach().float().mul(0.5).exp().mean()
        return out

    def after_epoch(self) -> None:
        for term in self._terms().values():
            term.after_epoch()

    def _terms(self) -> dict[str, Term]:
        """The terms, typed (an ``nn.ModuleDict`` holds them as plain modules)."""
        return {name: cast(Term, term) for name, term in self.terms.items()}


def _grad_scaled(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward pass, ``scale * grad`` in the backward pass."""
    return x if scale == 1.0 else x * scale + x.detach() * (1.0 - scale)
