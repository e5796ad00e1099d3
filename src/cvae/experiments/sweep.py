"""``cvae sweep``: a Cartesian grid of runs, one directory each, resumable.

Every run is a ``python -m cvae train`` subprocess (``--resume`` when its checkpoint is behind the
requested epochs), optionally followed by ``python -m cvae eval``; each writes ``train.log`` in its
run directory. Re-running the same sweep finishes only what is missing: finished runs are skipped,
interrupted ones resume, missing ones start. ``summary.md`` / ``summary.csv`` list every run.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cvae
from cvae import config as C
from cvae.config import RunConfig
from cvae.errors import ConfigError, CvaeError
from cvae.evaluation.options import EvalConfig, to_argv
from cvae.experiments.results import METRICS_FILE, is_number, read_metrics_json
from cvae.methods import check_config
from cvae.training.runlog import read_metrics
from cvae.training.trainer import CHECKPOINT

REQUEST = "sweep.yaml"
"""The config a sweep asked for (before ``auto`` values are resolved), kept in each run dir."""
LOG = "train.log"
CHANGEABLE = ("train.epochs", "train.threads", "train.device", "train.progress")
"""Keys a re-run may change without starting the run afresh (epochs extend or shorten it)."""
STOP_SECONDS = 30.0
"""How long interrupted children get to exit after SIGTERM before they are killed."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,\[\]@-]")


@dataclass
class SweepJob:
    """One run: its directory ``name`` (relative to the sweep's output folder), the overrides
    that name it, and its validated ``config`` or the ``error`` that prevented building it."""

    name: str
    overrides: dict[str, Any]
    config: RunConfig | None
    error: str | None = None


@dataclass
class SweepRun:
    """Outcome of one run. ``status``: done (trained from scratch) | resumed | evaluated (only
    the evaluation was missing) | skipped (nothing missing) | failed | interrupted; for a dry
    run, the planned action: start | resume | eval | skip | fail; runs an interrupt kept from
    starting keep that action."""

    name: str
    run_dir: Path
    overrides: dict[str, Any]
    status: str
    returncode: int | None = None
    epochs: int | None = None
    train_loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


# --------------------------------------------------------------------------- grids and names


def parse_grid(
    pairs: Sequence[str], aliases: Mapping[str, str] | None = None
) -> dict[str, list[str]]:
    """``["loss.terms.kl.weight=1e-3,1e-5", "model.channels=[8,16],[16,32]"]`` ->
    ``{key: [raw, ...]}``.

    Values split at top-level commas (not inside brackets or quotes); each stays a raw string
    that :func:`cvae.config.set_value` parses against the field's type. ``aliases`` maps short
    keys (``beta``) to dotted ones (``loss.terms.kl.weight``).
    """
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=v1,v2,..., got '{pair}'")
        key = (aliases or {}).get(key, key)
        if key in grid:
            raise ConfigError(f"--set {key} given twice; list its values once: {key}=v1,v2")
        grid[key] = _split_values(raw)
    return grid


