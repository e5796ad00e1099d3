"""The :class:`Tracker` protocol, the backends, and the helpers they share."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from cvae.errors import CvaeError

RECORD = "tracking.json"
"""The run-directory file naming each backend's tracking run (``{backend: record}``)."""


class Tracker(Protocol):
    """One backend's tracking run. Opened by the backend module's ``open_tracker(run_dir,
    record, params)``: a new run (``record`` None; ``params``, the flattened config, logged) or
    the run ``record`` names (a resumed training, ``cvae eval``)."""

    record: dict[str, Any]
    """What reopens this tracking run (kept in ``tracking.json``); empty: nothing to reopen."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log numbers at ``step`` (the epoch)."""

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        """Copy files into the tracking run, under ``folder``."""

    def close(self, failed: bool = False) -> None:
        """End the tracking run (marked failed when the training raised)."""


@dataclass(frozen=True)
class Backend:
    """An optional backend: the package it imports, the pip extra that installs it and the
    module holding its ``open_tracker``."""

    package: str
    extra: str
    module: str


BACKENDS: dict[str, Backend] = {
    "mlflow": Backend("mlflow", "mlflow", "cvae.tracking.mlflow_tracker"),
    "wandb": Backend("wandb", "wandb", "cvae.tracking.wandb_tracker"),
}
"""The names ``train.loggers`` and ``--logger`` accept (``cvae.config.schema.Logger``)."""


def require(name: str) -> ModuleType:
    """The package of backend ``name``, imported; missing: a one-line CvaeError naming the
    extra to install."""
    backend = BACKENDS[name]
    try:
        return importlib.import_module(backend.package)
    except ImportError as err:
        raise CvaeError(
            f"the {name} logger needs the {backend.package} package ({err}); "
            f"install it with: pip install 'cvae[{backend.extra}]'"
        ) from None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-4}}`` -> ``{"train.lr": 1e-4}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def metric_name(column: str) -> str:
    """A ``metrics.csv`` column as a tracker's metric name: ``train_loss`` -> ``train/loss``
    (the train and val curves group by prefix); others unchanged."""
    for group in ("train", "val"):
        if column.startswith(group + "_"):
            return f"{group}/{column.removeprefix(group + '_')}"
    return column


def evaluation_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``metrics.json`` as ``eval/<metric>`` (unavailable ones left out)."""
    return {
        f"eval/{name}": float(m["value"])
        for name, m in result["metrics"].items()
        if isinstance(m.get("value"), (int, float))
    }


def read_record(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The run's ``tracking.json`` (``{}`` if absent); malformed: a one-line CvaeError."""
    path = run_dir / RECORD
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CvaeError(f"{path}: unreadable ({err}); fix or move it away") from None
    valid = isinstance(record, dict) and all(
        name in BACKENDS and isinstance(entry, dict) for name, entry in record.items()
    )
    if not valid:
        raise CvaeError(
            f"{path}: not a tracking record ({{backend: {{...}}}} with backends "
            f"{', '.join(BACKENDS)}); fix or move it away"
        )
    return record


def write_record(run_dir: Path, record: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``tracking.json`` atomically."""
    path = run_dir / RECORD
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def recorded(record: Mapping[str, Any], key: str, backend: str) -> str:
    """``record[key]``, a string ``tracking.json`` must hold; absent: a one-line CvaeError."""
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise CvaeError(f"{RECORD}: the {backend} entry has no {key}; fix or move it away")
    return value
