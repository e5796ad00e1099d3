"""``cvae reproduce PAPER``: every run of one paper's tables through the sweep engine, then a
report with the paper-shaped tables (paper number, ours, reference-code variant, budget, seeds,
verdict) above :func:`cvae.evaluation.compare.compare`'s per-run table and figures.

A paper is a list of :class:`Row` (one row of a paper table, or of an ablation the paper plots);
a :class:`Budget` says how long and how many seeds each row's runs train. Runs are named
``<preset>,<overrides>,train.seed=<s>`` under ``OUT/runs`` so rows that share a configuration
share its runs, and re-running the same command finishes only what is missing.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvae import config as C
from cvae.data import dataset_available, missing_message
from cvae.data.download import default_data_root
from cvae.errors import ConfigError
from cvae.evaluation.compare import DIFFERS, NOISE_SIGMAS, REPRODUCED, compare
from cvae.evaluation.paper_numbers import PaperNumber, paper_number
from cvae.methods import check_config
from cvae.training.sweep import SweepJob, run_jobs, run_name

BUDGETS = ("quick", "medium", "paper")
LATENT_FIGURE = "latent_2d.png"


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
    ``datasets`` it covers (None: all), whether the reference-code variants run, and the
    arguments of ``cvae eval``."""

    epochs: int | None
    seeds: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    tables: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    code: bool = True
    eval_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paper:
    name: str
    title: str
    seeds: tuple[int, ...]
    seeded: bool
    """Whether the paper reports mean (std) over seeds."""
    rows: tuple[Row, ...]
    budgets: Mapping[str, Budget]
    notes: tuple[str, ...] = ()


@dataclass
class PlannedRun:
    """One run of a row: its sweep ``job`` and whether it is the reference-code ``variant``."""

    row: Row
    variant: bool
    seed: int
    dataset: str
    job: SweepJob


# --------------------------------------------------------------------------- the four papers

_QUICK_EVAL = ("--embedding", "none")
_CVAE_FID = ("fid_inception", "fid_domain")


def _cvae_rows() -> tuple[Row, ...]:
    rows = [
        Row("Table 1", f"{ds} {m}", f"{m.lower()}-{ds}-paper", ("logreg_paper",),
            {"loss.terms.kl.weight": beta}, code_preset=f"{m.lower()}-{ds}-code")
        for ds, m, beta in [("mnist", "VAE", 1e-3), ("mnist", "CVAE", 1e-3),
                            ("cifar10", "VAE", 1e-3), ("cifar10", "CVAE", 1e-2)]
    ]  # fmt: skip
    rows += [
        Row("Table 2", f"{m}, beta={beta:g}", f"{m.lower()}-mnist-paper", _CVAE_FID,
            {"loss.terms.kl.weight": beta})
        for m in ("VAE", "CVAE") for beta in (1e-3, 1e-5, 1e-8)
    ]  # fmt: skip
    return tuple(rows)


def _btvae_rows() -> tuple[Row, ...]:
    rows = []
    for ds in ("mnist", "cifar10", "celeba"):
        for lam in (0.0, 2.5e-4, 2.5e-3, 0.025, 0.25, -2.5e-4):
            label = f"{ds} VAE" if lam == 0 else f"{ds} BTVAE, lambda={lam:g}"
            code = f"btvae-{ds}-code" if lam == 2.5e-4 and ds != "celeba" else None
            rows.append(
                Row("Table 1", label, f"btvae-{ds}", ("fid_inception", "fid_domain"),
                    {"loss.terms.barlow.weight": lam}, code_preset=code)
            )  # fmt: skip
    rows.append(
        Row("Fig. 3 (2-D latent)", "mnist BTVAE, d=2", "btvae-mnist", ("knn_weighted_cosine",),
            {"model.latent_dim": 2, "loss.terms.barlow.weight": 0.025}, max_seeds=1)
    )  # fmt: skip
    return tuple(rows)


