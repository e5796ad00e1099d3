"""``cvae eval RUN_DIR``: compute every metric of the registry (``registry.METRICS``), draw the
figures (``figures.FIGURES``) and write ``metrics.json``, every number with the protocol that
produced it."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cvae import tracking
from cvae.api import Run, dataset_sha256, load, read_data_info
from cvae.data import DataSplits
from cvae.data.base import IN_MEMORY
from cvae.errors import CvaeError
from cvae.evaluation.figures import FIGURES
from cvae.evaluation.options import EvalConfig
from cvae.evaluation.registry import (
    FEATURES,
    METRICS,
    EvalContext,
    FeatureName,
    Metric,
    Notes,
    measure,
    probe_feature,
)
from cvae.training.trainer import data_from_config


def evaluate(
    run_dir: str | Path,
    config: EvalConfig | None = None,
    *,
    data: DataSplits | None = None,
    progress: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate the last checkpoint of ``run_dir``; writes ``metrics.json`` and ``figures/``.

    ``config`` (default :class:`EvalConfig`), with ``options`` (its field names) replaced, says
    what to compute; it is checked before any work (one-line :class:`CvaeError`). Every metric
    scores the evaluation split (``config.split``: test, else val; or val) and carries its
    wall-clock ``seconds``; one the options turn off is left out, one whose needs are unmet
    (labels, a stochastic posterior, ...) has ``value`` None and an ``unavailable`` reason; both
    are named in ``notes``.

    ``data``: the splits to evaluate on (default: the run's configured dataset). A run trained
    on data handed to the Python API needs them again; when the run recorded the sha256 of its
    training split, other data is refused (from the config) or noted (given here).

    ``progress``: a bar over the stages (load, encode, each metric, each figure) on stderr,
    with one line per finished stage (name, seconds), when stderr is a terminal. Every stage's
    wall and CPU seconds are in ``metrics.json`` under ``timing``.

    ``metrics.json`` is rewritten (atomically) after every metric, with ``complete: false``
    until the end, so an interruption or a failure in the figures loses no number; a previous
    ``metrics.json`` is kept as ``metrics.previous.json``.
    """
    cfg = (config or EvalConfig()).replace(**options)
    t0 = time.perf_counter()
    bar = _Stages(2 + len(METRICS) + len(FIGURES), progress)
    with bar.stage("load"):
        run = load(run_dir, device=cfg.device)
        tracking.check_recorded(run.run_dir)  # a tracked run needs its backends: checked first
        splits, provenance, notes = _eval_data(run, data)
        if cfg.split == "val" and len(splits.val) == 0:
            raise CvaeError(f"{run.run_dir}: --split val, but the run has no val split")
        feature, source = choose_feature(run, cfg)
        ctx = EvalContext(run, cfg, splits, feature, Notes(notes))
    out = _MetricsFile(run.run_dir / "metrics.json", _header(ctx, provenance, source), ctx.notes)
    out.timing = bar.timing
    with bar.stage("encode"):  # the encodings every metric shares, once
        ctx.encode()
    for spec in METRICS:
        with bar.stage("/".join(spec.names)):
            for name, metric in measure(spec, ctx).items():
                out.put(name, metric)
    folder = run.run_dir / "figures"
    folder.mkdir(exist_ok=True)
    for figure in FIGURES:
        with bar.stage(f"figure {figure.draw.__name__.removeprefix('_')}"):
            if ctx.unmet(figure.needs) is None:
                out.figures.update(figure.draw(ctx, folder))
    bar.close()
    out.seconds = round(time.perf_counter() - t0, 2)
    out.write()
    figure_files = _figure_files(folder, out.figures)
    tracking.log_evaluation(run.run_dir, out.to_json(), figure_files, run.epoch)
    return out.to_json()


def _figure_files(folder: Path, figures: dict[str, Any]) -> list[Path]:
    """The files the figures record names: a name in ``folder`` or an embedding's ``path``."""
    names = [v if isinstance(v, str) else v.get("path") for v in figures.values()]
    return [folder / name for name in names if isinstance(name, str)]


