"""A method is a weighted sum of objective terms over one or more views of a batch.

:class:`Step` caches each view's posterior, decoding and projection, so terms that share them
(reconstruction and KL both need view 1's posterior) compute them once. Adding a method is one
small module that registers a :class:`MethodSpec`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from cvae.augmentations import BatchAugment
from cvae.data.base import ValueRange
from cvae.networks.vae import VAE


@dataclass
class Posterior:
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


class Step:
    """One training step's inputs and lazily computed, cached network outputs.

    ``clean``: the un-augmented batch ``[B, C, H, W]`` in the model's value range;
    ``views``: the (augmented) inputs, one tensor per view, same shape.
    """

    def __init__(
        self, model: VAE, clean: torch.Tensor, views: list[torch.Tensor], generator: torch.Generator
    ) -> None:
        self.model, self.clean, self.views, self.generator = model, clean, views, generator
        self._posteriors: dict[int, Posterior] = {}
        self._logits: dict[int, torch.Tensor] = {}
        self._projections: dict[int, torch.Tensor] = {}

    def posterior(self, view: int) -> Posterior:
        if view not in self._posteriors:
            mu, logvar = self.model.encode(self.views[view])
            z = self.model.reparameterize(mu, logvar, self.generator)
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
    """An objective term: ``forward(step) -> float32 scalar``."""

    def forward(self, step: Step) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class Method(nn.Module):
    """``loss = sum_t weight_t * term_t(step)``; terms with weight 0 are not computed.

    ``forward(images)`` takes a uint8 batch ``[B, C, H, W]``, makes ``num_views`` views (augmented
    when ``augment`` is given and ``train`` is true, else clean copies), maps them to the value
    range and returns ``{"loss": total, <term>: unweighted value, ...}``.
    """

    def __init__(
        self,
        model: VAE,
        terms: dict[str, tuple[Term, float]],
        num_views: int,
        value_range: ValueRange,
        augment: BatchAugment | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.terms = nn.ModuleDict({name: term for name, (term, _) in terms.items()})
        self.weights = {name: float(w) for name, (_, w) in terms.items()}
        self.num_views, self.value_range, self.augment = num_views, value_range, augment

    def _range(self, x01: torch.Tensor) -> torch.Tensor:
        return x01 if self.value_range == "01" else x01 * 2.0 - 1.0

    def make_step(self, images: torch.Tensor, generator: torch.Generator, train: bool) -> Step:
        x01 = images.float().div_(255.0)
        if train and self.augment is not None:
            views = [self._range(self.augment(x01, generator)) for _ in range(self.num_views)]
        else:
            views = [self._range(x01)] * self.num_views
        return Step(self.model, self._range(x01), views, generator)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator, train: bool = True
    ) -> dict[str, torch.Tensor]:
        return self.loss(self.make_step(images, generator, train))

    def loss(self, step: Step) -> dict[str, torch.Tensor]:
        """Weighted sum of the terms on a prepared step (network passes happen here)."""
        out: dict[str, torch.Tensor] = {}
        total = torch.zeros((), device=step.clean.device)
        for name, term in self.terms.items():
            weight = self.weights[name]
            if weight == 0.0:
                continue
            value = term(step)
            out[name] = value
            total = total + weight * value
        out["loss"] = total
        return out


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: how many views it needs, whether it has a projection head, and a
    function building its weighted terms from the run config."""

    name: str
    description: str
    num_views: int
    uses_head: bool
    build_terms: Callable[..., dict[str, tuple[Term, float]]]


METHODS: dict[str, MethodSpec] = {}


def register(spec: MethodSpec) -> MethodSpec:
    METHODS[spec.name] = spec
    return spec
