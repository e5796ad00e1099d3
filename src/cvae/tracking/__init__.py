"""Experiment tracking: the per-epoch metrics, the config, the eval metrics and the figures of a
run sent to TensorBoard, MLflow or Weights & Biases (``train.tensorboard``, ``train.loggers``,
``cvae train --logger``); ``metrics.csv`` is always written (:mod:`cvae.training.runlog`).

Each backend is one :class:`Tracker`; MLflow and W&B are imported only when used, and a missing
package is one :class:`~cvae.errors.CvaeError` naming the extra to install. A run records its
tracking runs in ``tracking.json`` so that ``cvae eval`` logs into the same ones
(docs/tracking.md)."""

from __future__ import annotations

from cvae.tracking.base import (
    BACKENDS,
    RECORD,
    Tracker,
    evaluation_metrics,
    flatten,
    metric_name,
    read_record,
    require,
)
from cvae.tracking.session import check_available, check_recorded, log_evaluation, open_trackers

__all__ = [
    "BACKENDS",
    "RECORD",
    "Tracker",
    "check_available",
    "check_recorded",
    "evaluation_metrics",
    "flatten",
    "log_evaluation",
    "metric_name",
    "open_trackers",
    "read_record",
    "require",
]