class _Stages:
    """The stages of an evaluation: their wall and CPU seconds (``timing``, for
    ``metrics.json``) and their progress on stderr (terminals only): a bar over the stages and
    one line per finished stage with its seconds."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc="eval", leave=False,
                        disable=not (enabled and sys.stderr.isatty()))  # fmt: skip
        self.timing: dict[str, Any] = {
            "threads": torch.get_num_threads(),
            "cpu_seconds": "time.process_time(): all threads of the process",
            "stages": {},
        }

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.bar.set_description(f"eval: {name}")
        t0, cpu0 = time.perf_counter(), time.process_time()
        yield
        seconds = time.perf_counter() - t0
        self.timing["stages"][name] = {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(time.process_time() - cpu0, 3),
        }
        if not self.bar.disable:
            self.bar.write(f"eval: {name} ({seconds:.1f} s)", file=sys.stderr)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


def choose_feature(run: Run, cfg: EvalConfig) -> tuple[FeatureName, str]:
    """The probe feature and why: ``--feature``, else the method's spec (:func:`probe_feature`),
    else mu when the encoder exposes no h."""
    if cfg.feature != "auto":
        return cfg.feature, f"--feature {cfg.feature}"
    method = run.config.method
    wanted = probe_feature(method)
    if wanted == "h" and not hasattr(run.model.encoder, "features"):
        return "mu", f"method spec ({method}: h), but the {run.config.model.arch} encoder has no h"
    return wanted, f"method spec ({method}: {wanted})"


def _header(ctx: EvalContext, provenance: dict[str, Any], feature_source: str) -> dict[str, Any]:
    """``metrics.json`` before any metric: what was evaluated, on which data, how."""
    run, data, split = ctx.run, ctx.data, ctx.eval_split
    return {
        "run_dir": str(run.run_dir),
        "method": run.config.method,
        "preset": run.config.preset,
        "dataset": run.config.data.dataset,
        "checkpoint_epoch": run.epoch,
        "feature": FEATURES[ctx.feature],
        "feature_source": feature_source,
        "eval_split": {"name": ctx.eval_name, "n": len(split)},
        "data": {
            "train_split_n": len(data.train),
            "val_fraction": run.config.data.val_fraction,
            "split_seed": run.config.data.split_seed,
            "data_splits": data.info.get("data_splits"),
            "value_range": run.value_range,
            **provenance,
        },
        "seed": ctx.seed,
    }


class _MetricsFile:
    """``metrics.json``: the ``header``, then the metrics, figures and notes so far, rewritten
    atomically after every metric; ``complete`` stays false until ``seconds`` (the total) is
    set. A previous file is kept as ``metrics.previous.json`` at the first write."""

    def __init__(self, path: Path, header: dict[str, Any], notes: Notes) -> None:
        self.path, self.header, self.notes = path, header, notes
        self.metrics: dict[str, Metric] = {}
        self.figures: dict[str, Any] = {}
        self.timing: dict[str, Any] = {}
        self.seconds: float | None = None
        self._kept = False

    def put(self, name: str, metric: Metric) -> None:
        self.metrics[name] = metric
        self.write()

    def to_json(self) -> dict[str, Any]:
        return {
            **self.header,
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
            "figures": self.figures,
            "notes": self.notes.to_json(),
            "timing": self.timing,
            "seconds": self.seconds,
            "complete": self.seconds is not None,
        }

    def write(self) -> None:
        if not self._kept and self.path.is_file():
            os.replace(self.path, self.path.with_name("metrics.previous.json"))
        self._kept = True
        _write_json(self.to_json(), self.path)


def _eval_data(run: Run, data: DataSplits | None) -> tuple[DataSplits, dict[str, Any], list[str]]:
    """The splits to evaluate on, what they are (for metrics.json) and notes about them."""
    trained = read_data_info(run.run_dir)
    recorded = (trained.get("sha256") or {}).get("train")
    notes: list[str] = []
    given = data is not None
    if data is None:
        if run.config.data.dataset == IN_MEMORY:
            digest = f" (train sha256 {recorded[:12]})" if recorded else ""
            raise CvaeError(
                f"{run.run_dir} was trained on data handed to the Python API{digest}; evaluate "
                "it from Python with the same data: evaluate(run_dir, data=DataSplits(...))"
            )
        data = data_from_config(run.config)
        source = f"dataset '{run.config.data.dataset}' loaded from the run's config"
    else:
        source = "splits handed to evaluate(data=...)"
    provenance: dict[str, Any] = {"source": source}
    if recorded or given:
        digest = dataset_sha256(data.train)
        provenance["train_sha256"] = digest
        if recorded:
            provenance["train_sha256_matches_training"] = digest == recorded
        if recorded and digest != recorded:
            if not given:
                raise CvaeError(
                    f"{run.run_dir} was trained on other data than its config's dataset "
                    f"'{run.config.data.dataset}' now loads (train sha256 differs); evaluate "
                    "it from Python with the training data: evaluate(run_dir, data=...)"
                )
            notes.append(
                "the train split given differs from the run's training data (sha256): probes "
                "fit on other data than the model saw"
            )
    if data.test is None:
        notes.append(
            f"no test split: the evaluation split is val ({len(data.val)} images); see "
            "data.data_splits"
        )
    return data.in_memory(), provenance, notes


def _write_json(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
