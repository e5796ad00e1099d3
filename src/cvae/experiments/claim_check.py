"""``cvae reproduce PAPER --budget cpu``: a paper's claim checks (:mod:`cvae.experiments.claims`).

Each arm trains once per seed through the sweep engine into ``OUT/runs`` (runs named
``<preset>,<arm overrides>,train.seed=<s>``; re-running the same command finishes only what is
missing), then each run is evaluated on the claim's metrics only (the same protocols as
``cvae eval``, written to ``claim_metrics.json`` in the run), and ``OUT/report.md``,
``OUT/report.html`` and ``OUT/claim.json`` (every value, the intervals, the verdicts) are
written.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cvae import config as C
from cvae.data import dataset_available, missing_message
from cvae.data.registry import REGISTRY
from cvae.errors import ConfigError
from cvae.evaluation.options import EvalConfig
from cvae.experiments import report as rp
from cvae.experiments.claims import Claim, ClaimResult, claim_report, judge_claim, verdict_line
from cvae.experiments.papers import CLAIMS, get_paper
from cvae.experiments.reproduce import _job, _root
from cvae.experiments.results import measure, read_metrics_json
from cvae.experiments.sweep import SweepJob, checkpoint_epochs, run_jobs

CLAIM_BUDGETS = ("cpu",)
"""Budget names that run a paper's claim checks instead of its tables."""
CLAIM_METRICS_FILE = "claim_metrics.json"


def paper_claims(paper: str, names: Sequence[str] | None = None) -> list[Claim]:
    """The claims of ``paper`` (all, or those called ``names``); one-line ConfigError for an
    unknown paper or claim."""
    get_paper(paper)
    claims = CLAIMS.get(paper, ())
    if not names:
        return list(claims)
    known = {c.name: c for c in claims}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown claim {unknown[0]!r} of {paper}; choose from "
                          f"{', '.join(known) or 'none'}")  # fmt: skip
    return [known[n] for n in names]


def claim_jobs(
    claim: Claim,
    budget: str,
    *,
    seeds: int | None = None,
    data_dir: str | Path | None = None,
) -> list[tuple[str, int, SweepJob]]:
    """``(arm label, seed, job)`` for every run of ``claim`` at ``budget`` (the first ``seeds``
    of the claim's seeds, at least 2)."""
    b = claim.budget(budget)
    n = len(claim.seeds) if seeds is None else seeds
    if not 2 <= n <= len(claim.seeds):
        raise ConfigError(f"--seeds must be 2..{len(claim.seeds)} for {claim.key}, got {n}")
    shared: dict[str, Any] = dict(b.overrides)
    if data_dir is not None or claim.data_folder is not None:
        root = _root(data_dir).expanduser().resolve()
        shared["data.data_dir"] = str(root / claim.data_folder if claim.data_folder else root)
    out = []
    for arm in claim.arms:
        base = C.load_preset(arm.preset)
        for seed in claim.seeds[:n]:
            job = _job(base, arm.preset, {**arm.overrides, "train.seed": seed}, shared)
            out.append((arm.label, seed, job))
    return out


