"""Run configuration: typed dataclasses, YAML presets and ``key=value`` overrides.

One :class:`RunConfig` drives the CLI and the Python API alike. Every paper/code discrepancy the
reproduction spec resolves is a field here, so a preset can select either behaviour.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from cvae.errors import ConfigError


@dataclass
class DataConfig:
    dataset: str = "digits"
    """digits | mnist | cifar10 | folder | synthetic."""
    data_dir: str | None = None
    """Folder holding the files (or a data root holding one folder per dataset)."""
    download: bool = False
    """Download missing files (checksum-verified) when ``data_dir`` is not given."""
    image_size: int | None = None
    """Resize images of a ``folder`` dataset to this square size."""
    synthetic_shape: list[int] = field(default_factory=lambda: [1, 28, 28])
    synthetic_size: int = 2048
    val_fraction: float = 0.1
    split_seed: int = 0
    value_range: str = "auto"
    """01 (ToTensor) | pm1 (Normalize 0.5/0.5) | auto (pm1 for 3 channels, else 01)."""
    augment: str = "auto"
    """Augmentation preset for the training views; auto: none for one-view methods, else the
    CVAE paper's MNIST views for 1 channel and CIFAR views for 3 channels."""


@dataclass
class ModelConfig:
    latent_dim: int = 10
    channels: list[int] = field(default_factory=lambda: [8, 16, 32])
    """Output channels of each stride-2 conv (k4, p1) of the encoder; the decoder mirrors it."""
    batchnorm: bool = False
    output_activation: str = "auto"
    """sigmoid | tanh | identity | auto (sigmoid for value_range 01, tanh for pm1)."""
    projection: list[int] = field(default_factory=lambda: [8, 5])
    """Projection-head layer sizes after the latent (paper MNIST 10->8->5)."""
    projection_final_relu: bool = False
    """ReLU after the last head layer, as in the CVAE reference code."""


@dataclass
class LossConfig:
    reconstruction: str = "mse"
    """mse | bce | gaussian (negative log-likelihood with scale exp(log_scale))."""
    reduction: str = "mean"
    """mean: average over batch and pixels (the CVAE code's F.mse_loss); sum: sum over pixels,
    mean over batch (per-image SSE / NLL)."""
    log_scale: float = 0.0
    """Gaussian log standard deviation (initial value if learned)."""
    learn_scale: bool = False
    beta: float = 1e-3
    """KL weight."""
    contrastive_weight: float = 0.1
    """lambda: weight of the NT-Xent term (methods that have one)."""
    temperature: float = 0.5
    recon_target: str = "view"
    """view: reconstruct the (augmented) input view, as the CVAE code; clean: the clean image."""
    views_regularised: str = "first"
    """first: reconstruction and KL on view 1 only (CVAE code); all: on every view."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    """Max global gradient norm; null disables clipping."""
    precision: str = "fp32"
    """fp32 | bf16 (autocast; losses stay fp32)."""
    compile: bool = False
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda | cuda:N."""
    threads: int | None = None
    """torch intra-op threads (CPU); null keeps torch's default."""
    seed: int = 0
    checkpoint_every: int = 1
    """Epochs between checkpoints (the last epoch is always saved)."""
    checkpoint_every_steps: int = 0
    """Also checkpoint mid-epoch every N steps (0: off); resume is exact either way."""
    tensorboard: bool = True
    progress: bool = True