_CRVAE_METRICS = (
    "recon_nll", "kl", "marginal_kl", "mutual_information_batch", "active_units",
    "linear_adam", "knn_weighted_cosine",
)  # fmt: skip


# the reference code's versions of the paper's probes (spec 5.5)
_CRVAE_CODE = {"knn_weighted_cosine": "knn_uniform_euclidean", "linear_adam": "perceptron_probe"}


def _crvae_rows() -> tuple[Row, ...]:
    rows = []
    for ds in ("mnist", "emnist", "fashion-mnist", "cifar10"):
        rows.append(Row("Table III", f"{ds} VAE", f"vae-crvae-{ds}", _CRVAE_METRICS,
                        code=_CRVAE_CODE))  # fmt: skip
        code = f"crvae-{ds}-code" if ds in ("mnist", "cifar10") else None
        rows.append(Row("Table III", f"{ds} CR-VAE", f"crvae-{ds}", _CRVAE_METRICS,
                        code=_CRVAE_CODE,
                        code_preset=code))  # fmt: skip
    rows += [
        Row("Fig. 4 (MI vs gamma, MNIST)", f"CR-VAE, gamma={g:g}", "crvae-mnist",
            ("mutual_information_batch",), {"loss.terms.infonce.weight": g}, max_seeds=1)
        for g in (0.0, 0.2, 0.4, 0.6, 0.8)
    ]  # fmt: skip
    return tuple(rows)


def _aavae_rows() -> tuple[Row, ...]:
    rows = [
        Row("Table 1", f"cifar10 {m}", f"{stem}-cifar10", ("linear_sgd", "knn_weighted_cosine"))
        for m, stem in (("AE", "ae"), ("VAE", "vae-aavae"), ("AAAE", "aaae"), ("AAVAE", "aavae"))
    ]
    rows.append(Row("Table 1", "cifar10 VAE, beta=0.1 (code default)", "vae-aavae-cifar10",
                    ("linear_sgd",), {"loss.terms.kl.weight": 0.1}))  # fmt: skip
    rows += [
        Row("Fig. 3 (beta ablation, CIFAR-10)", f"AAVAE + beta={b:g} KL", "aavae-cifar10",
            ("linear_sgd", "view_cosine_within", "view_cosine_between"),
            {"loss.terms.kl.weight": b}, max_seeds=1)
        for b in (1e-3, 1e-2, 0.1, 1.0, 10.0)
    ]  # fmt: skip
    return tuple(rows)


