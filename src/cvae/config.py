"""Run configuration: typed dataclasses, YAML presets and ``key=value`` overrides.

One :class:`RunConfig` drives the CLI and the Python API alike. Every paper/code discrepancy the
reproduction spec resolves is a field here, so a preset can select either behaviour.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from cvae.errors import ConfigError


@dataclass
class DataConfig:
    dataset: str = "digits"
    """A name in the dataset registry, ``cvae.data.DATASETS`` (see docs/datasets.md)."""
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
    channels: int | None = None
    """Replicate 1-channel images to 3 (``3``), e.g. MNIST through the BTVAE's RGB network."""
    augment: str = "auto"
    """Augmentation preset for the training views; auto: the method's default, else none for
    one-view methods and the CVAE paper's MNIST (1 channel) / CIFAR (3 channels) views."""


@dataclass
class ModelConfig:
    arch: str = "conv"
    """conv (CVAE paper) | pv (PyTorch-VAE, BTVAE) | crvae-medium | resnet18 | resnet50 (AAVAE)."""
    latent_dim: int = 10
    channels: list[int] | None = None
    """conv: output channels of each stride-2 conv (k4, p1), mirrored by the decoder (null:
    8, 16, 32, the CVAE paper's MNIST net); pv: hidden widths (null: the reference's 32..512);
    ignored by the other architectures."""
    batchnorm: bool = False
    output_activation: str = "auto"
    """sigmoid | tanh | identity | auto (sigmoid for value_range 01, tanh for pm1)."""
    projection: list[int] = field(default_factory=lambda: [8, 5])
    """Projection-head layer sizes after the latent (paper MNIST 10->8->5)."""
    projection_final_relu: bool = False
    """ReLU after the last head layer, as in the CVAE reference code."""
    deterministic: bool | None = None
    """z = mu (autoencoder baselines AE/AAAE); null: the method's default."""


@dataclass
class LossConfig:
    recon_weight: float | None = None
    """alpha, reconstruction weight. Every ``*_weight`` (and ``beta``) left null takes the
    method's default; 0 switches the term off (it is not computed), >0 adds it to any method."""
    beta: float | None = None
    """KL weight."""
    contrastive_weight: float | None = None
    """lambda: NT-Xent between projections of two views' latent samples (CVAE)."""
    barlow_weight: float | None = None
    """lambda: Barlow Twins between encodings of x and of its reconstruction (BTVAE)."""
    infonce_weight: float | None = None
    """gamma: MoCo InfoNCE with an EMA key encoder and a queue (CR-VAE)."""
    schedules: dict[str, str] = field(default_factory=dict)
    """Per-term weight schedule over (fractional) epochs: ``constant``, ``linear:E`` (warm up
    from 0 over E epochs), ``cyclical:P:R`` (Fu et al. 2019: period P epochs, ramp over the
    first fraction R of each period). Keys are term names: recon, kl, ntxent, barlow, infonce."""
    stages: list[dict[str, Any]] = field(default_factory=list)
    """Consecutive stages, each ``{epochs: N, weights: {term: w}}``: term weights that replace
    the base weights for those epochs (e.g. contrastive pretraining, then generative tuning)."""
    reconstruction: str = "mse"
    """mse | bce | gaussian (negative log-likelihood with scale exp(log_scale))."""
    reduction: str = "mean"
    """mean: average over batch and pixels (the CVAE code's F.mse_loss); sum: sum over pixels,
    mean over batch (per-image SSE / NLL)."""
    log_scale: float = 0.0
    """Gaussian log standard deviation (initial value if learned)."""
    learn_scale: bool = False
    temperature: float = 0.5
    """NT-Xent temperature."""
    recon_target: str = "auto"
    """view: reconstruct the (augmented) input view (CVAE, CR-VAE code); clean: the clean image
    (AAVAE); auto: the method's default."""
    views_regularised: str = "first"
    """first: reconstruction and KL on view 1 only (CVAE code); all: on every view."""
    barlow_on: str = "mu+logvar"
    """mu+logvar: BT(mu(x), mu(x_hat)) + BT(logvar(x), logvar(x_hat)) (BTVAE code);
    z: BT between sampled latents (the paper's wording)."""
    barlow_norm: str = "original"
    """original: batch standardisation with biased variance + eps, C / N (Barlow Twins);
    reference: unbiased std, C / 64 (BTVAE code)."""
    barlow_offdiag: float = 5e-3
    infonce_temperature: float = 0.1
    queue_size: int = 4096
    momentum: float = 0.99
    """EMA momentum of the key encoder."""
    ema_every: str = "step"
    """step (CR-VAE code) | epoch (the paper's Algorithm 1)."""
    negatives: str = "queue"
    """queue (CR-VAE code, MoCo) | in_batch (the paper)."""
    separate_query: bool = True
    """CR-VAE code: the query is a second encoder pass on view 1 (new noise); false: reuse the
    VAE branch's latent sample."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"
    """adam | sgd."""
    momentum: float = 0.9
    """SGD momentum."""
    nesterov: bool = False
    scheduler: str = "none"
    """none | exponential (lr_gamma per epoch) | plateau (ReduceLROnPlateau on the epoch's mean
    train loss) | warmup (linear warm-up from 0 over warmup_epochs, per step, then constant)."""
    lr_gamma: float = 0.95
    plateau_factor: float = 0.9
    plateau_patience: int = 20
    min_lr: float = 0.0
    warmup_epochs: float = 10.0
    grad_clip: float | None = 1.0
    """Max global gradient norm; null disables clipping."""
    drop_last: bool = False
    """Drop the last partial batch (Barlow Twins and CR-VAE code)."""
    epoch_fraction: float = 1.0
    """Fraction of the training set one epoch covers (CR-VAE code: 0.5, spec 5.4)."""
    precision: str = "fp32"
    """fp32 | bf16 (autocast; losses stay fp32)."""
    compile: bool = False
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda | cuda:N (several processes: cuda:LOCAL_RANK)."""
    sync_batchnorm: bool = False
    """Several processes: BatchNorm statistics over the global batch (SyncBatchNorm, CUDA only);
    false: each process normalises over its own rows."""
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
    "loss.recon_target": ("auto", "view", "clean"),
    "loss.barlow_on": ("mu+logvar", "z"),
    "loss.barlow_norm": ("original", "reference"),
    "loss.ema_every": ("step", "epoch"),
    "loss.negatives": ("queue", "in_batch"),
    "train.optimizer": ("adam", "sgd"),
    "train.scheduler": ("none", "exponential", "plateau", "warmup"),
    "model.output_activation": ("auto", "sigmoid", "tanh", "identity"),
    "loss.reconstruction": ("mse", "bce", "gaussian"),
    "loss.reduction": ("mean", "sum"),
    "loss.views_regularised": ("first", "all"),
    "train.precision": ("fp32", "bf16"),
}


