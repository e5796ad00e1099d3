"""Methods: the :data:`METHODS` table, config resolution and :func:`build_method`."""

from __future__ import annotations

from cvae.augmentations import build_augment
from cvae.config import RunConfig
from cvae.errors import ConfigError
from cvae.methods.base import Method, Shard, Step, Term
from cvae.methods.resolve import active_terms, check_config, num_views, resolve
from cvae.methods.schedules import WeightPlan
from cvae.methods.specs import METHODS, MethodSpec
from cvae.methods.terms import TERMS, build_term
from cvae.networks import build_model

__all__ = [
    "METHODS",
    "Method",
    "MethodSpec",
    "Shard",
    "Step",
    "Term",
    "build_method",
    "check_config",
    "num_views",
    "resolve",
]


def build_method(cfg: RunConfig, image_shape: tuple[int, int, int]) -> Method:
    """Assemble the model, augmentation and weighted terms of a *resolved* config
    (:func:`resolve`). A term is built when its base weight or its weight in any stage is
    non-zero."""
    activation, value_range = cfg.model.output_activation, cfg.data.value_range
    if activation == "auto" or value_range == "auto":
        raise ConfigError("build_method needs a resolved config (cvae.methods.resolve)")
    active = active_terms(cfg)
    needs_head = any(TERMS[name].needs_head(cfg.loss.terms) for name in active)
    model = build_model(cfg.model, image_shape, activation, needs_head)
    terms = {
        name: build_term(name, cfg.loss, model, cfg.train.seed, image_shape) for name in active
    }
    base = {name: cfg.loss.terms[name].weight or 0.0 for name in active}
    plan = WeightPlan(base, cfg.loss.schedules, cfg.loss.stages)
    augment = None if cfg.data.augment == "none" else build_augment(cfg.data.augment)
    views = max([1] + [TERMS[name].views for name in active])
    return Method(model, terms, plan, views, value_range, augment)
