"""Claim checks: a paper's central claim as arms trained over seeds, one metric per question,
and a verdict from the confidence interval of the difference of means.

A :class:`Claim` names its ``arms`` (a preset and overrides each, e.g. the VAE, the VAE on the
same augmented views, the CVAE), the ``contrasts`` it tests (treatment arm against a control
arm), its ``metrics`` (the first is the primary one; each says which direction is better and
carries the paper's printed cells per arm) and the ``budget`` it trains at.

**Statistics.** For one contrast and metric, ``t`` are the treatment's values over seeds and
``c`` the control's; the **gain** is ``g = mean(t) - mean(c)`` for a higher-is-better metric and
``mean(c) - mean(t)`` for a lower-is-better one, so a positive gain is always the improvement the
paper claims. Its 95% interval is Welch's (:func:`welch_interval`: unequal variances,
Welch-Satterthwaite degrees of freedom, Student-t quantile); a percentile bootstrap of the
difference of means (:func:`bootstrap_interval`, seeded) is reported beside it. With 3 seeds per
arm the bootstrap interval is too narrow (it ignores the uncertainty of each arm's spread), so
the verdict reads Welch's.

**Verdict** (:func:`claim_verdict`): *supported* when the interval lies above 0, *contradicted*
when it lies below 0 (the control is better, significantly), else *inconclusive at this budget*.
Whether the paper's own gap (its treatment cell minus its control cell) lies inside our interval
is reported beside the verdict, not folded into it: a short budget may show the sign of an
effect without its size.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from cvae.errors import ConfigError
from cvae.evaluation.options import EvalConfig
from cvae.experiments import report as rp
from cvae.experiments.results import format_value, mean_or_none, sample_std

SUPPORTED: Final = "supported"
CONTRADICTED: Final = "contradicted"
INCONCLUSIVE: Final = "inconclusive at this budget"
VerdictName = Literal["supported", "contradicted", "inconclusive at this budget"]
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 10_000


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Arm:
    """One arm: runs of ``preset`` with ``overrides`` (dotted config keys), one per seed."""

    label: str
    preset: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class ClaimMetric:
    """A ``metrics.json`` name, whether ``higher`` is better, its ``unit`` (``accuracy``: shown
    in %) and the ``paper``'s printed cell per arm label (fractions for accuracies in
    ``paper_values``)."""

    name: str
    higher: bool = True
    unit: str = ""
    paper: Mapping[str, str] = field(default_factory=dict)
    paper_values: Mapping[str, float] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class ClaimBudget:
    """How the arms train and are evaluated at this budget: ``overrides`` shared by every run,
    the evaluation (``eval_config``, the metrics computed are the claim's), a one-line ``text``
    for the report and the wall time it was designed for."""

    overrides: Mapping[str, Any]
    text: str
    eval_config: EvalConfig = EvalConfig(embedding="none")
    designed_minutes: int = 60


@dataclass(frozen=True)
class Claim:
    """A paper's claim: ``arms``, ``contrasts`` (``(treatment, control)`` arm labels),
    ``metrics`` (the first is primary), ``seeds`` per arm, and one :class:`ClaimBudget` per
    budget name. ``data_folder``: the folder the runs read under the data root, when not the
    dataset's own (e.g. the CIFAR-10 JPEG folders read as an image folder)."""

    paper: str
    name: str
    statement: str
    arms: tuple[Arm, ...]
    contrasts: tuple[tuple[str, str], ...]
    metrics: tuple[ClaimMetric, ...]
    seeds: tuple[int, ...]
    budgets: Mapping[str, ClaimBudget]
    notes: tuple[str, ...] = ()
    data_folder: str | None = None

    def __post_init__(self) -> None:
        labels = [a.label for a in self.arms]
        if len(set(labels)) != len(labels):
            raise ValueError(f"{self.name}: arm labels must be unique, got {labels}")
        for pair in self.contrasts:
            if not set(pair) <= set(labels) or pair[0] == pair[1]:
                raise ValueError(f"{self.name}: contrast {pair} must name two arms of {labels}")
        if not self.metrics or len(self.seeds) < 3:
            raise ValueError(f"{self.name}: needs a metric and at least 3 seeds")

    @property
    def key(self) -> str:
        """``cvae-paper/mnist``."""
        return f"{self.paper}/{self.name}"

    def arm(self, label: str) -> Arm:
        return next(a for a in self.arms if a.label == label)

    def budget(self, name: str) -> ClaimBudget:
        if name not in self.budgets:
            raise ConfigError(f"claim {self.key} has no budget {name!r}; choose from "
                              f"{', '.join(self.budgets)}")  # fmt: skip
        return self.budgets[name]


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """A two-sided interval ``[low, high]`` of the gain and how it was computed."""

    low: float
    high: float
    method: str

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (real, > 0) degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def welch_interval(
    treatment: Sequence[float], control: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, Interval, float, float]:
    """``(difference, interval, se, df)`` of ``mean(treatment) - mean(control)``: Welch's
    standard error ``sqrt(s_t^2/n_t + s_c^2/n_c)``, Welch-Satterthwaite ``df`` and the t
    quantile. Needs two values per side; with zero spread on both sides the interval is the
    point."""
    if len(treatment) < 2 or len(control) < 2:
        raise ValueError("Welch's interval needs at least two values per arm")
    nt, nc = len(treatment), len(control)
    vt, vc = statistics.variance(treatment) / nt, statistics.variance(control) / nc
    diff = statistics.fmean(treatment) - statistics.fmean(control)
    se = math.sqrt(vt + vc)
    if se == 0:
        return diff, Interval(diff, diff, "Welch t"), 0.0, math.inf
    df = (vt + vc) ** 2 / (vt**2 / (nt - 1) + vc**2 / (nc - 1))
    half = student_t_quantile(0.5 + confidence / 2, df) * se
    return diff, Interval(diff - half, diff + half, f"Welch t, df {df:.1f}"), se, df


def bootstrap_interval(
    treatment: Sequence[float],
    control: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of ``mean(treatment) - mean(control)``, each arm resampled with
    replacement on its own (``numpy.random.default_rng(seed)``)."""
    rng = np.random.default_rng(seed)
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    diffs = t[rng.integers(0, len(t), (resamples, len(t)))].mean(1) - c[
        rng.integers(0, len(c), (resamples, len(c)))
    ].mean(1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(float(low), float(high), f"bootstrap, {resamples} resamples")


def claim_verdict(interval: Interval) -> VerdictName:
    """Supported above 0, contradicted below 0, else inconclusive (see the module docstring)."""
    if interval.low > 0:
        return SUPPORTED
    if interval.high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ArmResult:
    """One arm's values of one metric over its seeds (``missing``: seeds without a value)."""

    arm: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    missing: tuple[int, ...] = ()

    @property
    def mean(self) -> float | None:
        return mean_or_none(self.values)

    @property
    def std(self) -> float | None:
        return sample_std(self.values)


@dataclass(frozen=True)
class ContrastResult:
    """One contrast of one metric: the signed ``gain`` (positive: the claimed direction), its
    Welch and bootstrap intervals, the verdict and the paper's gap; ``reason`` when it could not
    be computed."""

    metric: ClaimMetric
    treatment: str
    control: str
    gain: float | None = None
    welch: Interval | None = None
    bootstrap: Interval | None = None
    se: float | None = None
    verdict: VerdictName = INCONCLUSIVE
    paper_gain: float | None = None
    reason: str | None = None

    @property
    def paper_gain_inside(self) -> bool | None:
        """Whether the paper's gap lies inside our Welch interval (None: unknown)."""
        if self.paper_gain is None or self.welch is None:
            return None
        return self.welch.low <= self.paper_gain <= self.welch.high


def contrast(
    metric: ClaimMetric, treatment: ArmResult, control: ArmResult, seed: int = 0
) -> ContrastResult:
    """The :class:`ContrastResult` of ``treatment`` against ``control`` on ``metric``."""
    sign = 1.0 if metric.higher else -1.0
    paper = metric.paper_values
    paper_gain = (
        sign * (paper[treatment.arm] - paper[control.arm])
        if treatment.arm in paper and control.arm in paper
        else None
    )
    base = ContrastResult(metric, treatment.arm, control.arm, paper_gain=paper_gain)
    if len(treatment.values) < 2 or len(control.values) < 2:
        n = f"{len(treatment.values)} and {len(control.values)} values"
        return _replace(base, reason=f"needs 2 values per arm, has {n}")
    t, c = (treatment.values, control.values) if sign > 0 else (control.values, treatment.values)
    gain, welch, se, _ = welch_interval(t, c)
    boot = bootstrap_interval(t, c, seed=seed)
    return _replace(base, gain=gain, welch=welch, bootstrap=boot, se=se,
                    verdict=claim_verdict(welch))  # fmt: skip


def _replace(result: ContrastResult, **changes: Any) -> ContrastResult:
    import dataclasses

    return dataclasses.replace(result, **changes)


@dataclass
class ClaimResult:
    """Everything a claim check measured: per metric, each arm's :class:`ArmResult`, and the
    :class:`ContrastResult` of each contrast; plus how it ran (``provenance``: command, wall
    time, machine, commit)."""

    claim: Claim
    budget: str
    arms: dict[str, dict[str, ArmResult]]
    contrasts: list[ContrastResult]
    provenance: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    invocation_seconds: list[float] = field(default_factory=list)
    """Wall seconds of each invocation that wrote the report, this one last."""
    unconverged: dict[str, list[str]] = field(default_factory=dict)
    """Per metric, the runs whose fit (e.g. a logistic probe) stopped at its iteration limit."""

    @property
    def primary(self) -> list[ContrastResult]:
        """The contrasts of the primary metric."""
        return [c for c in self.contrasts if c.metric == self.claim.metrics[0]]

    @property
    def verdict(self) -> VerdictName:
        """Supported when every primary contrast is, contradicted when any is, else
        inconclusive."""
        verdicts = [c.verdict for c in self.primary]
        if verdicts and all(v == SUPPORTED for v in verdicts):
            return SUPPORTED
        if CONTRADICTED in verdicts:
            return CONTRADICTED
        return INCONCLUSIVE


def judge_claim(
    claim: Claim, budget: str, values: Mapping[str, Mapping[str, Mapping[int, float | None]]]
) -> ClaimResult:
    """``values[metric][arm][seed]`` (None: no value) -> the claim's :class:`ClaimResult`."""
    arms: dict[str, dict[str, ArmResult]] = {}
    contrasts: list[ContrastResult] = []
    for metric in claim.metrics:
        per_arm = {}
        for arm in claim.arms:
            got = values.get(metric.name, {}).get(arm.label, {})
            ok = {s: v for s in claim.seeds if (v := got.get(s)) is not None and _finite(v)}
            per_arm[arm.label] = ArmResult(
                arm.label,
                tuple(ok),
                tuple(float(v) for v in ok.values()),
                tuple(s for s in claim.seeds if s not in ok),
            )
        arms[metric.name] = per_arm
        contrasts += [contrast(metric, per_arm[t], per_arm[c]) for t, c in claim.contrasts]
    return ClaimResult(claim, budget, arms, contrasts)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# --------------------------------------------------------------------------- report

VERDICT_STYLE: dict[str, rp.Style] = {SUPPORTED: "ok", CONTRADICTED: "bad", INCONCLUSIVE: "warn"}
ARM_COLUMNS = ("arm", "metric", "ours: mean (std)", "n", "seeds", "paper")
CONTRAST_COLUMNS = (
    "contrast", "metric", "gain (ours)", "95% CI (Welch)", "95% CI (bootstrap)",
    "paper's gain", "paper's gain in CI", "verdict",
)  # fmt: skip


def _fmt(value: float | None, unit: str, signed: bool = False) -> str:
    return format_value(value, unit, signed=signed)


def _interval_text(interval: Interval | None, unit: str) -> str:
    if interval is None:
        return "n/a"
    return f"[{_fmt(interval.low, unit, True)}, {_fmt(interval.high, unit, True)}]"


def arm_table(result: ClaimResult) -> rp.Table:
    """One line per (arm, metric): our mean (std) over seeds, n, seeds, the paper's cell."""
    rows = []
    for metric in result.claim.metrics:
        for arm in result.claim.arms:
            r = result.arms[metric.name][arm.label]
            std = "" if r.std is None else f" ({_fmt(r.std, metric.unit)})"
            missing = f"; no value: {','.join(map(str, r.missing))}" if r.missing else ""
            rows.append((
                arm.label, metric.name, f"{_fmt(r.mean, metric.unit)}{std}", str(len(r.values)),
                ",".join(map(str, r.seeds)) + missing, metric.paper.get(arm.label, "—"),
            ))  # fmt: skip
    return rp.Table.of_text(ARM_COLUMNS, rows)


def contrast_table(result: ClaimResult) -> rp.Table:
    """One line per (contrast, metric): gain, both intervals, the paper's gain, the verdict."""
    rows = []
    for c in result.contrasts:
        unit = c.metric.unit
        inside = {None: "—", True: "yes", False: "no"}[c.paper_gain_inside]
        verdict = c.verdict if c.reason is None else f"{c.verdict} ({c.reason})"
        rows.append((
            rp.inline(f"{c.treatment} vs {c.control}"),
            rp.inline(c.metric.name + ("" if c.metric.higher else " (lower is better)")),
            rp.inline(_fmt(c.gain, unit, True)),
            rp.inline(_interval_text(c.welch, unit)),
            rp.inline(_interval_text(c.bootstrap, unit)),
            rp.inline(_fmt(c.paper_gain, unit, True) if c.paper_gain is not None else "—"),
            rp.inline(inside),
            (rp.Span(verdict, VERDICT_STYLE[c.verdict]),),
        ))  # fmt: skip
    return rp.Table(CONTRAST_COLUMNS, tuple(rows))


def verdict_line(result: ClaimResult) -> str:
    """``"cvae-paper/mnist: supported (CVAE vs VAE logreg_paper +1.2% [+0.3%, +2.1%]; ...)"``."""
    parts = [
        f"{c.treatment} vs {c.control} {c.metric.name} {_fmt(c.gain, c.metric.unit, True)} "
        f"{_interval_text(c.welch, c.metric.unit)}"
        for c in result.primary
    ]
    return f"{result.claim.key}: {result.verdict} ({'; '.join(parts)})"


def claim_report(result: ClaimResult, extra: Sequence[rp.Section] = ()) -> rp.Report:
    """The report of one claim check: the claim, the verdict, the contrasts, the arms, how it
    ran (``result.provenance``), the budget and the rules."""
    claim = result.claim
    budget = claim.budget(result.budget)
    verdict = rp.Span(result.verdict, VERDICT_STYLE[result.verdict])
    notes = [
        rp.inline("Claim: ", claim.statement),
        rp.inline(
            "Verdict (primary metric ", rp.Span(claim.metrics[0].name, "code"), "): ", verdict
        ),  # fmt: skip
        *(
            rp.inline(f"{k}: ", rp.Span(v, "code") if k == "command" else v)
            for k, v in result.provenance.items()
        ),  # fmt: skip
        rp.inline(f"Budget {result.budget}: {budget.text}"),
        *(rp.inline(f"Failed run {name}: {why}") for name, why in result.failed.items()),
        *(
            rp.inline(
                rp.Span(metric, "code"),
                f": the fit did not converge (stopped at its iteration limit) in {len(runs)} of "
                f"{sum(len(a.values) for a in result.arms[metric].values())} runs, so part of its "
                "spread over seeds is the optimiser's; the runs are listed in claim.json",
            )
            for metric, runs in result.unconverged.items()
        ),
    ]
    report = rp.Report(f"Claim check {claim.key} ({result.budget})", notes=notes)
    report.sections += [
        rp.Section("Contrasts", tables=[contrast_table(result)]),
        rp.Section(
            "Arms",
            tables=[arm_table(result)],
            items=[
                rp.inline(
                    f"{a.label}: ",
                    rp.Span(_arm_text(a), "code"),
                    f" — {a.description}" if a.description else "",
                )
                for a in claim.arms
            ],
        ),  # fmt: skip
        rp.Section(
            "Metrics",
            items=[rp.inline(rp.Span(m.name, "code"), f": {m.description}") for m in claim.metrics],
        ),  # fmt: skip
        *extra,
        rp.Section("Rules", items=[rp.inline(n) for n in (*RULES, *claim.notes)]),
    ]
    return report


def _arm_text(arm: Arm) -> str:
    return ",".join([arm.preset, *(f"{k}={v}" for k, v in arm.overrides.items())])


RULES = (
    "gain: treatment minus control (control minus treatment for a lower-is-better metric), so a "
    "positive gain is the direction the paper claims; std: sample standard deviation (n-1) over "
    "seeds.",
    "95% CI (Welch): mean difference +- t(0.975, Welch-Satterthwaite df) x sqrt(s_t^2/n_t + "
    "s_c^2/n_c). The bootstrap interval (percentile, each arm resampled on its own) is shown "
    "beside it; with 3 seeds per arm it is too narrow, so the verdict reads Welch's.",
    "verdict: supported when the Welch CI lies above 0, contradicted when it lies below 0, else "
    "inconclusive at this budget. The claim's verdict: supported when every contrast of the "
    "primary metric is, contradicted when any is, else inconclusive. 'paper's gain in CI' says "
    "whether the paper's own gap lies inside our interval (a short budget may show the sign of "
    "an effect but not its size).",
)
