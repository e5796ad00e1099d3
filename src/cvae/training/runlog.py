"""Per-epoch metrics: a CSV file (always) and TensorBoard scalars (optional)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cvae.errors import CvaeError, DataError

METRICS = "metrics.csv"


class RunLog:
    """Writes ``metrics.csv`` (atomically) with one row per epoch after ``rows``, those of the
    completed epochs of a resumed run (see :func:`completed_rows`)."""

    def __init__(
        self, run_dir: Path, tensorboard: bool, completed_epochs: int, rows: list[dict[str, Any]]
    ) -> None:
        self.path = run_dir / METRICS
        self.rows = list(rows)
        self._write()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(
                str(run_dir / "tensorboard"), purge_step=completed_epochs + 1
            )

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
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key.replace("_", "/", 1), value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

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