@dataclass
class RunConfig:
    method: str = "vae"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None
    """Name of the preset the run started from (reports put the paper's numbers beside it)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CHOICES = {
    "data.value_range": ("auto", "01", "pm1"),
    "model.output_activation": ("auto", "sigmoid", "tanh", "identity"),
    "loss.reconstruction": ("mse", "bce", "gaussian"),
    "loss.reduction": ("mean", "sum"),
    "loss.recon_target": ("view", "clean"),
    "loss.views_regularised": ("first", "all"),
    "train.precision": ("fp32", "bf16"),
}


def validate(cfg: RunConfig) -> RunConfig:
    """Raise :class:`ConfigError` (one line) on the first bad value; return ``cfg``."""
    from cvae.methods import METHODS

    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; choose from {', '.join(METHODS)}")
    for key, allowed in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    positive = {
        "model.latent_dim": cfg.model.latent_dim,
        "train.epochs": cfg.train.epochs,
        "train.batch_size": cfg.train.batch_size,
        "train.lr": cfg.train.lr,
        "loss.temperature": cfg.loss.temperature,
        "train.checkpoint_every": cfg.train.checkpoint_every,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
    if not cfg.model.channels or any(c <= 0 for c in cfg.model.channels):
        raise ConfigError(f"model.channels must be positive integers, got {cfg.model.channels}")
    if any(s <= 0 for s in cfg.model.projection):
        raise ConfigError(f"model.projection sizes must be > 0, got {cfg.model.projection}")
    if cfg.loss.beta < 0:
        raise ConfigError(f"loss.beta must be >= 0, got {cfg.loss.beta}")
    if cfg.train.grad_clip is not None and cfg.train.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip must be > 0 or null, got {cfg.train.grad_clip}")
    if cfg.train.checkpoint_every_steps < 0:
        raise ConfigError("train.checkpoint_every_steps must be >= 0")
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if cfg.train.threads is not None and cfg.train.threads < 1:
        raise ConfigError(f"train.threads must be >= 1, got {cfg.train.threads}")
    return cfg


def resolve(cfg: RunConfig, image_shape: tuple[int, int, int]) -> RunConfig:
    """Replace every ``auto`` value by its concrete choice for images of ``image_shape``.

    The resolved config is what a run directory stores, so a run never depends on defaults.
    """
    from cvae.methods import METHODS

    cfg = from_plain(validate(cfg).to_dict())
    channels = image_shape[0]
    if cfg.data.value_range == "auto":
        cfg.data.value_range = "pm1" if channels == 3 else "01"
    if cfg.model.output_activation == "auto":
        cfg.model.output_activation = "sigmoid" if cfg.data.value_range == "01" else "tanh"
    if cfg.data.augment == "auto":
        multi_view = METHODS[cfg.method].num_views > 1 or cfg.loss.recon_target == "clean"
        cfg.data.augment = (
            ("cvae-cifar" if channels == 3 else "cvae-mnist") if multi_view else "none"
        )
    if cfg.loss.reconstruction == "bce" and cfg.model.output_activation != "sigmoid":
        raise ConfigError("loss.reconstruction=bce needs model.output_activation=sigmoid")
    return cfg


# --------------------------------------------------------------------------- building configs


def from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay a nested dict (from YAML) onto ``base`` (defaults if None), type-checked."""
    cfg = from_plain(base.to_dict()) if base is not None else RunConfig()
    for key, value in _flatten(data).items():
        set_value(cfg, key, value)
    return cfg


def set_value(cfg: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key (``train.lr``) with type coercion; unknown keys raise ConfigError."""
    *parents, leaf = key.split(".")
    obj: Any = cfg
    for part in parents:
        if not dataclasses.is_dataclass(obj) or part not in _field_names(obj):
            raise ConfigError(f"unknown config key '{key}'")
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj) or leaf not in _field_names(obj):
        raise ConfigError(f"unknown config key '{key}'")
    if dataclasses.is_dataclass(getattr(obj, leaf)):
        raise ConfigError(f"'{key}' is a section; set its fields, e.g. {key}.<field>=...")
    hint = get_type_hints(type(obj))[leaf]
    setattr(obj, leaf, _coerce(key, value, hint))


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["train.lr=1e-3", "model.channels=[8,16]"]`` -> ``{key: raw string}``.

    Raw strings are parsed as YAML against the field's type by :func:`set_value`, so
    ``data.value_range=01`` stays the string "01" while ``train.lr=1e-3`` becomes a float.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        out[key.strip()] = raw.strip()
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def preset_names() -> list[str]:
    files = resources.files("cvae") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> RunConfig:
    """Build a config from a packaged preset (``cvae-mnist-paper``) or a YAML file path."""
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return from_dict(load_yaml(name))
    path = resources.files("cvae") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    data = yaml.safe_load(path.read_text())
    data.setdefault("preset", name)
    return from_dict(data)


def save_yaml(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


# --------------------------------------------------------------------------- helpers


def from_plain(data: dict[str, Any]) -> RunConfig:
    """Exact inverse of :meth:`RunConfig.to_dict` (used to rebuild a run's saved config)."""
    cfg = RunConfig()
    for key, value in _flatten(data).items():
        set_value(cfg, key, value)
    return cfg


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _get(cfg: RunConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    sections = {f.name for f in dataclasses.fields(RunConfig) if f.name not in ("method", "preset")}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and (prefix or key in sections):
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Coerce YAML/CLI values to the annotated type (int -> float is fine, str -> int is not)."""
    args = [a for a in get_args(hint) if a is not type(None)]
    optional = type(None) in get_args(hint)
    if isinstance(value, str) and hint is not str:
        if optional and value.lower() in ("", "null", "none", "~"):
            value = None
        elif not (str in args and len(args) == 1):
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise ConfigError(f"{key}: cannot parse '{value}'") from None
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} cannot be null")
    target = args[0] if optional and len(args) == 1 else hint
    origin = get_origin(target)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} expects a list, got {value!r}")
        (item,) = get_args(target)
        return [_coerce(key, v, item) for v in value]
    if target is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} expects true/false, got {value!r}")
    if target is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key} expects an integer, got {value!r}")
    if target is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key} expects a number, got {value!r}")
    if target is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key} expects a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {hint}")
