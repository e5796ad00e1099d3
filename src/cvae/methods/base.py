"""A method is a weighted sum of objective terms over one or more views of a batch.

:class:`Step` caches each view's posterior, decoding and projection, so terms that share them
(reconstruction and KL both need view 1's posterior) compute them once. A method itself is only
a name and its default config values (:class:`MethodSpec`); which terms run follows from the
weights, so any term can be switched on or off for any method from the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cvae.augmentations import BatchAugment
from cvae.data.base import ValueRange
from cvae.methods.schedules import WeightPlan
from cvae.networks.vae import VAE


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
    """

    def __init__(
        self,
        model: VAE,
        clean: torch.Tensor,
        views: list[torch.Tensor],
        generator: torch.Generator,
        train: bool,
    ) -> None:
        self.model, self.clean, self.views = model, clean, views
        self.generator, self.train = generator, train
        self._posteriors: dict[int, Posterior] = {}
        self._logits: dict[int, torch.Tensor] = {}
        self._projections: dict[int, torch.Tensor] = {}

    def encode(self, x: torch.Tensor) -> Posterior:
        """A fresh (uncached) encoder pass with its own posterior sample."""
        mu, logvar = self.model.encode(x)
        return Posterior(mu, logvar, self.model.sample_latent(mu, logvar, self.generator))

    def posterior(self, view: int) -> Posterior:
        if view not in self._posteriors:
            self._posteriors[view] = self.encode(self.views[view])
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
    """An objective term: ``forward(step) -> float32 scalar``; optional training hooks."""

    def forward(self, step: Step) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. a per-step EMA update)."""

    def after_epoch(self) -> None:
        """Called after every training epoch (e.g. a per-epoch EMA update)."""


class Method(nn.Module):
    """``loss = sum_t w_t(epoch) * term_t(step)``; terms whose weight is 0 now are skipped.

    ``forward(images)`` takes a uint8 batch ``[B, C, H, W]``, makes ``num_views`` views (augmented
    when ``augment`` is given and ``train`` is true, else clean copies), maps them to the value
    range and returns ``{"loss": total, <term>: unweighted value, "sigma": mean posterior std}``.
    """

    def __init__(
        self,
        model: VAE,
        terms: dict[str, Term],
        plan: WeightPlan,
        num_views: int,
        value_range: ValueRange,
        augment: BatchAugment | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.terms = nn.ModuleDict(terms)
        self.plan, self.num_views, self.value_range, self.augment = (
            plan,
            num_views,
            value_range,
            augment,
        )
        self.epoch_progress = 0.0  # fractional epoch, set by the trainer (drives schedules)

    @property
    def weights(self) -> dict[str, float]:
        """Effective weight of every built term at the current point of training."""
        plan = self.plan.weights(self.epoch_progress)
        return {name: plan.get(name, 0.0) for name in self.terms}

    def _range(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 if self.value_range == "01" else x01 * 2.0 - 1.0

    def make_step(self, images: torch.Tensor, generator: torch.Generator, train: bool) -> Step:
        x01 = images.float().div_(255.0)
        if train and self.augment is not None:
            views = [self._range(self.augment(x01, generator)) for _ in range(self.num_views)]
        else:
            views = [self._range(x01)] * self.num_views
        return Step(self.model, self._range(x01), views, generator, train)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator, train: bool = True
    ) -> dict[str, torch.Tensor]:
        return self.loss(self.make_step(images, generator, train))

    def loss(self, step: Step) -> dict[str, torch.Tensor]:
        """Weighted sum of the terms on a prepared step (network passes happen here)."""
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=step.clean.device)
        for name, weight in self.weights.items():
            if weight == 0.0:
                continue
            value = self.terms[name](step)
            out[name] = value
            total = total + weight * value
        out["loss"] = total
        out["sigma"] = step.posterior(0).logvar.detach().float().mul(0.5).exp().mean()
        return out

    def after_step(self) -> None:
        for term in self.terms.values():
            term.after_step()  # type: ignore[operator]

    def after_epoch(self) -> None:
        for term in self.terms.values():
            term.after_epoch()  # type: ignore[operator]


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its description and its default config values (dotted keys).

    Defaults apply where the config leaves a value null/``auto``; term weights it does not name
    are 0 (off) unless the config sets them.
    """

    name: str
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.name] = spec
    return spec
