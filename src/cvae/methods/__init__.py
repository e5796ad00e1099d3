"""Method registry: ``METHODS[name]`` -> :class:`MethodSpec`; :func:`build_method` assembles one."""

from __future__ import annotations

from cvae.config import RunConfig as RunConfigT
from cvae.methods import cvae as _cvae  # noqa: F401  (registers)
from cvae.methods import vae as _vae  # noqa: F401  (registers)
from cvae.methods.base import METHODS, Method, MethodSpec, Step, Term, register

__all__ = ["METHODS", "Method", "MethodSpec", "Step", "Term", "build_method", "register"]


def build_method(cfg: RunConfigT, image_shape: tuple[int, int, int]) -> Method:
    """Assemble the model, augmentation and weighted terms of a *resolved* config."""
    from cvae.augmentations import build_augment
    from cvae.networks import build_model

    spec = METHODS[cfg.method]
    model = build_model(cfg.model, image_shape, cfg.model.output_activation, spec.uses_head)
    augment = None if cfg.data.augment == "none" else build_augment(cfg.data.augment)
    terms = spec.build_terms(cfg)
    return Method(model, terms, spec.num_views, cfg.data.value_range, augment)  # type: ignore[arg-type]
