"""``cvae compare RUN_DIR ...``: one table of every run's metrics beside the papers' numbers.

Reads each run's ``metrics.json`` (written by ``cvae eval``) and ``config.yaml`` and writes
``report.md`` and ``report.html`` (:mod:`cvae.experiments.report`), comparison first: the
headline table (a metric per row with its better direction and unit, a column per run or per
group of runs that differ only in their seed, the best value in bold, differences from the
first group with a 95% confidence interval where seeds exist), run details, the figures of one
kind side by side, paper sources, notes, and the protocols in a collapsed section.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.config import load_preset, load_yaml
from cvae.errors import ConfigError, CvaeError
from cvae.evaluation.registry import Better, metric_spec
from cvae.experiments import report as rp
from cvae.experiments.claims import welch_interval
from cvae.experiments.paper import PaperNumber
from cvae.experiments.papers import candidates, condition_mismatches
from cvae.experiments.results import (
    METRICS_FILE,
    combine,
    format_value,
    is_number,
    measure,
    read_metrics_json,
)
from cvae.experiments.verdict import DIFFERS, REPRODUCED, Verdict, judge


def compare(
    run_dirs: Sequence[Path],
    out: Path,
    *,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``out/report.md`` and ``out/report.html`` comparing ``run_dirs``; return the table.

    Returns ``{"title", "runs": [run details], "metrics": [names], "table": {metric: {run:
    cell}}, "info", "groups", "headline", "notes", "markdown", "html"}``; each cell holds
    ``value``, ``text`` (formatted), ``unavailable``, ``protocol``, ``paper``
    (:meth:`PaperNumber.to_dict` or None), ``verdict`` (``"reproduced within noise (...)"``,
    ``"differs (...)"``, ``"not comparable (reason)"`` or None when no paper reports the metric
    for that run) and its ``status`` (the verdict's first words). ``info`` maps each metric to
    its ``better`` (``"higher"``, ``"lower"`` or None) and ``unit``; ``groups`` lists the columns
    of the headline (``{"name", "runs", "seeds"}``: runs that differ only in their train seed);
    ``headline`` maps metric -> group -> :func:`headline_cell`.
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
    info = {m: metric_info(m, table[m]) for m in metrics}
    groups = seed_groups(runs)
    by_name = {r["name"]: r for r in runs}
    headline = {
        m: _headline_row([[by_name[n] for n in g["runs"]] for g in groups], groups, m, info[m])
        for m in metrics
    }
    result: dict[str, Any] = {
        "title": title or "Comparison of " + ", ".join(g["name"] for g in groups),
        "runs": [{k: v for k, v in r.items() if k not in _INTERNAL} for r in runs],
        "metrics": metrics,
        "table": table,
        "info": info,
        "groups": groups,
        "headline": headline,
        "notes": [
            *notes,
            *feature_notes(table, runs),
            *(f"{r['name']}: {n}" for r in runs for n in r["notes"]),
        ],
    }
    return result, _report(result, runs)


# --------------------------------------------------------------------------- metrics and groups

ARROWS = {"higher": "↑", "lower": "↓"}
UNIT_TEXT = {"accuracy": "%"}
"""How a unit is shown beside a metric's name (the others as they are)."""


