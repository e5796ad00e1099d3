"""``cvae compare RUN_DIR ...``: one table of every run's metrics beside the papers' numbers.

Reads each run's ``metrics.json`` (written by ``cvae eval``) and ``config.yaml`` and writes
``report.md`` and ``report.html`` (:mod:`cvae.experiments.report`): the table, run details, paper
sources, protocols, notes and every run's figures.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.config import load_preset, load_yaml
from cvae.errors import ConfigError, CvaeError
from cvae.experiments import report as rp
from cvae.experiments.paper import PaperNumber
from cvae.experiments.papers import candidates, condition_mismatches
from cvae.experiments.results import METRICS_FILE, format_value, measure, read_metrics_json
from cvae.experiments.verdict import DIFFERS, REPRODUCED, judge


def compare(
    run_dirs: Sequence[Path],
    out: Path,
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``out/report.md`` and ``out/report.html`` comparing ``run_dirs``; return the table.

    Returns ``{"title", "runs": [run details], "metrics": [names], "table": {metric: {run:
    cell}}, "notes", "markdown", "html"}``; each cell holds ``value``, ``text`` (formatted),
    ``unavailable``, ``protocol``, ``paper`` (:meth:`PaperNumber.to_dict` or None), ``verdict``
    (``"reproduced within noise (...)"``, ``"differs (...)"``, ``"not comparable (reason)"`` or
    None when no paper reports the metric for that run) and its ``status`` (the verdict's first
    words).
    """
    result, report = comparison(run_dirs, title=title, notes=notes)
    md_path, html_path = rp.write_report(report, Path(out))
    result["markdown"], result["html"] = str(md_path), str(html_path)
    return result


def comparison(
    run_dirs: Sequence[Path], *, title: str | None = None, notes: Sequence[str] = ()
) -> tuple[dict[str, Any], rp.Report]:
    """The table :func:`compare` returns (without file names) and its :class:`Report`."""
    if not run_dirs:
        raise CvaeError("compare needs at least one run directory")
    runs = [_load_run(Path(d)) for d in run_dirs]
    _unique_names(runs)
    metrics: list[str] = []
    for run in runs:
        metrics += [m for m in run["metrics"] if m not in metrics]
    table = {m: {r["name"]: _cell(r, m) for r in runs if m in r["metrics"]} for m in metrics}
    result: dict[str, Any] = {
        "title": title or "Comparison of " + ", ".join(r["name"] for r in runs),
        "runs": [{k: v for k, v in r.items() if k not in _INTERNAL} for r in runs],
        "metrics": metrics,
        "table": table,
        "notes": [
            *notes,
            *feature_notes(table, runs),
            *(f"{r['name']}: {n}" for r in runs for n in r["notes"]),
        ],
    }
    return result, _report(result, runs)


def feature_notes(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], runs: Sequence[Mapping[str, Any]]
) -> list[str]:
    """One line per group of metrics whose runs were probed on different features (each probe's
    ``protocol.feature_name``), naming each run's feature and why it was chosen."""
    source = {r["name"]: r["feature_source"] for r in runs}
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for metric, cells in table.items():
        used = tuple(
            (run, str(cell["protocol"]["feature_name"]))
            for run, cell in cells.items()
            if "feature_name" in cell["protocol"]
        )
        if len({feature for _, feature in used}) > 1:
            groups.setdefault(used, []).append(metric)

    def who(run: str, feature: str) -> str:
        return f"{run} {feature}" + (f" ({source[run]})" if source[run] else "")

    return [
        f"{', '.join(metrics)}: the runs were probed on different features: "
        + ", ".join(who(*pair) for pair in used)
        for used, metrics in groups.items()
    ]


# --------------------------------------------------------------------------- loading

_INTERNAL = ("data", "metrics", "figures")
"""Run fields kept out of the result's ``runs``."""