PAPERS: dict[str, Paper] = {
    "cvae-paper": Paper(
        "cvae-paper",
        "CVAE (Lin, Zhang, Chahal): Table 1 logistic probes, Table 2 FID over beta",
        seeds=(0, 1, 2),
        seeded=False,
        rows=_cvae_rows(),
        budgets={
            "quick": Budget(1, 1, code=False, eval_args=_QUICK_EVAL),
            "medium": Budget(10, 1),
            "paper": Budget(None, 1),
        },
        notes=("The paper reports single runs; more --seeds give mean (std) over ours.",),
    ),
    "btvae-paper": Paper(
        "btvae-paper",
        "BTVAE (Xu, Wei, Yin): Table 1 FID over lambda, Fig. 3 2-D latent space",
        seeds=(1265, 1266, 1267),
        seeded=False,
        rows=_btvae_rows(),
        budgets={
            "quick": Budget(
                1,
                1,
                {"train.epoch_fraction": 0.1},
                code=False,
                datasets=("mnist",),
                eval_args=_QUICK_EVAL,
            ),
            "medium": Budget(3, 1),
            "paper": Budget(None, 1),
        },  # fmt: skip
        notes=(
            "BTVAE's FID uses 64-d Inception features on 10k samples (spec 4.5); the VAE row is "
            "btvae with lambda = 0.",
            f"Fig. 3: the d=2 run's figures/{LATENT_FIGURE} scatters its z-scored test mu.",
        ),
    ),
    "crvae-paper": Paper(
        "crvae-paper",
        "CR-VAE (Lygerakis, Rueckert): Table III, Fig. 4 MI over gamma",
        seeds=(101, 202, 303, 404, 505),
        seeded=True,
        rows=_crvae_rows(),
        budgets={
            "quick": Budget(
                1,
                2,
                {"train.epoch_fraction": 0.25},
                tables=("Table III",),
                datasets=("mnist",),
                code=False,
                eval_args=_QUICK_EVAL,
            ),
            "medium": Budget(1, 3, datasets=("mnist",)),
            "paper": Budget(None, 5),
        },  # fmt: skip
        notes=(
            "Reference code: crvae-*-code trains half an epoch per epoch (spec 5.4); its KNN is "
            "sklearn uniform Euclidean (knn_uniform_euclidean), its linear probe a perceptron "
            "(perceptron_probe).",
            "std: sample standard deviation (n-1) over our seeds.",
        ),
    ),
    "aavae-paper": Paper(
        "aavae-paper",
        "AAVAE (Falcon et al.): Table 1 linear evaluation, Fig. 3 beta ablation",
        seeds=(0, 1, 2),
        seeded=False,
        rows=_aavae_rows(),
        budgets={
            "quick": Budget(
                1, 1, {"train.epoch_fraction": 0.02}, tables=("Table 1",), eval_args=_QUICK_EVAL
            ),
            "medium": Budget(2, 1, {"train.epoch_fraction": 0.5}),
            "paper": Budget(None, 1),
        },  # fmt: skip
        notes=(
            "STL-10 is not reproduced: no STL-10 presets ship yet.",
            "The cosine-similarity figure: view_cosine_* metrics and figures of the ablation runs.",
        ),
    ),
}


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
    if paper not in PAPERS:
        raise ConfigError(f"unknown paper {paper!r}; choose from {', '.join(PAPERS)}")
    if budget not in BUDGETS:
        raise ConfigError(f"unknown budget {budget!r}; choose from {', '.join(BUDGETS)}")
    return PAPERS[paper], PAPERS[paper].budgets[budget]


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
    return default_data_root() if data_dir is None else Path(data_dir).expanduser()


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
        eval_args=list(b.eval_args),
        echo=echo,
    )
    for run in results:
        if _latent_dim(run.run_dir) == 2 and (run.run_dir / "metrics.json").is_file():
            latent_scatter(run.run_dir, run.run_dir / "figures" / LATENT_FIGURE)
    failed = {r.name: r.message for r in results if r.status == "failed"}
    return write_report(spec, budget, planned, out, missing=messages, failed=failed)


def _latent_dim(run_dir: Path) -> int | None:
    config = run_dir / "config.yaml"
    return C.load_yaml(config).get("model", {}).get("latent_dim") if config.is_file() else None


