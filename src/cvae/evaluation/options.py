"""The options of one evaluation as one dataclass, :class:`EvalConfig`: default, range and help of
each option live in its field; the ``cvae eval`` flags are generated from the fields, and
:func:`to_argv` / :func:`from_argv` carry a config to and from those flags (sweeps and
reproductions run ``cvae eval`` in subprocesses)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cvae.errors import CvaeError

Embedding = Literal["umap", "tsne", "both", "none"]
Feature = Literal["auto", "mu", "h"]
EvalSplit = Literal["test", "val"]
MAX_SEED = 2**32 - 1  # scikit-learn's random_state range


def _opt(default: Any, help: str, *, low: int | None = None, flag: str | None = None) -> Any:
    """A field with its CLI help, its least value (integers) and its flag (default: the name)."""
    return field(default=default, metadata={"help": help, "low": low, "flag": flag})


@dataclass(frozen=True)
class EvalConfig:
    """What ``cvae eval`` computes and how; out-of-range values raise a one-line CvaeError."""

    embedding: Embedding = _opt(
        "none",
        "2-D embedding figure of the test mu, off by default (UMAP's first call compiles for "
        "about 90 s; t-SNE of 10k points takes as long); t-SNE stands in when umap-learn is "
        "missing",
    )
    knn_k: int = _opt(
        200,
        "neighbours of the KNN classifiers (knn_weighted_cosine_k20 uses 20); clipped to the "
        "smallest class count of the train bank",
        low=1,
    )
    knn_temperature: float = _opt(0.1, "temperature of the weighted-cosine KNN (> 0)")
    seed: int = _opt(0, "seed of every sampled quantity and figure", low=0)
    device: str = _opt("cpu", "cpu | cuda | cuda:N | auto")
    feature: Feature = _opt(
        "auto", "representation for probes (auto: the method spec's, h for aavae/ae/aaae, else mu)"
    )
    mi_batch: int = _opt(256, "aggregate-posterior batch for MI (CR-VAE: 256)", low=1)
    iwae_k: int = _opt(100, "IWAE samples per image (0: skip)", low=0)
    iwae_n: int = _opt(500, "test images for IWAE (random subset; 0: all)", low=0)
    linear_epochs: int = _opt(200, "epochs of the Adam linear probe (CR-VAE; 0: skip)", low=0)
    run_linear_sgd: bool | None = _opt(
        None,
        "AAVAE linear eval with re-encoded augmented images (default: the method spec's, "
        "on for aavae/ae/aaae only)",
        flag="linear_sgd",
    )
    linear_sgd_epochs: int = _opt(90, "epochs of the AAVAE linear eval", low=1)
    fid_n: int = _opt(10_000, "prior samples vs test images for FID (0: skip)", low=0)
    fid_weights: Path | None = _opt(None, "Inception-v3 FID weights (pt_inception-2015-12-05)")
    fid_dims: Literal[64, 2048] = _opt(2048, "Inception feature size (BTVAE paper: 64)")
    split: EvalSplit = _opt(
        "test",
        "the evaluation split the metrics score: test (val when the data has no test split), or "
        "val, to select settings without looking at test",
    )

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(EvalConfig)
        for f in dataclasses.fields(self):
            value, low = getattr(self, f.name), f.metadata["low"]
            choices = typing.get_args(hints[f.name])
            if typing.get_origin(hints[f.name]) is Literal and value not in choices:
                allowed = ", ".join(map(str, choices))
                raise CvaeError(f"{f.name} must be one of {allowed}, got {value!r}")
            if low is not None and (type(value) is not int or value < low):
                raise CvaeError(f"{f.name} must be an integer >= {low}, got {value!r}")
        t = self.knn_temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
            raise CvaeError(f"knn_temperature must be a finite number > 0, got {t}")
        if t <= 0:
            raise CvaeError(f"knn_temperature must be > 0, got {t}")
        if self.seed > MAX_SEED:
            raise CvaeError(f"seed must be at most {MAX_SEED} (2**32 - 1), got {self.seed}")

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with ``changes`` (field names); unknown names raise a one-line CvaeError."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise CvaeError(f"unknown evaluation options {sorted(unknown)}")
        return dataclasses.replace(self, **changes)


def _flag(f: dataclasses.Field[Any]) -> str:
    return "--" + (f.metadata["flag"] or f.name).replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per :class:`EvalConfig` field (default, choices and help from the field),
    and ``--no-linear``.

    Values are checked by :class:`EvalConfig` (one line, exit 2), not by argparse, except the
    choices of Literal fields.
    """
    hints = typing.get_type_hints(EvalConfig)
    for f in dataclasses.fields(EvalConfig):
        flag = _flag(f)
        kind = hints[f.name]
        options: dict[str, Any] = {"dest": f.name, "default": f.default, "help": f.metadata["help"]}
        if typing.get_origin(kind) is Literal:
            choices = typing.get_args(kind)
            options.update(choices=list(choices), type=type(choices[0]))
        elif kind == bool | None:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = next(t for t in (int, float, Path, str) if kind in (t, t | None))
        parser.add_argument(flag, **options)
    parser.add_argument("--no-linear", action="store_true", help="skip both torch linear probes")


def from_args(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of parsed ``cvae eval`` flags (``--no-linear`` skips both torch
    linear probes)."""
    cfg = EvalConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EvalConfig)})
    return cfg.replace(linear_epochs=0, run_linear_sgd=False) if args.no_linear else cfg


def to_argv(config: EvalConfig) -> list[str]:
    """The ``cvae eval`` flags of ``config``: one per field that differs from its default."""
    argv: list[str] = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value == f.default:
            continue
        if isinstance(value, bool):  # the optional switch: --flag / --no-flag
            argv.append(_flag(f) if value else "--no-" + _flag(f)[2:])
        else:
            argv += [_flag(f), str(value)]
    return argv


def from_argv(argv: Sequence[str]) -> EvalConfig:
    """The :class:`EvalConfig` of ``cvae eval`` flags (e.g. ``cvae sweep --eval-args``); unknown
    flags or values raise a one-line CvaeError."""
    parser = argparse.ArgumentParser(prog="cvae eval", add_help=False, exit_on_error=False)
    add_arguments(parser)
    try:
        args, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as err:
        raise CvaeError(f"eval options: {err}") from None
    if unknown:
        raise CvaeError(f"unknown eval options: {' '.join(unknown)}")
    return from_args(args)