def _load_run(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise CvaeError(f"{run_dir}: run directory not found")
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise CvaeError(f"{run_dir}: no {METRICS_FILE}; run `cvae eval {run_dir}` first")
    data = read_metrics_json(metrics_path)
    config = load_yaml(run_dir / "config.yaml")
    preset = data.get("preset") or config.get("preset")
    config["preset"] = preset
    preset_epochs = None
    if preset:
        try:
            preset_epochs = load_preset(preset).train.epochs
        except ConfigError:  # a preset this version does not ship
            preset_epochs = None
    train = config.get("train", {})
    figures = data.get("figures", {})
    return {
        "name": run_dir.name,
        "run_dir": str(run_dir),
        "method": data.get("method", config.get("method")),
        "preset": preset,
        "dataset": data.get("dataset", config.get("data", {}).get("dataset")),
        "epochs_trained": data.get("checkpoint_epoch"),
        "epochs_configured": train.get("epochs"),
        "preset_epochs": preset_epochs,
        "train_seed": train.get("seed"),
        "eval_seed": data.get("seed"),
        "eval_split": data.get("eval_split"),
        "feature": data.get("feature"),
        "feature_source": data.get("feature_source"),
        "config": config,
        "data": data,
        "metrics": data.get("metrics", {}),
        "figures": figures if isinstance(figures, Mapping) else {},
        "notes": list(data.get("notes", [])),
    }


def _unique_names(runs: list[dict[str, Any]]) -> None:
    """Disambiguate runs with the same folder name by their parent folder, then a counter."""
    counts = Counter(r["name"] for r in runs)
    for run in runs:
        if counts[run["name"]] > 1:
            run["name"] = f"{Path(run['run_dir']).parent.name}/{run['name']}"
    seen: Counter[str] = Counter()
    for run in runs:
        seen[run["name"]] += 1
        if seen[run["name"]] > 1:
            run["name"] += f" ({seen[run['name']]})"


# --------------------------------------------------------------------------- cells


def _cell(run: dict[str, Any], metric: str) -> dict[str, Any]:
    ours = measure(run["data"], metric)
    found = candidates(run["config"], metric)
    matching = [e for e in found if not condition_mismatches(run["config"], e)]
    entry = next(iter(matching or found), None)
    verdict = None
    if entry is not None:
        ours.reason = None  # the cell shows why a value is missing
        fraction = run["config"].get("train", {}).get("epoch_fraction", 1.0)
        verdict = judge(
            entry,
            ours,
            target_epochs=run["preset_epochs"],
            fraction=fraction,
            mismatches=condition_mismatches(run["config"], entry),
        )
    raw = run["metrics"][metric]
    m = raw if isinstance(raw, Mapping) else {"value": raw}
    protocol = m.get("protocol")
    unit = entry.unit if entry is not None else ours.unit
    return {
        "value": m.get("value"),
        "text": format_value(m.get("value"), unit),
        "unit": unit,
        "unavailable": m.get("unavailable"),
        "protocol": protocol if isinstance(protocol, Mapping) else {},
        "paper": None if entry is None else entry.to_dict(),
        "paper_text": None if entry is None else _paper_text(entry),
        "verdict": None if verdict is None else verdict.text,
        "status": None if verdict is None else verdict.status,
    }


def _paper_text(entry: PaperNumber) -> str:
    return f"paper {entry.text} ({entry.paper.split(' (')[0]} {entry.table})"


def verdict_span(text: str, status: str) -> rp.Span:
    """A verdict coloured by its status."""
    style: rp.Style = "ok" if status == REPRODUCED else "bad" if status == DIFFERS else "warn"
    return rp.Span(text, style)


def _cell_spans(cell: Mapping[str, Any]) -> rp.Cell:
    value = cell["text"]
    if cell["value"] is None and cell["unavailable"]:
        value = f"n/a: {cell['unavailable']}"
    spans = [rp.Span(value)]
    if cell["paper_text"]:
        spans.append(rp.Span(cell["paper_text"], "muted"))
    if cell["verdict"]:
        spans.append(verdict_span(cell["verdict"], cell["status"]))
    return tuple(spans)


# --------------------------------------------------------------------------- report


def metrics_table(result: Mapping[str, Any]) -> rp.Table:
    """Rows = metrics, columns = runs."""
    names = [r["name"] for r in result["runs"]]
    rows = [
        (
            rp.inline(metric),
            *(_cell_spans(cells[n]) if n in cells else rp.inline("—") for n in names),
        )
        for metric, cells in result["table"].items()
    ]
    return rp.Table(("metric", *names), tuple(rows))


def markdown_table(result: Mapping[str, Any]) -> str:
    """The metrics table (rows = metrics, columns = runs) as Markdown."""
    return rp.markdown_table(metrics_table(result))


def _epochs(run: Mapping[str, Any]) -> str:
    target = run["preset_epochs"] if run["preset_epochs"] is not None else "no preset"
    return f"{run['epochs_trained']} / {target}"


RUN_COLUMNS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("method", lambda r: r["method"]),
    ("preset", lambda r: r["preset"] or "none"),
    ("dataset", lambda r: r["dataset"]),
    ("epochs (trained / preset)", _epochs),
    ("train seed", lambda r: r["train_seed"]),
    ("eval seed", lambda r: r["eval_seed"]),
    ("eval split", lambda r: (r["eval_split"] or {}).get("name", "?")),
    ("feature", lambda r: r["feature"]),
)


