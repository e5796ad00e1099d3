"""Per-epoch metrics: a CSV file (always) and the run's trackers (TensorBoard, MLflow, W&B:
:mod:`cvae.tracking`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cvae.errors import CvaeError, DataError
from cvae.tracking import Tracker, metric_name

METRICS = "metrics.csv"
RUN_FILES = ("config.yaml", "data.json", METRICS)
"""The files a training copies into its tracking runs when it ends."""


class RunLog:
    """Writes ``metrics.csv`` (atomically) with one row per epoch after ``rows``, those of the
    completed epochs of a resumed run (see :func:`completed_rows`), and sends each row's numbers
    to the ``trackers`` at step ``epoch``."""

    def __init__(self, run_dir: Path, trackers: list[Tracker], rows: list[dict[str, Any]]) -> None:
        self.run_dir = run_dir
        self.path = run_dir / METRICS
        self.rows = list(rows)
        self._write()
        self.trackers = trackers

    def log(self, row: dict[str, Any], print_summary: bool = False, epochs: int = 0) -> None:
        """Append ``row``; with ``print_summary``, also print it on one line."""
        self.rows.append(row)
        if print_summary:
            losses = " ".join(
                f"{k}={v:.4g}" for k, v in row.items() if k.startswith(("train_", "val_"))
            )
            print(f"epoch {row['epoch']}/{epochs} {losses} ({row['images_per_sec']:.0f} img/s)",
                  flush=True)  # fmt: skip
        self._write()
        numbers = {
            metric_name(k): v
            for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float))
        }
        for tracker in self.trackers:
            tracker.log_metrics(numbers, row["epoch"])

    def close(self, failed: bool = False) -> None:
        """Copy the run's files into the trackers and end them (``failed``: the training
        raised)."""
        files = [self.run_dir / name for name in RUN_FILES]
        for tracker in self.trackers:
            try:
                if not failed:
                    tracker.log_artifacts(files, "run")
            finally:
                tracker.close(failed)

    def _write(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        tmp = self.path.with_suffix(".csv.tmp")
        try:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=columns)
                writer.writeheader()
                writer.writerows(self.rows)
            tmp.replace(self.path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise CvaeError(f"{self.path}: cannot write ({err.strerror or err})") from None


def completed_rows(path: Path, completed_epochs: int) -> list[dict[str, Any]]:
    """The rows of a resumed run's ``metrics.csv`` up to ``completed_epochs`` (later rows belong
    to epochs the checkpoint does not hold); a malformed file raises a one-line DataError."""
    try:
        rows = read_metrics(path)
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: malformed metrics file ({err}); fix or move it away") from None
    kept = []
    for i, row in enumerate(rows, start=2):
        numbers = all(isinstance(v, float) or v == "" for v in row.values())
        if None in row or not numbers or not isinstance(row.get("epoch"), float):
            raise DataError(
                f"{path}: malformed metrics file (line {i}: not the header's columns, a value "
                "that is not a number, or no epoch); fix or move it away"
            )
        if row["epoch"] <= completed_epochs:
            kept.append(row)
    return kept


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``metrics.csv`` (values as float where they parse), or [] if absent."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _num(value: str) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
