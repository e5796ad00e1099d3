"""Method registry (``METHODS[name]`` -> :class:`MethodSpec`) and :func:`build_method`."""

from __future__ import annotations

from cvae.config import RunConfig, num_views
from cvae.methods import aavae as _aavae  # noqa: F401  (registers)
from cvae.methods import btvae as _btvae  # noqa: F401  (registers)
from cvae.methods import crvae as _crvae  # noqa: F401  (registers)
from cvae.methods import cvae as _cvae  # noqa: F401  (registers)
from cvae.methods import vae as _vae  # noqa: F401  (registers)
from cvae.methods.base import METHODS, Method, MethodSpec, Shard, Step, Term, register
from cvae.methods.schedules import WeightPlan

__all__ = ["METHODS", "Method", "MethodSpec", "Shard", "Step", "Term", "build_method", "register"]


def build_method(cfg: RunConfig, image_shape: tuple[int, int, int]) -> Method:
    """Assemble the model, augmentation and weighted terms of a *resolved* config.

    A term is built when its base weight or its weight in any stage is non-zero.
    """
    from cvae.augmentations import build_augment
    from cvae.methods.terms import TERMS
    from cvae.networks import build_model

    base = {name: float(getattr(cfg.loss, t.weight_field)) for name, t in TERMS.items()}
    staged = {k for stage in cfg.loss.stages for k, w in stage.get("weights", {}).items() if w}
    active = [name for name in TERMS if base[name] != 0.0 or name in staged]
    needs_head = any(TERMS[name].needs_head for name in active)
    model = build_model(cfg.model, image_shape, cfg.model.output_activation, needs_head)
    terms = {name: TERMS[name].cls(cfg, model) for name in active}
    plan = WeightPlan({k: base[k] for k in active}, cfg.loss.schedules, cfg.loss.stages)
    augment = None if cfg.data.augment == "none" else build_augment(cfg.data.augment)
    views = max([num_views(cfg)] + [TERMS[name].views for name in staged])
    return Method(model, terms, plan, views, cfg.data.value_range, augment)  # type: ignore[arg-type]