def _split_values(raw: str) -> list[str]:
    values, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(raw):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(raw[start:i].strip())
            start = i + 1
    return [*values, raw[start:].strip()]


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product, first key slowest: ``{a: [1, 2], b: [x]}`` -> ``[{a: 1, b: x},
    {a: 2, b: x}]``. An empty grid is one run with no overrides."""
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"--set {key} has no values")
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def run_name(overrides: Mapping[str, Any]) -> str:
    """Filesystem-safe directory name, keys sorted: ``loss.terms.kl.weight=1e-05,method=cvae``.

    Values print as their config type (floats by ``repr``, lists as ``[8,16]``); characters
    outside ``A-Za-z0-9._+=,[]@-`` become ``_``; names over 120 characters are cut and get a hash
    of the full name. No overrides: ``run``.
    """
    text = ",".join(f"{k}={_format(overrides[k])}" for k in sorted(overrides)) or "run"
    name = _UNSAFE.sub("_", text)
    if len(name) > 120:
        name = f"{name[:100]}@{hashlib.sha1(text.encode()).hexdigest()[:10]}"
    return name


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))  # true/false/null, 1e-05, [8,16], {...}


def sweep_jobs(
    base: RunConfig,
    grid: Mapping[str, Sequence[Any]],
    names: Callable[[Mapping[str, Any]], str] = run_name,
) -> list[SweepJob]:
    """One job per grid point, named by ``names`` from its varying overrides (coerced to their
    config types). Keys with one value apply to every run and stay out of the names, so a re-run
    may change ``train.epochs=...`` to extend the runs; one that does not parse raises
    :class:`ConfigError`. Any other bad value fails (only) the runs that use it."""
    shared = C.from_plain(base.to_dict())
    for key, values in grid.items():
        if len(values) == 1:
            C.set_value(shared, key, values[0])
    varying = {k: v for k, v in grid.items() if len(v) != 1}
    jobs = []
    for point in expand_grid(varying):
        cfg, shown, error = C.from_plain(shared.to_dict()), dict(point), None
        try:
            for key, value in point.items():
                C.set_value(cfg, key, value)
                shown[key] = C.get_value(cfg, key)
            check_config(cfg)
        except ConfigError as err:
            error = str(err)
        jobs.append(SweepJob(names(shown), shown, None if error else cfg, error))
    return jobs


# --------------------------------------------------------------------------- planning


def checkpoint_epochs(run_dir: Path) -> int | None:
    """Completed epochs recorded in ``run_dir``'s last checkpoint (memory-mapped, so cheap for
    large models); None without a checkpoint, -1 if it cannot be read (the resume will say why)."""
    import torch

    try:
        ckpt = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        return None
    except Exception:  # corrupt or foreign file: torch raises several types
        return -1
    return int(ckpt["epoch"])


def plan_run(
    job: SweepJob,
    run_dir: Path,
    *,
    evaluate: bool = False,
    eval_config: EvalConfig | None = None,
) -> tuple[str, list[list[str]]]:
    """What ``run_dir`` still needs: ``(action, commands)``, action one of start | resume |
    eval | skip | fail. Finished means the checkpoint reached ``train.epochs`` and, with
    ``evaluate``, a complete ``metrics.json`` is newer than the checkpoint; ``cvae eval`` runs
    with ``eval_config`` (default :class:`EvalConfig`) and the run's ``train.threads``."""
    if job.config is None:
        return "fail", []
    cfg = job.config
    _check_request(cfg, run_dir)
    python = [sys.executable, "-m", "cvae"]
    threads = [] if cfg.train.threads is None else ["--threads", str(cfg.train.threads)]
    options = to_argv(eval_config or EvalConfig())
    evals = [[*python, "eval", str(run_dir), *options, *threads]] if evaluate else []
    done = checkpoint_epochs(run_dir)
    if done is None:
        fresh = ["train", "--config", str(run_dir / REQUEST), "--out", str(run_dir)]
        return "start", [[*python, *fresh], *evals]
    if done < cfg.train.epochs:
        resume = ["train", "--resume", str(run_dir), "--epochs", str(cfg.train.epochs)]
        return "resume", [[*python, *resume, "--device", cfg.train.device, *threads], *evals]
    return ("eval", evals) if evaluate and not _evaluated(run_dir) else ("skip", [])


def _evaluated(run_dir: Path) -> bool:
    """``metrics.json`` is newer than the checkpoint and complete (an interrupted ``cvae eval``
    leaves ``"complete": false``; a corrupt file counts as not evaluated)."""
    metrics = run_dir / METRICS_FILE
    if not metrics.is_file() or metrics.stat().st_mtime < (run_dir / CHECKPOINT).stat().st_mtime:
        return False
    try:
        return read_metrics_json(metrics).get("complete", True) is not False
    except CvaeError:
        return False


def _check_request(cfg: RunConfig, run_dir: Path) -> None:
    """Refuse to continue a run directory that holds a differently configured run."""
    request = run_dir / REQUEST
    if not request.is_file():
        if (run_dir / CHECKPOINT).exists():
            raise CvaeError(f"{run_dir} holds a run this sweep did not start; use another --out")
        return
    try:
        old = C.flatten(C.load_yaml(request))
    except (ConfigError, UnicodeDecodeError) as err:
        why = err if isinstance(err, ConfigError) else f"{request}: not UTF-8 text"
        raise CvaeError(f"{why}; use another --out or delete that run") from None
    new = C.flatten(cfg.to_dict())
    changed = [k for k in new if k not in CHANGEABLE and old.get(k) != new[k]]
    if changed:
        key = changed[0]
        raise CvaeError(
            f"{run_dir} holds a run with {key}={old.get(key)!r}, not {new[key]!r}; "
            "use another --out or delete that run"
        )


# --------------------------------------------------------------------------- running


@dataclass
class _Active:
    """A run waiting for or running its ``commands``, numbered in the sweep's order."""

    number: int
    run: SweepRun
    commands: list[list[str]]
    env: dict[str, str]


@dataclass
class _Running:
    """An active run's current command: its process and the train.log it writes to."""

    active: _Active
    proc: subprocess.Popen[bytes]
    log: IO[str]


_Planned = tuple[SweepJob, SweepRun, list[list[str]]]
_DONE = {"start": "done", "resume": "resumed", "eval": "evaluated"}
_SETTLED = {"skip": "skipped", "fail": "failed"}