def evaluate_claim_metrics(
    run_dir: Path, metrics: Sequence[str], eval_config: EvalConfig, threads: int | None = None
) -> dict[str, Any]:
    """Compute only ``metrics`` (``metrics.json`` names) of the run's last checkpoint with the
    ``cvae eval`` protocols and write them to ``run_dir/claim_metrics.json``; returns its
    content (``checkpoint_epoch``, ``feature``, ``metrics``, ``seconds``)."""
    from cvae.api import load
    from cvae.evaluation.evaluate import choose_feature
    from cvae.evaluation.registry import METRICS, EvalContext, Notes
    from cvae.evaluation.registry import measure as compute
    from cvae.threads import torch_threads
    from cvae.training.trainer import data_from_config

    t0 = time.perf_counter()
    with torch_threads(threads):
        run = load(run_dir, device=eval_config.device)
        feature, source = choose_feature(run, eval_config)
        ctx = EvalContext(run, eval_config, data_from_config(run.config), feature, Notes())
        results = {}
        for spec in METRICS:
            if set(spec.names) & set(metrics):
                results.update(compute(spec, ctx))
    data = {
        "checkpoint_epoch": run.epoch,
        "feature": feature,
        "feature_source": source,
        "eval_split": {"name": ctx.eval_name, "n": len(ctx.eval_split)},
        "train_split_n": len(ctx.data.train),
        "metrics": {k: v.to_json() for k, v in results.items() if k in metrics},
        "notes": ctx.notes.to_json(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    tmp = run_dir / (CLAIM_METRICS_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, run_dir / CLAIM_METRICS_FILE)
    return data


def _evaluated(run_dir: Path, metrics: Sequence[str]) -> bool:
    path = run_dir / CLAIM_METRICS_FILE
    if not path.is_file():
        return False
    data = read_metrics_json(path)
    return data.get("checkpoint_epoch") == checkpoint_epochs(run_dir) and set(metrics) <= set(
        data.get("metrics", {})
    )


def run_claim(
    claim: Claim,
    budget: str = "cpu",
    *,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    jobs: int = 1,
    seeds: int | None = None,
    command: str | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[ClaimResult, dict[str, str]]:
    """Train, evaluate and judge ``claim`` at ``budget`` into ``out`` (default
    ``reproductions/<paper>-<claim>-<budget>``); returns the result and the report paths."""
    t0, commit = time.perf_counter(), _commit()
    b = claim.budget(budget)
    out = (
        Path(out)
        if out is not None
        else Path("reproductions") / (f"{claim.paper.removesuffix('-paper')}-{claim.name}-{budget}")
    )
    planned = claim_jobs(claim, budget, seeds=seeds, data_dir=data_dir)
    _check_data(claim, planned, data_dir)
    runs = run_jobs([j for _, _, j in planned], out / "runs", parallel=jobs, echo=echo)
    failed = {r.name: r.message for r in runs if r.status in ("failed", "interrupted")}
    names = [m.name for m in claim.metrics]
    values: dict[str, dict[str, dict[int, float | None]]] = {m: {} for m in names}
    unconverged: dict[str, list[str]] = {}
    for arm, seed, job in planned:
        run_dir = out / "runs" / job.name
        if job.name not in failed and checkpoint_epochs(run_dir) is not None:
            if not _evaluated(run_dir, names):
                echo(f"claim metrics: {job.name}")
                evaluate_claim_metrics(run_dir, names, b.eval_config, threads=os.cpu_count())
            data = read_metrics_json(run_dir / CLAIM_METRICS_FILE)
            for m in names:
                values[m].setdefault(arm, {})[seed] = measure(data, m).mean
                protocol = data.get("metrics", {}).get(m, {}).get("protocol", {})
                if protocol.get("converged") is False:
                    unconverged.setdefault(m, []).append(job.name)
    result = judge_claim(claim, budget, values)
    result.failed = failed
    result.unconverged = unconverged
    seconds, first_commit = _earlier(out)
    result.invocation_seconds = [*seconds, time.perf_counter() - t0]
    if first_commit not in (None, commit):
        commit = f"{first_commit} (runs trained and evaluated); report re-rendered at {commit}"
    result.provenance = provenance(command, result.invocation_seconds, planned, commit)
    paths = write_claim_report(result, out)
    echo(verdict_line(result))
    return result, paths


def _check_data(
    claim: Claim, planned: Sequence[tuple[str, int, SweepJob]], data_dir: str | Path | None
) -> None:
    """One-line ConfigError when the claim's data is not under the data root (bundled and
    synthetic datasets need none)."""
    root = _root(data_dir)
    if claim.data_folder is not None:
        if not (root / claim.data_folder).is_dir():
            raise ConfigError(f"{claim.key} reads the folder {root / claim.data_folder}, "
                              "which does not exist; pass --data-dir ROOT")  # fmt: skip
        return
    for name in dict.fromkeys(j.config.data.dataset for _, _, j in planned if j.config):
        if REGISTRY[name].files is not None and not dataset_available(root, name):
            raise ConfigError(missing_message(name, root))


_OLD_WALL = re.compile(r"([0-9.]+) min \(this invocation")
"""The wall time a claim.json written before ``invocation_seconds`` existed gives as text."""


def _earlier(out: Path) -> tuple[list[float], str | None]:
    """The wall seconds of the invocations that wrote ``out/claim.json`` before this one, and
    the commit of the first of them (the one that trained); none without a readable file."""
    try:
        data = json.loads((out / "claim.json").read_text())
        commit = str(data["provenance"]["commit"]).split(" (")[0]
        if "invocation_seconds" in data:
            return [float(s) for s in data["invocation_seconds"]], commit
        old = _OLD_WALL.match(data["provenance"]["wall time"])
        return ([] if old is None else [float(old.group(1)) * 60]), commit
    except (OSError, ValueError, TypeError, AttributeError, KeyError):
        return [], None


def provenance(
    command: str | None,
    seconds: Sequence[float],
    planned: Sequence[tuple[str, int, SweepJob]],
    commit: str,
) -> dict[str, str]:
    """Command, wall time (``seconds`` of each invocation: a re-run retrains nothing that
    finished), machine, seeds and ``commit`` (the code's, when the check started) of a claim
    check, for its report."""
    seeds = sorted({s for _, s, _ in planned})
    wall = f"{sum(seconds) / 60:.1f} min"
    if len(seconds) > 1:
        parts = " + ".join(f"{s / 60:.1f}" for s in seconds)
        wall += f" in {len(seconds)} invocations ({parts} min; a re-run retrains nothing finished)"
    return {
        "command": command or "cvae " + " ".join(sys.argv[1:]),
        "wall time": wall,
        "machine": f"{platform.node()}: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"torch {_torch_version()}",
        "seeds per arm": ",".join(map(str, seeds)),
        "commit": commit,
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def _commit() -> str:
    """``git describe`` of the package's source tree (``-dirty`` with uncommitted changes)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here, capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip()


def write_claim_report(result: ClaimResult, out: Path) -> dict[str, str]:
    """``out/report.md``, ``out/report.html`` and ``out/claim.json``."""
    out.mkdir(parents=True, exist_ok=True)
    md, html = rp.write_report(claim_report(result), out)
    (out / "claim.json").write_text(json.dumps(claim_json(result), indent=2) + "\n")
    return {"markdown": str(md), "html": str(html), "json": str(out / "claim.json")}


def claim_json(result: ClaimResult) -> dict[str, Any]:
    """Every value, interval and verdict of ``result`` as JSON."""

    def interval(i: Any) -> list[float] | None:
        return None if i is None else [i.low, i.high]

    return {
        "claim": result.claim.key,
        "statement": result.claim.statement,
        "budget": result.budget,
        "budget_text": result.claim.budget(result.budget).text,
        "verdict": result.verdict,
        "provenance": result.provenance,
        "invocation_seconds": [round(s, 1) for s in result.invocation_seconds],
        "failed": result.failed,
        "unconverged": result.unconverged,
        "values": {
            m: {a: dict(zip(r.seeds, r.values, strict=True)) for a, r in arms.items()}
            for m, arms in result.arms.items()
        },
        "contrasts": [
            {
                "treatment": c.treatment,
                "control": c.control,
                "metric": c.metric.name,
                "higher_is_better": c.metric.higher,
                "gain": c.gain,
                "se": c.se,
                "ci_welch": interval(c.welch),
                "ci_bootstrap": interval(c.bootstrap),
                "paper_gain": c.paper_gain,
                "verdict": c.verdict,
                "reason": c.reason,
            }
            for c in result.contrasts
        ],
    }


def reproduce_claims(
    paper: str,
    budget: str,
    *,
    claims: Sequence[str] | None = None,
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    jobs: int = 1,
    seeds: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[tuple[ClaimResult, dict[str, str]]]:
    """Every claim of ``paper`` (or those named) at ``budget``; one ``out/<claim>`` folder each
    when ``out`` is given and there is more than one claim."""
    chosen = paper_claims(paper, claims)
    if not chosen:
        raise ConfigError(f"{paper} has no claim checks")
    results = []
    for claim in chosen:
        where = None if out is None else Path(out) if len(chosen) == 1 else Path(out) / claim.name
        results.append(run_claim(claim, budget, out=where, data_dir=data_dir, jobs=jobs,
                                 seeds=seeds, echo=echo))  # fmt: skip
    return results
