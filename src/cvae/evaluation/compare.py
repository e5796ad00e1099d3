"""``cvae compare RUN_DIR ...``: one table of every run's metrics beside the papers' numbers.

Reads each run's ``metrics.json`` (written by ``cvae eval``) and ``config.yaml`` and writes
``report.md`` (table, run details, paper sources, protocols) and ``report.html`` (the same plus
every run's figures embedded as base64 PNG: one self-contained file).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.config import load_preset, load_yaml
from cvae.errors import ConfigError, CvaeError
from cvae.evaluation.paper_numbers import PaperNumber, candidates, condition_mismatches

REPRODUCED = "reproduced within noise"
DIFFERS = "differs"
NOISE_SIGMAS = 2.0
"""A value reproduces the paper when ``|ours - paper| <= 2 * sqrt(std_paper^2 + se_ours^2)``."""


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
    ``unavailable``, ``protocol``, ``paper`` (:meth:`PaperNumber.to_dict` or None) and ``verdict``
    (``"reproduced within noise (...)"``, ``"differs (...)"``, ``"not comparable (reason)"`` or
    None when no paper reports the metric for that run).
    """
    if not run_dirs:
        raise CvaeError("compare needs at least one run directory")
    runs = [_load_run(Path(d)) for d in run_dirs]
    _unique_names(runs)
    metrics: list[str] = []
    for run in runs:
        metrics += [m for m in run["metrics"] if m not in metrics]
    table = {m: {r["name"]: _cell(r, m) for r in runs if m in r["metrics"]} for m in metrics}
    all_notes = list(notes) + [f"{r['name']}: {n}" for r in runs for n in r["notes"]]
    result: dict[str, Any] = {
        "title": title or "Comparison of " + ", ".join(r["name"] for r in runs),
        "runs": [{k: v for k, v in r.items() if k not in ("metrics", "figures")} for r in runs],
        "metrics": metrics,
        "table": table,
        "notes": all_notes,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(_markdown(result))
    html_path.write_text(_html(result, runs))
    result["markdown"], result["html"] = str(md_path), str(html_path)
    return result


# --------------------------------------------------------------------------- loading


def _load_run(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise CvaeError(f"{run_dir}: run directory not found")
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise CvaeError(f"{run_dir}: no metrics.json; run `cvae eval {run_dir}` first")
    try:
        data = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as err:
        raise CvaeError(f"{metrics_path}: invalid JSON ({err.msg}); rerun `cvae eval`") from None
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
        "config": config,
        "metrics": data.get("metrics", {}),
        "figures": data.get("figures", {}),
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


# --------------------------------------------------------------------------- cells and verdicts


def _cell(run: dict[str, Any], metric: str) -> dict[str, Any]:
    m = run["metrics"][metric]
    m = m if isinstance(m, Mapping) else {"value": m}
    value = m.get("value")
    protocol = m.get("protocol", {})
    found = candidates(run["config"], metric)
    matching = [e for e in found if not condition_mismatches(run["config"], e)]
    entry = (matching or found or [None])[0]
    verdict = None
    if entry is not None:
        mismatch = condition_mismatches(run["config"], entry)
        verdict = (
            f"not comparable (config: {'; '.join(mismatch)})"
            if mismatch
            else _verdict(entry, value, protocol, run)
        )
    unit = entry.unit if entry is not None else m.get("unit", _unit(protocol))
    return {
        "value": value,
        "text": _fmt(value, unit),
        "unit": unit,
        "unavailable": m.get("unavailable"),
        "protocol": protocol,
        "paper": None if entry is None else entry.to_dict(),
        "paper_text": None if entry is None else _fmt_paper(entry),
        "verdict": verdict,
    }


def _unit(protocol: Mapping[str, Any]) -> str:
    return "accuracy" if protocol.get("metric") == "top-1 accuracy" else ""


def _verdict(
    entry: PaperNumber, value: Any, protocol: Mapping[str, Any], run: Mapping[str, Any]
) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "not comparable (no value)"
    trained, target = run["epochs_trained"], run["preset_epochs"]
    if trained is not None and target is not None and trained < target:
        return f"not comparable (budget: {trained} of {target} epochs)"
    if entry.caveat:
        return f"not comparable ({entry.caveat})"
    for key, wanted in entry.protocol.items():
        if protocol.get(key) != wanted:
            return f"not comparable (protocol: paper {key}={wanted}, ours {protocol.get(key)})"
    se = 0.0
    n = protocol.get("n_test")
    if entry.unit == "accuracy" and isinstance(n, int) and n > 0:
        se = math.sqrt(max(value * (1 - value), 0.0) / n)  # binomial standard error
    tol = max(NOISE_SIGMAS * math.hypot(entry.std or 0.0, se), entry.tolerance)
    diff = value - entry.value
    detail = f"{_fmt(diff, entry.unit, signed=True)}, tolerance {_fmt(tol, entry.unit)}"
    return f"{REPRODUCED if abs(diff) <= tol else DIFFERS} ({detail})"


def _fmt(value: Any, unit: str = "", signed: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    sign = "+" if signed else ""
    if unit == "accuracy":
        return f"{100 * value:{sign}.2f}%"
    return f"{value:{sign}.4g}"


def _fmt_paper(entry: PaperNumber) -> str:
    return f"paper {entry.text} ({entry.paper.split(' (')[0]} {entry.table})"


def _cell_line(cell: Mapping[str, Any]) -> str:
    """One-line cell text shared by Markdown and HTML."""
    parts = [cell["text"]]
    if cell["value"] is None and cell["unavailable"]:
        parts = [f"n/a: {cell['unavailable']}"]
    if cell["paper_text"]:
        parts.append(cell["paper_text"])
    if cell["verdict"]:
        parts.append(cell["verdict"])
    return " · ".join(parts)


# --------------------------------------------------------------------------- rendering


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


def _epochs(run: Mapping[str, Any]) -> str:
    target = run["preset_epochs"] if run["preset_epochs"] is not None else "no preset"
    return f"{run['epochs_trained']} / {target}"


RUN_COLUMNS = (
    ("method", lambda r: r["method"]),
    ("preset", lambda r: r["preset"] or "none"),
    ("dataset", lambda r: r["dataset"]),
    ("epochs (trained / preset)", _epochs),
    ("train seed", lambda r: r["train_seed"]),
    ("eval seed", lambda r: r["eval_seed"]),
    ("eval split", lambda r: (r["eval_split"] or {}).get("name", "?")),
    ("feature", lambda r: r["feature"]),
)


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(result: Mapping[str, Any]) -> str:
    """The metrics table (rows = metrics, columns = runs) as Markdown."""
    names = [r["name"] for r in result["runs"]]
    lines = [
        "| metric | " + " | ".join(_md_escape(n) for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for metric, cells in result["table"].items():
        row = [_md_escape(_cell_line(cells[n])) if n in cells else "—" for n in names]
        lines.append(f"| {metric} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _markdown(result: Mapping[str, Any]) -> str:
    lines = [f"# {result['title']}", "", markdown_table(result), "", "## Runs", ""]
    lines += [
        "| run | " + " | ".join(c for c, _ in RUN_COLUMNS) + " |",
        "|---" * (len(RUN_COLUMNS) + 1) + "|",
    ]
    for r in result["runs"]:
        values = " | ".join(_md_escape(f(r)) for _, f in RUN_COLUMNS)
        lines.append(f"| {_md_escape(r['name'])} | {values} |")
    sources = _sources(result)
    if sources:
        lines += ["", "## Paper numbers", ""] + [f"- {s}" for s in sources]
    lines += ["", "## Protocols", ""]
    for metric, groups in _protocols(result).items():
        lines += [f"### {metric}", ""] + [f"- {runs}: `{text}`" for runs, text in groups] + [""]
    if result["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)


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


CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1400px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f0f0f0}.paper{color:#555;font-size:12px}.ok{color:#176b1c}.bad{color:#a11}
.nc{color:#8a6d00}code{font-size:12px;word-break:break-all}
figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
figure img{max-width:640px;border:1px solid #ddd}figcaption{font-size:13px;color:#444}
"""


def _verdict_class(verdict: str) -> str:
    if verdict.startswith(REPRODUCED):
        return "ok"
    return "bad" if verdict.startswith(DIFFERS) else "nc"


def _html_cell(cell: Mapping[str, Any]) -> str:
    e = html.escape
    value = cell["text"]
    if cell["value"] is None and cell["unavailable"]:
        value = f"n/a: {cell['unavailable']}"
    parts = [e(value)]
    if cell["paper_text"]:
        parts.append(f"<span class=paper>{e(cell['paper_text'])}</span>")
    if cell["verdict"]:
        parts.append(f"<span class={_verdict_class(cell['verdict'])}>{e(cell['verdict'])}</span>")
    return "<br>".join(parts)


def _figures(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(caption, base64 PNG)]`` for every PNG in the run's figures/ (metrics.json order)."""
    folder = Path(run["run_dir"]) / "figures"
    names: dict[str, str] = {}
    for key, ref in run["figures"].items():
        path = ref.get("path") if isinstance(ref, Mapping) else ref
        if isinstance(path, str):
            names.setdefault(Path(path).name, key)
    files = [folder / n for n in names if (folder / n).is_file()]
    files += sorted(p for p in folder.glob("*.png") if p.name not in names)
    return [
        (names.get(p.name, p.stem), base64.b64encode(p.read_bytes()).decode("ascii")) for p in files
    ]


def _html(result: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> str:
    e = html.escape
    names = [r["name"] for r in result["runs"]]
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(result['title'])}</title><style>{CSS}</style></head><body>",
        f"<h1>{e(result['title'])}</h1>",
        "<table><tr><th>metric</th>" + "".join(f"<th>{e(n)}</th>" for n in names) + "</tr>",
    ]
    for metric, cells in result["table"].items():
        tds = "".join(f"<td>{_html_cell(cells[n]) if n in cells else '—'}</td>" for n in names)
        out.append(f"<tr><th>{e(metric)}</th>{tds}</tr>")
    out.append("</table><h2>Runs</h2><table><tr><th>run</th>")
    out.append("".join(f"<th>{e(c)}</th>" for c, _ in RUN_COLUMNS) + "</tr>")
    for r in result["runs"]:
        tds = "".join(f"<td>{e(str(f(r)))}</td>" for _, f in RUN_COLUMNS)
        out.append(f"<tr><td>{e(r['name'])}</td>{tds}</tr>")
    out.append("</table>")
    sources = _sources(result)
    if sources:
        out.append("<h2>Paper numbers</h2><ul>")
        out += [f"<li>{e(s)}</li>" for s in sources]
        out.append("</ul>")
    out.append("<h2>Protocols</h2>")
    for metric, groups in _protocols(result).items():
        out.append(f"<h3>{e(metric)}</h3><ul>")
        out += [f"<li>{e(runs)}: <code>{e(text)}</code></li>" for runs, text in groups]
        out.append("</ul>")
    if result["notes"]:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in result["notes"]))
        out.append("</ul>")
    out.append("<h2>Figures</h2>")
    for run in runs:
        out.append(f"<h3>{e(run['name'])}</h3>")
        figures = _figures(run)
        if not figures:
            out.append("<p>no figures (run <code>cvae eval</code> to draw them)</p>")
        for caption, data in figures:
            out.append(
                f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(run['name'])}: {e(caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
