"""The record of one paper: the runs its tables need (:class:`Row`), how long they train
(:class:`Budget`) and the numbers it published (:class:`PaperNumber`), each paper in one module
of :mod:`cvae.experiments.papers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cvae.evaluation.options import EvalConfig

BUDGETS = ("quick", "medium", "paper")


@dataclass(frozen=True)
class PaperNumber:
    """One published number and the conditions it was measured under.

    ``value`` and ``std`` (the paper's spread over ``runs`` runs, None if not given) are in the
    unit of our metric ``metric`` (accuracies as fractions, KL/MI/NLL in nats, AU as a count);
    ``text`` is the cell as printed. ``presets`` are the preset stems that may be compared with
    it (``P``, ``P-paper`` and ``P-code`` all match ``P``). ``conditions`` are config keys
    (``data.dataset`` always included) the run must match; ``protocol`` are entries our metric's
    protocol must have for the numbers to be comparable. ``caveat``, when set, says why the number
    is never directly comparable (e.g. a bug in the paper's evaluation). ``tolerance`` is an
    absolute floor on the "within noise" band.
    """

    value: float
    paper: str
    table: str
    dataset: str
    model: str
    metric: str
    text: str
    presets: tuple[str, ...] = ()
    conditions: Mapping[str, Any] = field(default_factory=dict)
    std: float | None = None
    runs: int = 1
    unit: str = ""
    tolerance: float = 0.0
    protocol: Mapping[str, Any] = field(default_factory=dict)
    caveat: str | None = None

    @property
    def source(self) -> str:
        """``"CVAE (Lin, Zhang, Chahal) Table 1, MNIST, CVAE"``."""
        return f"{self.paper} {self.table}, {self.dataset}, {self.model}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "std": self.std,
            "runs": self.runs,
            "text": self.text,
            "unit": self.unit,
            "source": self.source,
            "paper": self.paper,
            "table": self.table,
            "dataset": self.dataset,
            "model": self.model,
            "metric": self.metric,
            "conditions": dict(self.conditions),
            "protocol": dict(self.protocol),
            "caveat": self.caveat,
        }


@dataclass(frozen=True)
class Row:
    """One table row: its runs train ``preset`` with ``overrides`` (dotted config keys), once
    per seed; the report shows ``metrics`` (``metrics.json`` names). ``code`` maps a metric to
    the reference code's variant of it (read from the same runs); ``code_preset`` names a
    preset whose runs (same overrides) are the reference-code variant of the whole row;
    ``max_seeds`` caps the seeds (ablations the paper plots from one run)."""

    table: str
    label: str
    preset: str
    metrics: tuple[str, ...]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    code: Mapping[str, str] = field(default_factory=dict)
    code_preset: str | None = None
    max_seeds: int | None = None


@dataclass(frozen=True)
class Budget:
    """``epochs`` per run (None: the preset's, capped at it otherwise), the first ``seeds`` of
    the paper's seeds, extra ``overrides`` (e.g. a fraction of an epoch), the ``tables`` and
    ``datasets`` it covers (None: all), whether the reference-code variants run, and how its runs
    are evaluated."""

    epochs: int | None
    seeds: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    code: bool = True
    eval_config: EvalConfig = EvalConfig()


QUICK_EVAL = EvalConfig(embedding="none")
"""The evaluation of the quick budgets: every metric, no UMAP figure."""


@dataclass(frozen=True)
class Paper:
    """Everything about one paper: the ``rows`` of its tables (the grid of runs), its ``seeds``
    (``seeded``: whether it reports mean (std) over them), one :class:`Budget` per name in
    :data:`BUDGETS`, its published ``numbers`` and the ``notes`` its report carries."""

    name: str
    title: str
    seeds: tuple[int, ...]
    seeded: bool
    rows: tuple[Row, ...]
    budgets: Mapping[str, Budget]
    numbers: tuple[PaperNumber, ...]
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if set(self.budgets) != set(BUDGETS):
            raise ValueError(f"{self.name}: budgets must be {BUDGETS}, got {tuple(self.budgets)}")


def percent(text: str) -> tuple[float, float | None]:
    """``"88.51(0.92)"`` -> ``(0.8851, 0.0092)``; ``"91.80"`` -> ``(0.918, None)``."""
    value, std = number(text)
    return value / 100, None if std is None else std / 100


def number(text: str) -> tuple[float, float | None]:
    """``"10.07(-0.73)"`` -> ``(10.07, 0.73)`` (OCR'd negative stds taken as absolute)."""
    m = re.fullmatch(r"\s*(-?[\d.]+)\s*(?:\(\s*(-?[\d.]+)\s*\))?\s*", text)
    if m is None:
        raise ValueError(f"cannot parse table cell {text!r}")
    return float(m.group(1)), None if m.group(2) is None else abs(float(m.group(2)))
