"""Opening the trackers of a training, and logging an evaluation into the same tracking runs."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.tracking.base import (
    BACKENDS,
    Tracker,
    evaluation_metrics,
    read_record,
    require,
    write_record,
)
from cvae.tracking.tensorboard import TensorBoardTracker


def check_available(names: Iterable[str]) -> None:
    """Import each backend's package now: a missing one is refused before any work."""
    for name in names:
        require(name)


def _open(
    name: str, run_dir: Path, record: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> Tracker:
    """Backend ``name``'s tracker (its module imported now)."""
    tracker: Tracker = importlib.import_module(BACKENDS[name].module).open_tracker(
        run_dir, record, params
    )
    return tracker


def open_trackers(
    run_dir: Path,
    params: Mapping[str, Any],
    loggers: Sequence[str],
    tensorboard: bool,
    completed_epochs: int,
) -> list[Tracker]:
    """The trackers of a training in ``run_dir`` (after ``completed_epochs``, when resumed):
    TensorBoard if asked, and one per name of ``loggers``, each reopening the tracking run
    ``tracking.json`` names or starting one (``params`` logged) and recorded there."""
    trackers: list[Tracker] = []
    if tensorboard:
        trackers.append(TensorBoardTracker(run_dir, purge_step=completed_epochs + 1))
    record = read_record(run_dir)
    try:
        for name in dict.fromkeys(loggers):
            tracker = _open(name, run_dir, record.get(name), params)
            trackers.append(tracker)
            record[name] = tracker.record
    except BaseException:
        for tracker in trackers:
            tracker.close(failed=True)
        raise
    if loggers:
        write_record(run_dir, record)
    return trackers


def check_recorded(run_dir: Path) -> None:
    """Refuse (one line) an evaluation whose run is tracked by a backend not installed here."""
    check_available(read_record(run_dir))


def log_evaluation(
    run_dir: Path, result: Mapping[str, Any], figures: Sequence[Path], step: int
) -> None:
    """Log the eval metrics (``eval/<metric>`` at ``step``, the checkpoint's epoch),
    ``metrics.json`` and ``figures`` into each tracking run ``tracking.json`` names."""
    for name, record in read_record(run_dir).items():
        tracker = _open(name, run_dir, record, {})
        try:
            tracker.log_metrics(evaluation_metrics(result), step)
            tracker.log_artifacts([run_dir / "metrics.json", *figures], "eval")
        finally:
            tracker.close()
