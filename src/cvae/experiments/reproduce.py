"""``cvae reproduce PAPER``: every run of one paper's tables through the sweep engine, then a
report with the paper-shaped tables (paper number, ours, reference-code variant, budget, seeds,
verdict) above :func:`cvae.experiments.compare.comparison`'s per-run table and figures.

The paper (:mod:`cvae.experiments.papers`) lists its rows; its :class:`Budget` says how long and
how many seeds each row's runs train. Runs are named ``<preset>,<overrides>,train.seed=<s>``
under ``OUT/runs`` so rows that share a configuration share its runs, and re-running the same
command finishes only what is missing.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvae import config as C
from cvae.data import dataset_available, missing_message
from cvae.data.download import default_data_root
from cvae.errors import ConfigError
from cvae.experiments import report as rp
from cvae.experiments.compare import comparison, verdict_span
from cvae.experiments.paper import BUDGETS, Budget, Paper, PaperNumber, Row
from cvae.experiments.papers import get_paper, paper_number
from cvae.experiments.papers.btvae_paper import LATENT_FIGURE
from cvae.experiments.results import METRICS_FILE, Aggregate, aggregate, format_aggregate
from cvae.experiments.sweep import SweepJob, run_jobs, run_name
from cvae.experiments.verdict import judge
from cvae.methods import check_config


@dataclass
class PlannedRun:
    """One run of a row: its sweep ``job`` and whether it is the reference-code ``variant``."""

    row: Row
    variant: bool
    seed: int
    dataset: str
    job: SweepJob


# --------------------------------------------------------------------------- planning


def plan(
    paper: str,
    budget: str = "quick",
    *,
    seeds: int | None = None,
    data_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every run ``paper`` needs at ``budget``: rows of the budget's tables and datasets, times
    the first ``seeds`` seeds (default: the budget's), plus the reference-code variants when the
    budget runs them. ``data_dir`` and ``overrides`` apply to every run (not in its name)."""
    spec, b = _spec(paper, budget)
    n_seeds = b.seeds if seeds is None else seeds
    if not 1 <= n_seeds <= len(spec.seeds):
        raise ConfigError(f"--seeds must be 1..{len(spec.seeds)} for {paper}, got {n_seeds}")
    shared: dict[str, Any] = dict(b.overrides)
    if data_dir is not None:
        shared["data.data_dir"] = str(Path(data_dir).expanduser().resolve())
    shared.update(overrides or {})
    planned: list[PlannedRun] = []
    bases: dict[str, C.RunConfig] = {}
    for row in spec.rows:
        if b.tables is not None and row.table not in b.tables:
            continue
        presets = [(row.preset, False)]
        if b.code and row.code_preset:
            presets.append((row.code_preset, True))
        for preset, variant in presets:
            if preset not in bases:
                bases[preset] = C.load_preset(preset)
            base = bases[preset]
            if b.datasets is not None and base.data.dataset not in b.datasets:
                continue
            epochs = base.train.epochs if b.epochs is None else min(b.epochs, base.train.epochs)
            for seed in spec.seeds[: min(n_seeds, row.max_seeds or n_seeds)]:
                named = {**row.overrides, "train.seed": seed}
                job = _job(base, preset, named, {**shared, "train.epochs": epochs})
                planned.append(PlannedRun(row, variant, seed, base.data.dataset, job))
    return planned


def _spec(paper: str, budget: str) -> tuple[Paper, Budget]:
    spec = get_paper(paper)
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    return spec, spec.budgets[budget]


def _job(
    base: C.RunConfig, preset: str, named: Mapping[str, Any], shared: Mapping[str, Any]
) -> SweepJob:
    cfg = copy.deepcopy(base)
    error = None
    try:
        for key, value in {**named, **shared}.items():
            C.set_value(cfg, key, value)
        check_config(cfg)
    except ConfigError as err:
        error = str(err)
    name = f"{preset},{run_name(named)}"
    return SweepJob(name, dict(named), None if error else cfg, error)


def missing_datasets(runs: Sequence[PlannedRun], data_dir: str | Path | None) -> list[str]:
    """Datasets of ``runs`` absent under ``data_dir`` (default: the download cache)."""
    root = _root(data_dir)
    names = dict.fromkeys(r.dataset for r in runs)
    return [n for n in names if not dataset_available(root, n)]