def metric_info(name: str, cells: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``{"better", "unit"}`` of metric ``name``: its :class:`MetricSpec`'s, else (a metric this
    version does not compute) no direction and the unit its ``cells`` carry."""
    spec = metric_spec(name)
    unit = spec.unit if spec is not None and spec.unit else ""
    if not unit:
        unit = next((c["unit"] for c in (cells or {}).values() if c.get("unit")), "")
    return {"better": None if spec is None else spec.better, "unit": unit}


def metric_label(metric: str, info: Mapping[str, Any]) -> rp.Cell:
    """``logreg_paper ↑`` above its unit (``%``, ``nats``, ...)."""
    arrow = ARROWS.get(info["better"] or "", "")
    spans = [rp.Span(f"{metric} {arrow}".strip())]
    if info["unit"]:
        spans.append(rp.Span(UNIT_TEXT.get(info["unit"], info["unit"]), "muted"))
    return tuple(spans)


_SEED = re.compile(r"(^|[,_.-])(train\.)?seed[=_-]?\d+")


def seed_groups(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Runs that differ only in their train seed, in order: ``[{"name", "runs", "seeds"}]``.

    Two runs share a group when their configs (less ``train.seed``), checkpoint epochs, eval
    splits and features are equal and their seeds differ. A group of one run is named after it;
    a larger group after its first run without the seed (``cvae,train.seed=1`` -> ``cvae``),
    else ``<first run> +<n>``; ``(n seeds)`` is appended."""
    keyed: list[tuple[str, dict[str, Any]]] = []
    for run in runs:
        config = json.loads(json.dumps(run["config"], default=str))
        config.get("train", {}).pop("seed", None)
        key = json.dumps(
            [config, run["epochs_trained"], run["eval_split"], run["feature"]], sort_keys=True
        )
        seed = run["train_seed"]
        group = next((g for k, g in keyed if k == key and seed not in g["seeds"]), None)
        if group is None:
            keyed.append((key, {"name": run["name"], "runs": [], "seeds": []}))
            group = keyed[-1][1]
        group["runs"].append(run["name"])
        group["seeds"].append(seed)
    groups = [g for _, g in keyed]
    for group in groups:
        if len(group["runs"]) > 1:
            bare = _SEED.sub("", group["runs"][0]).strip(",_.-")
            taken = {n for g in groups for n in g["runs"]} | {g["name"] for g in groups}
            base = (
                bare
                if bare and bare not in taken
                else f"{group['runs'][0]} +{len(group['runs']) - 1}"
            )
            group["name"] = f"{base} ({len(group['runs'])} seeds)"
    return groups


def headline_cell(values: Sequence[float], unit: str) -> dict[str, Any]:
    """One group's values of one metric: ``{"n", "mean", "std", "text"}`` (``"92.50% ± 0.30%
    (n=3)"``; one value as it is; ``std`` the sample standard deviation, None below two)."""
    n = len(values)
    mean = statistics.fmean(values) if n else None
    std = statistics.stdev(values) if n > 1 else None
    text = format_value(mean, unit)
    if std is not None:
        text = f"{text} ± {format_value(std, unit)} (n={n})"
    return {"n": n, "mean": mean, "std": std, "text": text}


def best_groups(means: Mapping[str, Any], better: Better | None) -> set[str]:
    """The groups whose mean is the best (ties: all of them); none without a direction, with
    fewer than two values to compare, or when every value is the same."""
    known = {g: m for g, m in means.items() if is_number(m) and math.isfinite(m)}
    if better is None or len(set(known.values())) < 2:
        return set()
    top = max(known.values()) if better == "higher" else min(known.values())
    return {g for g, m in known.items() if m == top}


