"""The one rule that says whether our number reproduces a paper's, used by ``cvae compare``
(one run per cell) and ``cvae reproduce`` (mean over a row's seeds).

Our value is ``m``, the mean of ``n`` runs (``n = 1`` for one run); the paper's is ``p`` with
spread ``s_paper`` (its std over its runs; 0 when it reports one run). The standard error of
``m`` has two independent parts, added in quadrature::

    se_ours^2 = s^2 / n + m (1 - m) / n_test

``s`` is the sample standard deviation (n-1) of our runs (0 for one run): seed-to-seed noise.
The second term is the binomial sampling error of an accuracy measured on ``n_test`` test images
(read from the metric's protocol); it is 0 for metrics that are not accuracies or that do not
record ``n_test``.

**Within noise** means ``|m - p| <= max(2 sqrt(s_paper^2 + se_ours^2), tolerance)``: the gap is at
most two combined standard deviations, or below the paper number's absolute ``tolerance`` floor
(BTVAE's FID). Before that test, a number is **not comparable** when the run's config differs
from the paper's conditions, it has no value, it scored the val split (the papers report test
numbers), it trained less than the paper's epochs (or on a fraction of the train set), the paper
number carries a caveat, or our metric's protocol lacks an entry the paper's requires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from cvae.experiments.paper import PaperNumber
from cvae.experiments.results import Aggregate, format_value

REPRODUCED: Final = "reproduced within noise"
DIFFERS: Final = "differs"
NOT_COMPARABLE: Final = "not comparable"
NOISE_SIGMAS = 2.0
"""Width of the "within noise" band, in combined standard deviations."""

Status = Literal["reproduced within noise", "differs", "not comparable"]


@dataclass(frozen=True)
class Verdict:
    """``status`` and its ``detail`` (the difference and tolerance, or why not comparable)."""

    status: Status
    detail: str

    @property
    def text(self) -> str:
        """``"reproduced within noise (+0.11, tolerance 0.2561)"``."""
        return f"{self.status} ({self.detail})"


def standard_error(ours: Aggregate, unit: str) -> float:
    """``sqrt(s^2 / n + m (1 - m) / n_test)`` (see the module docstring); 0 without values."""
    mean, std, n = ours.mean, ours.std, len(ours.values)
    if mean is None:
        return 0.0
    variance = 0.0 if std is None else std**2 / n
    n_test = ours.protocol.get("n_test")
    if unit == "accuracy" and isinstance(n_test, int) and n_test > 0:
        variance += max(mean * (1 - mean), 0.0) / n_test
    return math.sqrt(variance)


def judge(
    paper: PaperNumber,
    ours: Aggregate,
    *,
    target_epochs: int | None,
    fraction: float = 1.0,
    mismatches: Sequence[str] = (),
) -> Verdict:
    """Compare ``ours`` with the published ``paper`` number. ``target_epochs`` are the epochs of
    the paper's schedule (None: not checked), ``fraction`` the part of the train set each of
    our epochs saw, ``mismatches`` the config conditions our runs do not meet."""
    if mismatches:
        return Verdict(NOT_COMPARABLE, f"config: {'; '.join(mismatches)}")
    mean = ours.mean
    if mean is None:
        return Verdict(NOT_COMPARABLE, f"no value: {ours.reason}" if ours.reason else "no value")
    if ours.split == "val":
        return Verdict(NOT_COMPARABLE, "split: ours scored the val split, the paper its test split")
    budget = _short_budget(ours.epochs, target_epochs, fraction)
    if budget:
        return Verdict(NOT_COMPARABLE, budget)
    if paper.caveat:
        return Verdict(NOT_COMPARABLE, paper.caveat)
    for key, wanted in paper.protocol.items():
        if ours.protocol.get(key) != wanted:
            got = ours.protocol.get(key)
            return Verdict(NOT_COMPARABLE, f"protocol: paper {key}={wanted}, ours {got}")
    se = standard_error(ours, paper.unit)
    tol = max(NOISE_SIGMAS * math.hypot(paper.std or 0.0, se), paper.tolerance)
    diff = mean - paper.value
    detail = (
        f"{format_value(diff, paper.unit, signed=True)}, tolerance {format_value(tol, paper.unit)}"
    )
    return Verdict(REPRODUCED if abs(diff) <= tol else DIFFERS, detail)


def _short_budget(trained: int | None, target: int | None, fraction: float) -> str | None:
    """``"budget: 3 x 0.5 of the train set of 700 epochs"`` when our runs trained less."""
    if trained is None or target is None or (trained >= target and fraction >= 1.0):
        return None
    part = "" if fraction == 1.0 else f" x {fraction:g} of the train set"
    return f"budget: {trained}{part} of {target} epochs"
