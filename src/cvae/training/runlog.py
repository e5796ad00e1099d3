"""Per-epoch metrics: a CSV file (always) and TensorBoard scalars (optional)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class RunLog:
    """Appends one row per epoch to ``metrics.csv``; on resume drops rows past the checkpoint."""

    def __init__(self, run_dir: Path, tensorboard: bool, completed_epochs: int) -> None:
        self.path = run_dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = [
            r for r in read_metrics(self.path) if int(float(r["epoch"])) <= completed_epochs
        ]
        self._write()
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(
                str(run_dir / "tensorboard"), purge_step=completed_epochs + 1
            )

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
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
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


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