def run_jobs(
    jobs: Sequence[SweepJob],
    out: str | Path,
    *,
    parallel: int = 1,
    evaluate: bool = False,
    eval_config: EvalConfig | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> list[SweepRun]:
    """Run ``jobs`` into ``out/<job.name>``, ``parallel`` subprocesses at a time, each with
    ``train.threads = max(1, cores // parallel)`` unless its config sets it. A failed run does
    not stop the others. Writes ``out/summary.md`` and ``out/summary.csv`` (not on a dry run);
    on KeyboardInterrupt, stops the children with SIGTERM (they keep their last checkpoint),
    writes the summary and re-raises."""
    if parallel < 1:
        raise ConfigError(f"--jobs must be >= 1, got {parallel}")
    out = Path(out)
    _check_unique(jobs, out)
    share = _thread_share(parallel)
    planned: list[_Planned] = []
    for job in jobs:  # plan everything before touching the disk: a conflict stops the sweep
        job = _with_threads(job, share)
        run = SweepRun(job.name, out / job.name, job.overrides, "", message=job.error or "")
        run.status, commands = plan_run(
            job, run.run_dir, evaluate=evaluate, eval_config=eval_config
        )
        planned.append((job, run, commands))
    runs = [run for _, run, _ in planned]
    if dry_run:
        return runs
    queue = [_enqueue(number, *p) for number, p in enumerate(planned, 1)]
    try:
        _execute([a for a in queue if a is not None], parallel, len(runs), echo)
    finally:
        write_summary(runs, out)
    return runs


def _check_unique(jobs: Sequence[SweepJob], out: Path) -> None:
    """Refuse jobs whose names (hence run directories) collide."""
    names = [j.name for j in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"several runs would share the directory {out / dupes[0]}")


def _thread_share(parallel: int) -> int:
    """Threads per run when ``parallel`` runs share this process's cores (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // parallel)


def _with_threads(job: SweepJob, share: int) -> SweepJob:
    """``job`` with ``train.threads = share`` on a copy of its config, unless it sets them."""
    if job.config is None or job.config.train.threads is not None:
        return job
    cfg = C.from_plain(job.config.to_dict())
    cfg.train.threads = share
    return dataclasses.replace(job, config=cfg)


def _enqueue(
    number: int, job: SweepJob, run: SweepRun, commands: list[list[str]]
) -> _Active | None:
    """The run to execute, its request written for a fresh start; None for a run that needs no
    process (skipped, or failed before starting: :func:`plan_run` fails every job without a
    config), which is settled and collected here."""
    if job.config is None or run.status in _SETTLED:
        run.status = _SETTLED[run.status]
        _collect(run)
        return None
    if run.status == "start":
        run.run_dir.mkdir(parents=True, exist_ok=True)
        C.save_yaml(job.config, run.run_dir / REQUEST)
    return _Active(number, run, commands, _child_env(str(job.config.train.threads)))


def _child_env(threads: str) -> dict[str, str]:
    """The parent's environment, with this ``cvae`` first on the path and a thread budget."""
    env = dict(os.environ, OMP_NUM_THREADS=threads)
    source = str(Path(cvae.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def progress_line(ended: int, running: int, queued: int, elapsed: float) -> str:
    """``"2/5 ended, 2 running, 1 queued; 3m12s elapsed, ~4m48s left"``: the time left assumes
    the remaining runs take as long as the ended ones did (rough while few have ended)."""
    text = f"{ended}/{ended + running + queued} ended, {running} running, {queued} queued"
    text += f"; {_duration(elapsed)} elapsed"
    if ended and running + queued:
        text += f", ~{_duration(elapsed / ended * (running + queued))} left"
    return text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _execute(queue: list[_Active], parallel: int, total: int, echo: Callable[[str], None]) -> None:
    """Run the ``queue``'s commands, ``parallel`` runs at a time, echoing each start and each
    end with the sweep's progress (:func:`progress_line`)."""
    pending = list(queue)
    running: list[_Running] = []
    started, ended = time.monotonic(), 0
    try:
        while pending or running:
            while pending and len(running) < parallel:
                active = pending.pop(0)
                echo(f"[{active.number}/{total}] {active.run.status}: {active.run.name}")
                running.append(_Running(active, *_launch(active)))
            time.sleep(0.1)
            for child in list(running):
                if _advance(child):
                    running.remove(child)
                    ended += 1
                    progress = progress_line(
                        ended, len(running), len(pending), time.monotonic() - started
                    )
                    _finish(child, total, echo, progress)
    except KeyboardInterrupt:
        _interrupt(running)
        raise


def _advance(child: _Running) -> bool:
    """Whether ``child``'s run has ended; a command that succeeded starts the run's next one."""
    code = child.proc.poll()
    if code is None:
        return False
    child.log.close()
    if code == 0 and child.active.commands:
        child.proc, child.log = _launch(child.active)
        return False
    return True


def _finish(child: _Running, total: int, echo: Callable[[str], None], progress: str) -> None:
    """Record the ended run's status, exit code and results, and echo them with the sweep's
    ``progress``."""
    run, code = child.active.run, child.proc.returncode
    run.returncode = code
    if code == 0:
        run.status = _DONE[run.status]
    else:
        run.status, run.message = "failed", _last_line(run.run_dir / LOG)
    _collect(run)
    detail = f" (exit {code}: {run.message})" if code else ""
    echo(f"[{child.active.number}/{total}] {run.status}: {run.name}{detail} -- {progress}")


def _interrupt(running: list[_Running]) -> None:
    """Stop the ``running`` children and record their runs as interrupted."""
    _stop(running)
    for child in running:
        child.active.run.status = "interrupted"
        child.active.run.returncode = child.proc.returncode
        _collect(child.active.run)


def _launch(active: _Active) -> tuple[subprocess.Popen[bytes], IO[str]]:
    """Start the next command of ``active``, appending its output to the run's train.log."""
    command = active.commands.pop(0)
    active.run.run_dir.mkdir(parents=True, exist_ok=True)
    log = (active.run.run_dir / LOG).open("a")
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=active.env,
        start_new_session=True,  # a terminal's Ctrl-C reaches the sweep, which stops the runs
    )
    return proc, log


def _stop(running: list[_Running]) -> None:
    for child in running:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)  # SIGINT may be ignored (`cvae &`)
    deadline = time.monotonic() + STOP_SECONDS
    for child in running:
        try:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        child.log.close()


def _last_line(path: Path) -> str:
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _collect(run: SweepRun) -> None:
    """Fill epochs and final train loss (metrics.csv) and the metric values (metrics.json)."""
    rows = read_metrics(run.run_dir / "metrics.csv")
    if rows:
        run.epochs = int(rows[-1]["epoch"])
        loss = rows[-1].get("train_loss")
        run.train_loss = loss if isinstance(loss, float) else None
    metrics = run.run_dir / METRICS_FILE
    if not metrics.is_file():
        return
    try:
        values = read_metrics_json(metrics).get("metrics", {})
    except CvaeError as err:  # the other runs still finish and are summarised
        run.message = run.message or str(err)
        return
    run.metrics = {
        k: float(m["value"])
        for k, m in values.items()
        if isinstance(m, dict) and is_number(m.get("value"))
    }


# --------------------------------------------------------------------------- summary


def summary_table(runs: Sequence[SweepRun]) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows: run, each override key, status, exit, epochs, train_loss, metrics."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    metrics = list(dict.fromkeys(k for r in runs for k in r.metrics))
    columns = ["run", *keys, "status", "exit", "epochs", "train_loss", *metrics]
    rows = [
        [
            r.name,
            *(r.overrides.get(k) for k in keys),
            r.status,
            r.returncode,
            r.epochs,
            r.train_loss,
            *(r.metrics.get(k) for k in metrics),
        ]
        for r in runs
    ]
    return columns, rows


def format_markdown(runs: Sequence[SweepRun]) -> str:
    """The summary as a Markdown table, then one line per failed run (its last log line)."""
    columns, rows = summary_table(runs)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        lines += ["", "Failed runs:"]
        for r in failed:
            how = "not started" if r.returncode is None else f"exit {r.returncode}"
            lines.append(f"- {r.name} ({how}): {r.message}")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return _format(value).replace("|", "\\|")


def write_summary(runs: Sequence[SweepRun], out: Path) -> None:
    """``out/summary.md`` (Markdown table) and ``out/summary.csv`` (full precision, run_dir and
    failure message added)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(format_markdown(runs))
    columns, rows = summary_table(runs)
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "run_dir", "message"])
        for run, row in zip(runs, rows, strict=True):
            cells = ["" if v is None else v if is_number(v) else _format(v) for v in row]
            writer.writerow([*cells, str(run.run_dir), run.message])


def run_sweep(
    base: RunConfig,
    grid: Mapping[str, Sequence[Any]],
    out: str | Path,
    *,
    jobs: int = 1,
    evaluate: bool = False,
    eval_config: EvalConfig | None = None,
    names: Callable[[Mapping[str, Any]], str] = run_name,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> list[SweepRun]:
    """Train the Cartesian ``grid`` (dotted key -> values) over ``base`` into ``out``, ``jobs``
    runs at a time; see :func:`sweep_jobs` and :func:`run_jobs`."""
    return run_jobs(
        sweep_jobs(base, grid, names),
        out,
        parallel=jobs,
        evaluate=evaluate,
        eval_config=eval_config,
        dry_run=dry_run,
        echo=echo,
    )
