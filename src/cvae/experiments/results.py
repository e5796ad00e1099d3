"""What evaluated runs wrote, read once: ``metrics.json`` checked, one metric of one run or of
several runs (:class:`Aggregate`), and the formatting of values for tables."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvae.errors import CvaeError

METRICS_FILE = "metrics.json"


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_metrics_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (``cvae eval``'s ``metrics.json``), its ``metrics`` an object
    too; :class:`CvaeError` in one line otherwise."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CvaeError(f"{path}: invalid JSON ({err.msg}); rerun `cvae eval`") from None
    except UnicodeDecodeError:
        raise CvaeError(f"{path}: not UTF-8 text; rerun `cvae eval`") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics", {}), dict):
        what = "the file" if not isinstance(data, dict) else "its 'metrics'"
        raise CvaeError(f"{path}: {what} is not a JSON object; rerun `cvae eval`")
    return data


def metric_entry(data: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """``metric`` of a ``metrics.json`` as ``{value, protocol, unit, unavailable}``; a bare
    number stands for its value, the unit defaults to ``accuracy`` for top-1 accuracies."""
    raw = data.get("metrics", {}).get(metric)
    m = raw if isinstance(raw, Mapping) else {"value": raw}
    protocol = m.get("protocol")
    protocol = dict(protocol) if isinstance(protocol, Mapping) else {}
    unit = m.get("unit") or ("accuracy" if protocol.get("metric") == "top-1 accuracy" else "")
    return {
        "value": m.get("value"),
        "protocol": protocol,
        "unit": unit,
        "unavailable": m.get("unavailable"),
    }


def mean_or_none(values: Sequence[float]) -> float | None:
    """Mean of ``values``; None when empty."""
    return statistics.fmean(values) if values else None


def sample_std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n-1); None below two values."""
    return statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Aggregate:
    """One metric over one or more runs: ``values`` (one per run that has a finite one), the
    ``unit``, the ``protocol`` (first run with a value), ``epochs`` trained (fewest over the
    runs), why a value is missing (``reason``) and the evaluation ``split`` (``"val"`` when any
    run scored the val split; None when the files do not say)."""

    values: list[float] = field(default_factory=list)
    unit: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None
    reason: str | None = None
    split: str | None = None

    @property
    def mean(self) -> float | None:
        return mean_or_none(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n-1) over the runs; None below two values."""
        return sample_std(self.values)


def measure(data: Mapping[str, Any], metric: str) -> Aggregate:
    """``metric`` of one run's ``metrics.json`` (``data``)."""
    epoch = data.get("checkpoint_epoch")
    m = metric_entry(data, metric)
    split = data.get("eval_split")
    agg = Aggregate(
        unit=m["unit"],
        epochs=epoch if isinstance(epoch, int) else None,
        split=split.get("name") if isinstance(split, Mapping) else None,
    )
    value = m["value"]
    if is_number(value) and math.isfinite(value):
        agg.values, agg.protocol = [float(value)], m["protocol"]
    else:
        why = m["unavailable"] or ("no value" if metric in data.get("metrics", {}) else "n/a")
        agg.reason = f"{metric}: {why}"
    return agg


def aggregate(run_dirs: Sequence[Path], metric: str) -> Aggregate:
    """``metric`` over the ``metrics.json`` of ``run_dirs``; runs without the file or the metric
    are left out, and ``reason`` says why."""
    parts = []
    for run_dir in run_dirs:
        path = Path(run_dir) / METRICS_FILE
        if path.is_file():
            parts.append(measure(read_metrics_json(path), metric))
        else:
            parts.append(Aggregate(reason="not evaluated yet"))
    return combine(parts)


def combine(parts: Sequence[Aggregate], reasons: bool = True) -> Aggregate:
    """One :class:`Aggregate` of several runs' (``reasons``: keep why values are missing)."""
    epochs = [a.epochs for a in parts if a.epochs is not None]
    with_values = [a for a in parts if a.values]
    splits = {a.split for a in parts if a.split is not None}
    return Aggregate(
        values=[v for a in parts for v in a.values],
        unit=next((a.unit for a in with_values if a.unit), ""),
        protocol=with_values[0].protocol if with_values else {},
        epochs=min(epochs) if epochs else None,
        reason=("; ".join(dict.fromkeys(a.reason for a in parts if a.reason)) or None)
        if reasons
        else None,
        split="val" if "val" in splits else next(iter(splits), None),
    )


def format_value(value: Any, unit: str = "", signed: bool = False) -> str:
    """One value of a table: ``"92.50%"`` (accuracy), ``"17.1"`` (4 significant digits),
    ``"15"`` (an int), ``"n/a"`` (None); ``signed`` adds ``+`` to positive numbers."""
    if value is None:
        return "n/a"
    if not is_number(value):
        return str(value)
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    sign = "+" if signed else ""
    if unit == "accuracy":
        return f"{100 * value:{sign}.2f}%"
    return f"{value:{sign}.4g}"


def format_aggregate(agg: Aggregate, unit: str = "") -> str:
    """``"88.51% (0.92)"``, ``"22.24 (0.10)"``, ``"22.24"`` (one run) or ``"n/a: reason"``."""
    mean, std = agg.mean, agg.std
    if mean is None:
        return f"n/a: {agg.reason}" if agg.reason else "n/a"
    scale, suffix = (100, "%") if (unit or agg.unit) == "accuracy" else (1, "")
    text = f"{_two_decimals(mean * scale)}{suffix}"
    return text if std is None else f"{text} ({_two_decimals(std * scale)})"


def _two_decimals(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.3g}"