def difference(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> dict[str, float] | None:
    """``mean(b) - mean(a)`` and its ``level`` confidence interval (Welch's t: unequal
    variances, Welch-Satterthwaite degrees of freedom); None unless both have two values."""
    if len(a) < 2 or len(b) < 2:
        return None
    diff, interval, _, _ = welch_interval(b, a, confidence=level)
    return {"diff": diff, "low": interval.low, "high": interval.high, "level": level}


def _values(runs: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    out = []
    for run in runs:
        raw = run["metrics"].get(metric)
        value: Any = raw.get("value") if isinstance(raw, Mapping) else raw
        if is_number(value) and math.isfinite(value):
            out.append(float(value))
    return out


def _headline_row(
    members: Sequence[Sequence[Mapping[str, Any]]],
    groups: Sequence[Mapping[str, Any]],
    metric: str,
    info: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """metric -> group -> cell: :func:`headline_cell`, ``best``, ``diff`` (from the first group,
    :func:`difference`), why a value is missing (``unavailable``) and the paper verdict."""
    row: dict[str, dict[str, Any]] = {}
    baseline = _values(members[0], metric)
    for group, runs in zip(groups, members, strict=True):
        present = [r for r in runs if metric in r["metrics"]]
        if not present:
            continue
        values = _values(present, metric)
        cell = headline_cell(values, info["unit"])
        cell["unavailable"] = None if values else _unavailable(present[0], metric)
        cell["diff"] = None if group is groups[0] else difference(baseline, values)
        entry, verdict = _judged(present, metric)
        cell["paper_text"] = None if entry is None else _paper_text(entry)
        cell["verdict"] = None if verdict is None else verdict.text
        cell["status"] = None if verdict is None else verdict.status
        row[group["name"]] = cell
    best = best_groups({g: c["mean"] for g, c in row.items()}, info["better"])
    for name, cell in row.items():
        cell["best"] = name in best
    return row


def _unavailable(run: Mapping[str, Any], metric: str) -> str | None:
    raw = run["metrics"][metric]
    return raw.get("unavailable") if isinstance(raw, Mapping) else None


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


def _judged(
    runs: Sequence[Mapping[str, Any]], metric: str
) -> tuple[PaperNumber | None, Verdict | None]:
    """The paper number for ``metric`` of ``runs`` (seeds of one configuration: the first
    run's config decides) and the verdict on their values; ``(None, None)`` without one."""
    config = runs[0]["config"]
    found = candidates(config, metric)
    matching = [e for e in found if not condition_mismatches(config, e)]
    entry = next(iter(matching or found), None)
    if entry is None:
        return None, None
    # no reasons: the cell shows why a value is missing
    ours = combine([measure(r["data"], metric) for r in runs], reasons=False)
    verdict = judge(
        entry,
        ours,
        target_epochs=runs[0]["preset_epochs"],
        fraction=config.get("train", {}).get("epoch_fraction", 1.0),
        mismatches=condition_mismatches(config, entry),
    )
    return entry, verdict


def _cell(run: dict[str, Any], metric: str) -> dict[str, Any]:
    entry, verdict = _judged([run], metric)
    raw = run["metrics"][metric]
    m = raw if isinstance(raw, Mapping) else {"value": raw}
    protocol = m.get("protocol")
    unit = entry.unit if entry is not None else measure(run["data"], metric).unit
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


def _value_span(text: str, best: bool) -> rp.Span:
    return rp.Span(text, "best") if best else rp.Span(text)


def _verdict_spans(cell: Mapping[str, Any]) -> list[rp.Span]:
    spans = []
    if cell["paper_text"]:
        spans.append(rp.Span(cell["paper_text"], "muted"))
    if cell["verdict"]:
        spans.append(verdict_span(cell["verdict"], cell["status"]))
    return spans


def _cell_spans(cell: Mapping[str, Any], best: bool = False) -> rp.Cell:
    value = cell["text"]
    if cell["value"] is None and cell["unavailable"]:
        value = f"n/a: {cell['unavailable']}"
    return (_value_span(value, best), *_verdict_spans(cell))


def difference_span(diff: Mapping[str, float], unit: str, better: Better | None) -> rp.Span:
    """``Δ +1.20% [95% CI -0.30%, +2.70%]``: green when the interval excludes 0 on the better
    side, red on the worse side, plain without a direction, muted when it includes 0."""
    low, high = diff["low"], diff["high"]
    text = (
        f"Δ {format_value(diff['diff'], unit, signed=True)} [{round(100 * diff['level'])}% CI "
        f"{format_value(low, unit, signed=True)}, {format_value(high, unit, signed=True)}]"
    )
    if low <= 0 <= high:
        return rp.Span(text, "muted")
    if better is None:
        return rp.Span(text)
    return rp.Span(text, "ok" if (low > 0) == (better == "higher") else "bad")


def _headline_spans(cell: Mapping[str, Any], info: Mapping[str, Any]) -> rp.Cell:
    value = cell["text"]
    if cell["mean"] is None:
        value = f"n/a: {cell['unavailable']}" if cell["unavailable"] else "n/a"
    spans = [_value_span(value, cell["best"])]
    if cell["diff"] is not None:
        spans.append(difference_span(cell["diff"], info["unit"], info["better"]))
    return (*spans, *_verdict_spans(cell))


# --------------------------------------------------------------------------- report


def metrics_table(result: Mapping[str, Any]) -> rp.Table:
    """Rows = metrics (name, direction, unit), columns = runs; the best value in bold."""
    names = [r["name"] for r in result["runs"]]
    rows = []
    for metric, cells in result["table"].items():
        info = result["info"][metric]
        best = best_groups({n: c["value"] for n, c in cells.items()}, info["better"])
        row = (_cell_spans(cells[n], n in best) if n in cells else rp.inline("—") for n in names)
        rows.append((metric_label(metric, info), *row))
    return rp.Table(("metric", *names), tuple(rows))


def headline_table(result: Mapping[str, Any]) -> rp.Table:
    """Rows = metrics (name, direction, unit), columns = the seed groups (mean ± std over
    seeds, the difference from the first group with its confidence interval); the best value
    in bold."""
    names = [g["name"] for g in result["groups"]]
    rows = []
    for metric, cells in result["headline"].items():
        info = result["info"][metric]
        row = (_headline_spans(cells[n], info) if n in cells else rp.inline("—") for n in names)
        rows.append((metric_label(metric, info), *row))
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


def _figure_sections(runs: Sequence[Mapping[str, Any]]) -> list[rp.Section]:
    """ "Figures", then one section per kind of figure with every run's side by side."""
    kinds: dict[str, list[rp.Figure]] = {}
    bare = []
    for run in runs:
        figures = _figures(run)
        bare += [] if figures else [run["name"]]
        for figure in figures:
            kinds.setdefault(figure.caption, []).append(rp.Figure(run["name"], figure.path))
    text: rp.Inline = ()
    if bare:
        text = rp.inline(
            f"No figures for {', '.join(bare)} (run ",
            rp.Span("cvae eval", "code"),
            " to draw them).",
        )
    return [
        rp.Section("Figures", text=text),
        *(rp.Section(kind, 3, figures=figures) for kind, figures in kinds.items()),
    ]


def _legend(result: Mapping[str, Any]) -> rp.Inline:
    """How to read the headline table."""
    groups = result["groups"]
    text = "↑: higher is better, ↓: lower is better; bold: the best value of a row."
    if any(len(g["runs"]) > 1 for g in groups):
        text += (
            " A column per configuration, its runs differing only in their train seed: mean ± "
            f"sample std over seeds; Δ: the difference from {groups[0]['name']} with its 95% "
            "confidence interval (Welch's t), green or red when it excludes 0."
        )
    return rp.inline(text)


def _report(result: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> rp.Report:
    run_rows = [[r["name"], *(str(f(r)) for _, f in RUN_COLUMNS)] for r in result["runs"]]
    seeded = any(len(g["runs"]) > 1 for g in result["groups"])
    sections = [
        rp.Section(text=_legend(result), tables=[headline_table(result)]),
        rp.Section(
            "Runs", tables=[rp.Table.of_text(["run", *(c for c, _ in RUN_COLUMNS)], run_rows)]
        ),
    ]
    if seeded:
        sections.append(rp.Section("Every value", tables=[metrics_table(result)]))
    sections += _figure_sections(runs)
    sources = _sources(result)
    if sources:
        sections.append(rp.Section("Paper numbers", items=[rp.inline(s) for s in sources]))
    if result["notes"]:
        sections.append(rp.Section("Notes", items=[rp.inline(n) for n in result["notes"]]))
    protocols = [
        rp.inline(f"{metric}, {who}: ", rp.Span(text, "code"))
        for metric, groups in _protocols(result).items()
        for who, text in groups
    ]
    sections.append(rp.Section("Protocols", items=protocols, collapsed=True))
    return rp.Report(result["title"], sections=sections)