def _root(data_dir: str | Path | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_root()


# --------------------------------------------------------------------------- running


def reproduce(
    paper: str,
    *,
    budget: str = "quick",
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    jobs: int = 1,
    seeds: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train and evaluate every run of ``paper`` at ``budget`` into ``out/runs`` (default
    ``reproductions/<paper>-<budget>``), skipping runs whose dataset is missing (one message per
    dataset), then write ``out/report.md`` and ``out/report.html``; see :func:`write_report`."""
    spec, b = _spec(paper, budget)
    out = Path(out) if out is not None else Path("reproductions") / f"{paper}-{budget}"
    planned = plan(paper, budget, seeds=seeds, data_dir=data_dir, overrides=overrides)
    missing = missing_datasets(planned, data_dir)
    messages = {name: missing_message(name, _root(data_dir)) for name in missing}
    for message in messages.values():
        echo(f"skipped: {message}")
    runnable = [p for p in planned if p.dataset not in missing]
    results = run_jobs(
        list({p.job.name: p.job for p in runnable}.values()),  # rows may share runs
        out / "runs",
        parallel=jobs,
        evaluate=True,
        eval_config=b.eval_config,
        echo=echo,
    )
    for run in results:
        if _latent_dim(run.run_dir) == 2 and (run.run_dir / METRICS_FILE).is_file():
            latent_scatter(run.run_dir, run.run_dir / "figures" / LATENT_FIGURE)
    failed = {r.name: r.message for r in results if r.status == "failed"}
    return write_report(spec, budget, planned, out, missing=messages, failed=failed)


def _latent_dim(run_dir: Path) -> int | None:
    config = run_dir / "config.yaml"
    return C.load_yaml(config).get("model", {}).get("latent_dim") if config.is_file() else None


def latent_scatter(run_dir: Path, path: Path) -> Path:
    """BTVAE Fig. 3: scatter of the test-set posterior means of a d=2 run, each axis z-scored
    (``(mu - mean) / std`` over the test set), coloured by class."""
    from cvae.api import load
    from cvae.evaluation.plots import save_scatter
    from cvae.training.trainer import data_from_config

    run = load(run_dir)
    data = data_from_config(run.config)
    split = data.test if data.test is not None else data.val
    mu = run.encode(split.tensor)[0].cpu().double()
    z = ((mu - mu.mean(0)) / mu.std(0).clamp_min(1e-12)).numpy()
    labels = None if split.labels is None else split.labels.numpy()
    return save_scatter(
        z, labels, path, xlabel="z1 (z-scored)", ylabel="z2 (z-scored)", title="test mu, d=2"
    )


# --------------------------------------------------------------------------- paper tables

COLUMNS = ("row", "metric", "paper", "ours", "reference code", "budget", "seeds", "verdict")


def paper_tables(
    spec: Paper,
    budget: str,
    planned: Sequence[PlannedRun],
    runs_dir: Path,
    *,
    missing: Mapping[str, str] | None = None,
    failed: Mapping[str, str] | None = None,
) -> dict[str, list[dict[str, str]]]:
    """``{table: [line, ...]}``, one line per (row, metric) with the :data:`COLUMNS` (and the
    verdict's ``status``, empty without a paper number); ``missing`` maps skipped datasets to
    their message, ``failed`` run names to their error."""
    skipped = set(missing or {})
    tables: dict[str, list[dict[str, str]]] = {}
    for row in spec.rows:
        runs = _RowRuns.of(row, planned, runs_dir)
        if runs is None:
            continue
        why = _why_not(runs.main[0], skipped, failed or {})
        for metric in row.metrics:
            line = _table_line(spec, budget, runs, metric, why)
            tables.setdefault(row.table, []).append(line)
    return tables


@dataclass(frozen=True)
class _RowRuns:
    """One row's planned runs: its ``main`` seeds and its reference-code variant ``code``."""

    row: Row
    main: list[PlannedRun]
    code: list[PlannedRun]
    runs_dir: Path

    @classmethod
    def of(cls, row: Row, planned: Sequence[PlannedRun], runs_dir: Path) -> _RowRuns | None:
        """The runs of ``row`` in ``planned``; None when it has no main run."""
        main = [p for p in planned if p.row == row and not p.variant]
        code = [p for p in planned if p.row == row and p.variant]
        return cls(row, main, code, runs_dir) if main else None

    @property
    def config(self) -> C.RunConfig | None:
        return self.main[0].job.config

    def aggregate(self, runs: Sequence[PlannedRun], metric: str) -> Aggregate:
        return aggregate([self.runs_dir / p.job.name for p in runs], metric)


def _table_line(
    spec: Paper, budget: str, runs: _RowRuns, metric: str, why: str | None
) -> dict[str, str]:
    """The table line of ``metric`` in ``runs``' row; ``why`` explains a missing value."""
    cfg = runs.config
    target = _preset_epochs(runs.row.preset)
    fraction = cfg.train.epoch_fraction if cfg is not None else 1.0
    agg = runs.aggregate(runs.main, metric)
    if why and agg.mean is None:
        agg.reason = why
    entry = paper_number(cfg, metric) if cfg is not None else None
    unit = entry.unit if entry is not None else ""
    verdict, status = _verdict(entry, agg, target, fraction)
    return {
        "row": runs.row.label,
        "metric": metric,
        "paper": _paper_text(entry),
        "ours": _ours_text(agg, unit, spec.seeded),
        "reference code": "; ".join(_references(runs, metric, unit)) or "—",
        "budget": _budget_text(budget, cfg, target, fraction),
        "seeds": ",".join(str(p.seed) for p in runs.main),
        "verdict": verdict,
        "status": status,
    }


def _verdict(
    entry: PaperNumber | None, agg: Aggregate, target: int, fraction: float
) -> tuple[str, str]:
    """The verdict's text and status; ``("no paper number", "")`` without a paper number."""
    if entry is None:
        return "no paper number", ""
    verdict = judge(entry, agg, target_epochs=target, fraction=fraction)
    return verdict.text, verdict.status


def _ours_text(agg: Aggregate, unit: str, seeded: bool) -> str:
    """Our value; an unseeded paper's single run is marked as such."""
    ours = format_aggregate(agg, unit)
    if agg.mean is not None and not seeded and len(agg.values) == 1:
        return f"{ours} (1 run)"
    return ours


def _references(runs: _RowRuns, metric: str, unit: str) -> list[str]:
    """The reference-code variant's value and the row's code-specific metric, when present."""
    refs = []
    if runs.code:
        coded = runs.aggregate(runs.code, metric)
        refs.append(f"{runs.code[0].job.name.split(',')[0]}: {format_aggregate(coded, unit)}")
    if metric in runs.row.code:
        variant = runs.aggregate(runs.main, runs.row.code[metric])
        refs.append(f"{runs.row.code[metric]}: {format_aggregate(variant, unit)}")
    return refs


def _budget_text(budget: str, cfg: C.RunConfig | None, target: int, fraction: float) -> str:
    """``budget: <epochs>[ x <fraction>] of <target> epochs``."""
    epochs = cfg.train.epochs if cfg is not None else target
    part = "" if fraction == 1.0 else f" x {fraction:g}"
    return f"{budget}: {epochs}{part} of {target} epochs"


@functools.cache
def _preset_epochs(preset: str) -> int:
    return C.load_preset(preset).train.epochs


def _why_not(run: PlannedRun, skipped: set[str], failed: Mapping[str, str]) -> str | None:
    if run.dataset in skipped:
        return f"dataset {run.dataset} missing"
    if run.job.config is None:
        return f"bad config: {run.job.error}"
    if run.job.name in failed:
        return f"run failed: {failed[run.job.name]}"
    return None


def _paper_text(entry: PaperNumber | None) -> str:
    if entry is None:
        return "—"
    spread = f" over {entry.runs} runs" if entry.std is not None else ""
    return f"{entry.text}{spread} ({entry.table})"


# --------------------------------------------------------------------------- report


def _table(lines: Sequence[Mapping[str, str]]) -> rp.Table:
    def cells(line: Mapping[str, str]) -> tuple[rp.Cell, ...]:
        verdict = verdict_span(line["verdict"], line["status"]) if line["status"] else None
        return tuple(
            (verdict,) if c == "verdict" and verdict else rp.inline(line[c]) for c in COLUMNS
        )

    return rp.Table(COLUMNS, tuple(cells(line) for line in lines))


def write_report(
    spec: Paper,
    budget: str,
    planned: Sequence[PlannedRun],
    out: Path,
    *,
    missing: Mapping[str, str] | None = None,
    failed: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``out/report.md`` and ``out/report.html``: the paper-shaped tables, the skipped datasets
    and the notes, then "Every run", :func:`comparison`'s per-run table, protocols and figures
    for every evaluated run. Returns ``{"tables", "compare", "markdown", "html"}``
    (``compare``: the comparison's table, None when no run has been evaluated)."""
    out = Path(out)
    runs_dir = out / "runs"
    tables = paper_tables(spec, budget, planned, runs_dir, missing=missing, failed=failed)
    b = spec.budgets[budget]
    header = [
        f"Budget **{budget}**: {b.epochs or 'paper'} epoch(s) per run (capped at the paper's), "
        f"{len({p.seed for p in planned})} seed(s)"
        + "".join(f", {k}={v}" for k, v in b.overrides.items()),
        *[f"Skipped: {m}" for m in (missing or {}).values()],
        *spec.notes,
    ]
    report = rp.Report(spec.title, notes=[rp.inline(h) for h in header])
    report.sections += [rp.Section(t, tables=[_table(lines)]) for t, lines in tables.items()]
    evaluated = list(dict.fromkeys(runs_dir / p.job.name for p in planned))
    evaluated = [d for d in evaluated if (d / METRICS_FILE).is_file()]
    result: dict[str, Any] = {"tables": tables, "compare": None}
    if evaluated:
        result["compare"], every = comparison(evaluated, title="Every run")
        report.sections += [rp.Section(every.title, 1), *every.sections]
    else:
        report.sections.append(rp.Section(text=rp.inline("No run has been evaluated yet.")))
    md_path, html_path = rp.write_report(report, out)
    result["markdown"], result["html"] = str(md_path), str(html_path)
    return result
