"""From a config as written to the config a run uses: the registry checks (method, dataset,
term combinations) and the resolution of every ``auto``/null value by the method's defaults and
the image shape. The resolved config is what a run directory stores, so a run never depends on
defaults (nor on an architecture registered in-process: its module is recorded)."""

from __future__ import annotations

from cvae.augmentations.config import fits
from cvae.config import TERM_NAMES, RunConfig, TermName, from_plain, validate
from cvae.data import DATASETS
from cvae.data.base import IN_MEMORY
from cvae.errors import ConfigError
from cvae.methods.specs import METHODS, MethodSpec
from cvae.methods.terms import TERMS
from cvae.networks.registry import architecture_module, check_architecture


def check_config(cfg: RunConfig) -> RunConfig:
    """:func:`cvae.config.validate` plus the names the registries must know and the terms'
    needs; returns ``cfg``. Needs no data: it runs before anything is loaded or written."""
    validate(cfg)
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; choose from {', '.join(METHODS)}")
    if cfg.data.dataset not in (*DATASETS, IN_MEMORY):
        raise ConfigError(
            f"unknown dataset '{cfg.data.dataset}'; choose from {', '.join(DATASETS)}"
        )
    check_architecture(cfg.model.arch, cfg.model.module)
    _check_heads(cfg, METHODS[cfg.method])
    return cfg


def resolve(cfg: RunConfig, image_shape: tuple[int, int, int]) -> RunConfig:
    """A checked copy of ``cfg`` with every ``auto``/null value replaced by its concrete choice
    for images of ``image_shape = (C, H, W)``. ``data.augment: auto`` resolves to ``none`` when
    the method's views were made for images over twice the size (:func:`fits`: e.g. the 28-pixel
    MNIST views on 8x8 digits); a pipeline named explicitly is kept."""
    cfg = from_plain(check_config(cfg).to_dict())
    auto_views = cfg.data.augment == "auto"
    _method_defaults(cfg, METHODS[cfg.method])
    _shape_defaults(cfg, image_shape[0])
    if auto_views and not fits(cfg.data.augment, min(image_shape[1:])):
        cfg.data.augment = "none"  # stored in config.yaml: the views this run trained on
    _check_combinations(cfg)
    return cfg


def active_terms(cfg: RunConfig, spec: MethodSpec | None = None) -> list[TermName]:
    """Terms to build: a non-zero base weight (null: ``spec``'s default, if given), or a
    non-zero weight in any stage."""
    staged = {name for stage in cfg.loss.stages for name, w in stage.weights.items() if w}
    return [n for n in TERM_NAMES if _weight(cfg, n, spec) != 0.0 or n in staged]


def trains_decoder(cfg: RunConfig) -> bool:
    """Whether any active term of a resolved config trains the decoder (not so for SimCLR)."""
    return any(TERMS[name].decodes for name in active_terms(cfg))


def _weight(cfg: RunConfig, name: TermName, spec: MethodSpec | None) -> float:
    weight = cfg.loss.terms[name].weight
    if weight is None:
        return 0.0 if spec is None else spec.weights.get(name, 0.0)
    return weight


def num_views(cfg: RunConfig) -> int:
    """Views the base weights need: two when any term with a non-zero weight compares views."""
    weighted = [n for n in TERM_NAMES if (cfg.loss.terms[n].weight or 0.0) != 0.0]
    return max([1] + [TERMS[n].views for n in weighted])


def _method_defaults(cfg: RunConfig, spec: MethodSpec) -> None:
    for name in TERM_NAMES:  # terms a method does not name are off
        term = cfg.loss.terms[name]
        if term.weight is None:
            term.weight = spec.weights.get(name, 0.0)
    recon = cfg.loss.terms.recon
    if recon.target == "auto":
        recon.target = spec.recon_target
    if cfg.loss.terms.ntxent.features == "auto":
        cfg.loss.terms.ntxent.features = spec.ntxent_features
    if cfg.model.deterministic is None:
        cfg.model.deterministic = spec.deterministic
    if cfg.data.augment == "auto" and spec.augment is not None:
        cfg.data.augment = spec.augment


def _shape_defaults(cfg: RunConfig, channels: int) -> None:
    if cfg.model.module is None:  # recorded, so that a later process imports it again
        cfg.model.module = architecture_module(cfg.model.arch)
    if cfg.model.channels is None and cfg.model.arch == "conv":
        cfg.model.channels = [8, 16, 32]
    if cfg.data.value_range == "auto":
        cfg.data.value_range = "pm1" if channels == 3 else "01"
    if cfg.model.output_activation == "auto":
        cfg.model.output_activation = "sigmoid" if cfg.data.value_range == "01" else "tanh"
    if cfg.data.augment == "auto":
        cfg.data.augment = _default_views(cfg, channels)


def _default_views(cfg: RunConfig, channels: int) -> str:
    """No augmentation for one clean view, else the CVAE paper's MNIST / CIFAR views."""
    if num_views(cfg) == 1 and cfg.loss.terms.recon.target != "clean":
        return "none"
    return "cvae-cifar" if channels == 3 else "cvae-mnist"


def _check_heads(cfg: RunConfig, spec: MethodSpec) -> None:
    heads = [n for n in active_terms(cfg, spec) if TERMS[n].needs_head(cfg.loss.terms)]
    if heads and not cfg.model.projection:
        raise ConfigError(
            f"the {heads[0]} term needs a projection head: model.projection must not be empty"
        )


def _check_combinations(cfg: RunConfig) -> None:
    if cfg.loss.terms.recon.likelihood == "bce" and cfg.model.output_activation != "sigmoid":
        raise ConfigError("loss.terms.recon.likelihood=bce needs model.output_activation=sigmoid")