def _compact(value: Any) -> Any:
    """Protocol for display: long lists shortened to their length."""
    if isinstance(value, Mapping):
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, list) and len(value) > 8:
        return f"[{len(value)} values]"
    return value


def _protocols(result: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """metric -> [(runs label, protocol JSON)]; runs with identical protocols share one line."""
    out: dict[str, list[tuple[str, str]]] = {}
    for metric, cells in result["table"].items():
        groups: dict[str, list[str]] = {}
        for run, cell in cells.items():
            text = json.dumps(_compact(cell["protocol"]), sort_keys=True)
            groups.setdefault(text, []).append(run)
        out[metric] = [(", ".join(runs), text) for text, runs in groups.items()]
    return out


def _sources(result: Mapping[str, Any]) -> list[str]:
    out = []
    for metric, cells in result["table"].items():
        for run, cell in cells.items():
            p = cell["paper"]
            if p is not None:
                std = "" if p["std"] is None else f", std over {p['runs']} runs"
                cond = ", ".join(f"{k}={v}" for k, v in p["conditions"].items())
                out.append(f"{run} / {metric}: {p['source']}: {p['text']}{std} ({cond})")
    return out


def _figures(run: Mapping[str, Any]) -> list[rp.Figure]:
    """Every PNG in the run's figures/ (metrics.json order first), captioned by its key."""
    folder = Path(run["run_dir"]) / "figures"
    names: dict[str, str] = {}
    for key, ref in run["figures"].items():
        path = ref.get("path") if isinstance(ref, Mapping) else ref
        if isinstance(path, str):
            names.setdefault(Path(path).name, key)
    files = [folder / n for n in names if (folder / n).is_file()]
    files += sorted(p for p in folder.glob("*.png") if p.name not in names)
    return [rp.Figure(names.get(p.name, p.stem), p) for p in files]


def _report(result: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> rp.Report:
    run_rows = [[r["name"], *(str(f(r)) for _, f in RUN_COLUMNS)] for r in result["runs"]]
    sections = [
        rp.Section(tables=[metrics_table(result)]),
        rp.Section(
            "Runs", tables=[rp.Table.of_text(["run", *(c for c, _ in RUN_COLUMNS)], run_rows)]
        ),
    ]
    sources = _sources(result)
    if sources:
        sections.append(rp.Section("Paper numbers", items=[rp.inline(s) for s in sources]))
    sections.append(rp.Section("Protocols"))
    sections += [
        rp.Section(
            metric, 3, items=[rp.inline(f"{who}: ", rp.Span(text, "code")) for who, text in groups]
        )
        for metric, groups in _protocols(result).items()
    ]
    if result["notes"]:
        sections.append(rp.Section("Notes", items=[rp.inline(n) for n in result["notes"]]))
    sections.append(rp.Section("Figures"))
    for run in runs:
        figures = _figures(run)
        missing = rp.inline("no figures (run ", rp.Span("cvae eval", "code"), " to draw them)")
        sections.append(
            rp.Section(run["name"], 3, text=() if figures else missing, figures=figures)
        )
    return rp.Report(result["title"], sections=sections)