SEED_RANGE = 2**32
"""Seeds are in [0, 2**32): per-epoch generators derive larger seeds that torch must accept."""
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def validate(cfg: RunConfig) -> RunConfig:
    """Raise :class:`ConfigError` (one line) on the first bad value; return ``cfg``.

    Needs no data: every check here runs before anything is loaded or written.
    """
    from cvae.data import DATASETS
    from cvae.data.base import IN_MEMORY
    from cvae.methods import METHODS

    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; choose from {', '.join(METHODS)}")
    if cfg.data.dataset not in (*DATASETS, IN_MEMORY):
        raise ConfigError(
            f"unknown dataset '{cfg.data.dataset}'; choose from {', '.join(DATASETS)}"
        )
    for key, allowed in _CHOICES.items():
        value = _get(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    _check_finite(cfg.to_dict(), "")
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
    if cfg.model.channels is not None and (
        not cfg.model.channels or any(c <= 0 for c in cfg.model.channels)
    ):
        raise ConfigError(f"model.channels must be positive integers, got {cfg.model.channels}")
    if any(s <= 0 for s in cfg.model.projection):
        raise ConfigError(f"model.projection sizes must be > 0, got {cfg.model.projection}")
    _validate_loss(cfg)
    _validate_train(cfg.train)
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}")
    if not 0 <= cfg.data.split_seed < SEED_RANGE:
        raise ConfigError(f"data.split_seed must be in [0, 2**32), got {cfg.data.split_seed}")
    return cfg


def _check_finite(data: Any, key: str) -> None:
    """Every number anywhere in the (plain) config is finite."""
    if isinstance(data, dict):
        for k, v in data.items():
            _check_finite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(data, list):
        for v in data:
            _check_finite(v, key)
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{key} must be a finite number, got {data}")


def _validate_loss(cfg: RunConfig) -> None:
    from cvae.methods import METHODS
    from cvae.methods.schedules import parse_schedule
    from cvae.methods.terms import TERMS

    loss = cfg.loss
    for term, text in loss.schedules.items():
        if term not in TERMS:
            raise ConfigError(f"loss.schedules: unknown term '{term}'; terms: {', '.join(TERMS)}")
        parse_schedule(text)
    staged: set[str] = set()
    for i, stage in enumerate(loss.stages):
        weights = stage.get("weights", {}) if isinstance(stage, dict) else None
        if not isinstance(weights, dict) or set(stage) - {"epochs", "weights"}:
            raise ConfigError(f"loss.stages[{i}] must be {{epochs: N, weights: {{term: w}}}}")
        epochs = stage.get("epochs")
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"loss.stages[{i}].epochs must be a positive integer")
        unknown = set(weights) - set(TERMS)
        if unknown:
            raise ConfigError(f"loss.stages[{i}]: unknown terms {sorted(unknown)}")
        for term, w in weights.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool):
                raise ConfigError(f"loss.stages[{i}].weights.{term} must be a number, got {w!r}")
        staged |= {term for term, w in weights.items() if w}
    defaults = METHODS[cfg.method].defaults
    for term, spec in TERMS.items():
        weight = getattr(loss, spec.weight_field)
        if weight is not None and weight < 0 and term != "barlow":  # BTVAE ablates lambda < 0
            raise ConfigError(f"loss.{spec.weight_field} must be >= 0, got {weight}")
        if weight is None:
            weight = defaults.get(f"loss.{spec.weight_field}")
        if spec.needs_head and (weight or term in staged) and not cfg.model.projection:
            raise ConfigError(
                f"the {term} term needs a projection head: model.projection must not be empty"
            )
    if loss.queue_size < 1 or not 0 <= loss.momentum < 1:
        raise ConfigError("loss.queue_size must be >= 1 and loss.momentum in [0, 1)")