def latent_scatter(run_dir: Path, path: Path) -> Path:
    """BTVAE Fig. 3: scatter of the test-set posterior means of a d=2 run, each axis z-scored
    (``(mu - mean) / std`` over the test set), coloured by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cvae.api import load
    from cvae.training.trainer import data_from_config

    run = load(run_dir)
    data = data_from_config(run.config)
    split = data.test if data.test is not None else data.val
    mu = run.encode(split.images)[0].cpu().double()
    z = ((mu - mu.mean(0)) / mu.std(0).clamp_min(1e-12)).numpy()
    fig, ax = plt.subplots(figsize=(5, 5))
    labels = None if split.labels is None else split.labels.numpy()
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, s=2, cmap="tab10")
    if labels is not None:
        fig.colorbar(points, ax=ax, label="class")
    ax.set(xlabel="z1 (z-scored)", ylabel="z2 (z-scored)", title="test mu, d=2")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- aggregation


@dataclass
class Aggregate:
    """One metric over a row's runs: ``values`` (one per run that has it), their ``mean`` and
    sample ``std`` (n-1; None below two values), the ``unit``, the runs' ``protocol`` (first
    run), ``epochs`` trained (fewest over the runs) and why a value is missing (``reason``)."""

    values: list[float]
    mean: float | None
    std: float | None
    unit: str
    protocol: dict[str, Any]
    epochs: int | None
    reason: str | None


def aggregate(run_dirs: Sequence[Path], metric: str) -> Aggregate:
    """Mean (std) of ``metric`` over the ``metrics.json`` of ``run_dirs``; runs without the
    file or the metric are left out, and ``reason`` says why."""
    values, protocol, unit, epochs, reasons = [], {}, "", [], []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.json"
        if not path.is_file():
            reasons.append("not evaluated yet")
            continue
        data = json.loads(path.read_text())
        if isinstance(data.get("checkpoint_epoch"), int):
            epochs.append(data["checkpoint_epoch"])
        m = data.get("metrics", {}).get(metric)
        m = m if isinstance(m, Mapping) else {"value": m}
        value = m.get("value")
        if not _is_number(value) or not math.isfinite(value):
            why = m.get("unavailable") or ("no value" if metric in data["metrics"] else "n/a")
            reasons.append(f"{metric}: {why}")
            continue
        values.append(float(value))
        protocol = protocol or dict(m.get("protocol", {}))
        unit = unit or m.get("unit") or _unit(protocol)
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else None
    reason = "; ".join(dict.fromkeys(reasons)) or None
    return Aggregate(values, mean, std, unit, protocol, min(epochs) if epochs else None, reason)


def _unit(protocol: Mapping[str, Any]) -> str:
    return "accuracy" if protocol.get("metric") == "top-1 accuracy" else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_aggregate(agg: Aggregate, unit: str = "") -> str:
    """``"88.51% (0.92)"``, ``"22.24 (0.10)"``, ``"22.24"`` (one run) or ``"n/a: reason"``."""
    if agg.mean is None:
        return f"n/a: {agg.reason}" if agg.reason else "n/a"
    unit = unit or agg.unit
    scale, suffix = (100, "%") if unit == "accuracy" else (1, "")
    text = f"{_num(agg.mean * scale)}{suffix}"
    return text if agg.std is None else f"{text} ({_num(agg.std * scale)})"


def _num(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:.3g}"


def verdict(
    entry: PaperNumber | None, agg: Aggregate, target_epochs: int, fraction: float = 1.0
) -> str:
    """One line: ``reproduced within noise (...)``, ``differs (...)`` or ``not comparable
    (reason)``; ``""`` without a paper number. Within noise: ``|ours - paper| <= max(2 *
    sqrt(std_paper^2 + se_ours^2), tolerance)`` with ``se_ours = std / sqrt(n)``."""
    if entry is None:
        return ""
    if agg.mean is None:
        return f"not comparable (no value: {agg.reason or 'not run'})"
    if agg.epochs is not None and (agg.epochs < target_epochs or fraction < 1.0):
        part = "" if fraction == 1.0 else f" x {fraction:g} of the train set"
        return f"not comparable (budget: {agg.epochs}{part} of {target_epochs} epochs)"
    if entry.caveat:
        return f"not comparable ({entry.caveat})"
    for key, wanted in entry.protocol.items():
        if agg.protocol.get(key) != wanted:
            ours = agg.protocol.get(key)
            return f"not comparable (protocol: paper {key}={wanted}, ours {ours})"
    se = 0.0 if agg.std is None else agg.std / math.sqrt(len(agg.values))
    tol = max(NOISE_SIGMAS * math.hypot(entry.std or 0.0, se), entry.tolerance)
    diff = agg.mean - entry.value
    scale = 100 if entry.unit == "accuracy" else 1
    detail = f"{diff * scale:+.3g}, tolerance {tol * scale:.3g}"
    return f"{REPRODUCED if abs(diff) <= tol else DIFFERS} ({detail})"


# --------------------------------------------------------------------------- report

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
    """``{table: [line, ...]}``, one line per (row, metric) with the :data:`COLUMNS`;
    ``missing`` maps skipped datasets to their message, ``failed`` run names to their error."""
    failed = failed or {}
    skipped = set(missing or {})
    tables: dict[str, list[dict[str, str]]] = {}
    for row in spec.rows:
        main = [p for p in planned if p.row == row and not p.variant]
        if not main:
            continue
        code = [p for p in planned if p.row == row and p.variant]
        cfg = main[0].job.config
        target = _preset_epochs(row.preset)
        fraction = cfg.train.epoch_fraction if cfg is not None else 1.0
        seeds = ",".join(str(p.seed) for p in main)
        why = _why_not(main[0], skipped, failed)
        for metric in row.metrics:
            agg = aggregate([runs_dir / p.job.name for p in main], metric)
            if why and agg.mean is None:
                agg.reason = why
            entry = paper_number(cfg, metric) if cfg is not None else None
            unit = entry.unit if entry is not None else ""
            refs = []
            if code:
                coded = aggregate([runs_dir / p.job.name for p in code], metric)
                refs.append(f"{code[0].job.name.split(',')[0]}: {format_aggregate(coded, unit)}")
            if metric in row.code:
                variant = aggregate([runs_dir / p.job.name for p in main], row.code[metric])
                refs.append(f"{row.code[metric]}: {format_aggregate(variant, unit)}")
            epochs = cfg.train.epochs if cfg is not None else target
            part = "" if fraction == 1.0 else f" x {fraction:g}"
            ours = format_aggregate(agg, unit)
            if agg.mean is not None and not spec.seeded and len(agg.values) == 1:
                ours = f"{ours} (1 run)"
            tables.setdefault(row.table, []).append(
                {
                    "row": row.label,
                    "metric": metric,
                    "paper": _paper_text(entry),
                    "ours": ours,
                    "reference code": "; ".join(refs) or "—",
                    "budget": f"{budget}: {epochs}{part} of {target} epochs",
                    "seeds": seeds,
                    "verdict": verdict(entry, agg, target, fraction) or "no paper number",
                }
            )
    return tables


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
    and the notes, then :func:`compare`'s per-run table, protocols and figures for every
    evaluated run. Returns ``{"tables", "markdown", "html", "compare"}``."""
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
    md = [f"# {spec.title}", "", *[f"- {h}" for h in header], ""]
    for table, lines in tables.items():
        md += [f"## {table}", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
        md += ["| " + " | ".join(_md(line[c]) for c in COLUMNS) + " |" for line in lines] + [""]
    e = html.escape
    page = [f"<h1>{e(spec.title)}</h1><ul>", *[f"<li>{e(h)}</li>" for h in header], "</ul>"]
    for table, lines in tables.items():
        page.append(f"<h2>{e(table)}</h2><table><tr>{''.join(f'<th>{c}</th>' for c in COLUMNS)}")
        for line in lines:
            page.append("<tr>" + "".join(f"<td>{e(line[c])}</td>" for c in COLUMNS) + "</tr>")
        page.append("</table>")
    evaluated = list(dict.fromkeys(runs_dir / p.job.name for p in planned))
    evaluated = [d for d in evaluated if (d / "metrics.json").is_file()]
    result: dict[str, Any] = {"tables": tables, "compare": None}
    md_path, html_path = out / "report.md", out / "report.html"
    out.mkdir(parents=True, exist_ok=True)
    if evaluated:
        result["compare"] = compare(evaluated, out, title="Every run")
        md += ["# Every run", ""] + md_path.read_text().split("\n", 1)[1].splitlines()
        body = html_path.read_text()
        cut = body.index("<h1>")
        html_text = body[:cut] + "\n".join(page) + "\n" + body[cut:]
    else:
        md += ["No run has been evaluated yet."]
        html_text = f"<!DOCTYPE html><html><body>{''.join(page)}</body></html>\n"
    md_path.write_text("\n".join(md) + "\n")
    html_path.write_text(html_text)
    result["markdown"], result["html"] = str(md_path), str(html_path)
    return result


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