def _validate_train(tc: TrainConfig) -> None:
    if not _DEVICE.fullmatch(tc.device):
        raise ConfigError(f"train.device '{tc.device}' is not one of auto, cpu, cuda, cuda:N, mps")
    if not 0 <= tc.seed < SEED_RANGE:
        raise ConfigError(f"train.seed must be in [0, 2**32), got {tc.seed}")
    if not 0 < tc.epoch_fraction <= 1:
        raise ConfigError(f"train.epoch_fraction must be in (0, 1], got {tc.epoch_fraction}")
    if tc.grad_clip is not None and tc.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip must be > 0 or null, got {tc.grad_clip}")
    at_least_zero = {
        "train.weight_decay": tc.weight_decay,
        "train.momentum": tc.momentum,
        "train.min_lr": tc.min_lr,
        "train.warmup_epochs": tc.warmup_epochs,
        "train.plateau_patience": tc.plateau_patience,
        "train.checkpoint_every_steps": tc.checkpoint_every_steps,
    }
    for key, value in at_least_zero.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    if tc.optimizer == "sgd" and tc.nesterov and tc.momentum == 0:
        raise ConfigError("train.nesterov needs train.momentum > 0")
    if not 0 < tc.plateau_factor < 1:
        raise ConfigError(f"train.plateau_factor must be in (0, 1), got {tc.plateau_factor}")
    if not tc.lr_gamma > 0:
        raise ConfigError(f"train.lr_gamma must be > 0, got {tc.lr_gamma}")
    if tc.threads is not None and tc.threads < 1:
        raise ConfigError(f"train.threads must be >= 1, got {tc.threads}")


def resolve(cfg: RunConfig, image_shape: tuple[int, int, int]) -> RunConfig:
    """Replace every ``auto`` value by its concrete choice for images of ``image_shape``.

    The resolved config is what a run directory stores, so a run never depends on defaults.
    """
    from cvae.methods import METHODS

    cfg = from_plain(validate(cfg).to_dict())
    spec = METHODS[cfg.method]
    for key, value in spec.defaults.items():  # the method's choices for unset values
        if _get(cfg, key) in (None, "auto"):
            set_value(cfg, key, value)
    from cvae.methods.terms import TERMS

    for term in TERMS.values():  # terms a method does not name are off
        if getattr(cfg.loss, term.weight_field) is None:
            setattr(cfg.loss, term.weight_field, 0.0)
    if cfg.model.channels is None and cfg.model.arch == "conv":
        cfg.model.channels = [8, 16, 32]
    if cfg.model.deterministic is None:
        cfg.model.deterministic = False
    if cfg.loss.recon_target == "auto":
        cfg.loss.recon_target = "view"
    channels = image_shape[0]
    if cfg.data.value_range == "auto":
        cfg.data.value_range = "pm1" if channels == 3 else "01"
    if cfg.model.output_activation == "auto":
        cfg.model.output_activation = "sigmoid" if cfg.data.value_range == "01" else "tanh"
    if cfg.data.augment == "auto":
        multi_view = num_views(cfg) > 1 or cfg.loss.recon_target == "clean"
        cfg.data.augment = (
            ("cvae-cifar" if channels == 3 else "cvae-mnist") if multi_view else "none"
        )
    if cfg.loss.reconstruction == "bce" and cfg.model.output_activation != "sigmoid":
        raise ConfigError("loss.reconstruction=bce needs model.output_activation=sigmoid")
    return cfg


def num_views(cfg: RunConfig) -> int:
    """Views a (resolved) config needs: two when any active term compares views."""
    from cvae.methods.terms import TERMS

    return max(
        [1] + [t.views for t in TERMS.values() if (getattr(cfg.loss, t.weight_field) or 0) != 0]
    )


def changed_keys(a: RunConfig, b: RunConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    flat_a, flat_b = _flatten(a.to_dict()), _flatten(b.to_dict())
    return [k for k in flat_a if flat_a[k] != flat_b[k]]


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
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
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


_SECTIONS = {"data", "model", "loss", "train"}


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _get(cfg: RunConfig, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in _SECTIONS:  # one level: mapping fields stay whole
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
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
    if target is Any:
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} expects a mapping, got {value!r}")
        _, item = get_args(target)
        return {str(k): _coerce(f"{key}.{k}", v, item) for k, v in value.items()}
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
