"""One report model and its one renderer: a :class:`Report` (title, notes, sections of bullet
items, tables and figures) written as Markdown and as a self-contained HTML page (inline CSS,
figures embedded as base64 PNG, no scripts). ``cvae compare`` and ``cvae reproduce`` build a
:class:`Report`; neither writes Markdown or HTML itself.

The HTML page never grows wider than the window: every table scrolls inside its own box, the
figures of a section sit side by side and wrap, and a ``collapsed`` section (e.g. protocols)
is a closed ``<details>``."""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Style = Literal["", "code", "muted", "ok", "bad", "warn", "best"]


@dataclass(frozen=True)
class Span:
    """A piece of text and how it is shown: ``code`` (monospace), ``muted`` (a source),
    ``ok`` / ``bad`` / ``warn`` (a verdict), ``best`` (the best value of a row: bold)."""

    text: str
    style: Style = ""


Inline = tuple[Span, ...]
"""Spans shown side by side (a bullet item, a paragraph)."""
Cell = tuple[Span, ...]
"""A table cell: its spans are stacked lines (`` · `` between them in Markdown)."""


def inline(*parts: str | Span) -> Inline:
    """``inline("runs: ", Span("{...}", "code"))``: plain strings become plain spans."""
    return tuple(p if isinstance(p, Span) else Span(p) for p in parts)


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    @classmethod
    def of_text(cls, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
        """A table of plain one-line cells."""
        return cls(tuple(columns), tuple(tuple(inline(c) for c in row) for row in rows))


@dataclass(frozen=True)
class Figure:
    """A PNG file shown with its ``caption`` (linked from Markdown, embedded in HTML)."""

    caption: str
    path: Path


@dataclass
class Section:
    """A heading (none when ``title`` is empty) at ``level`` 1-3, then a paragraph, bullet
    ``items``, ``tables`` and ``figures`` (side by side), in that order. A ``collapsed``
    section is shown closed under its title (``<details>``) until the reader opens it."""

    title: str = ""
    level: int = 2
    text: Inline = ()
    items: list[Inline] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    collapsed: bool = False


@dataclass
class Report:
    """``title``, the ``notes`` listed under it, then the ``sections``."""

    title: str
    notes: list[Inline] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


# --------------------------------------------------------------------------- Markdown


def _md_span(span: Span) -> str:
    if span.style == "code":
        return f"`{span.text}`"
    return f"**{span.text}**" if span.style == "best" else span.text


def _md_inline(spans: Inline) -> str:
    return "".join(_md_span(s) for s in spans)


def _md_cell(cell: Cell) -> str:
    return " · ".join(_md_span(s) for s in cell).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    """``table`` as a Markdown table (pipes in cells escaped)."""
    lines = [
        "| " + " | ".join(_md_cell(inline(c)) for c in table.columns) + " |",
        "|---" * len(table.columns) + "|",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(report: Report, base: Path | None = None) -> str:
    """The report as Markdown; figures are image links, relative to ``base`` when given."""
    lines = [f"# {report.title}", ""]
    if report.notes:
        lines += [f"- {_md_inline(n)}" for n in report.notes] + [""]
    for section in report.sections:
        if section.collapsed:
            lines += [f"<details><summary>{html.escape(section.title)}</summary>", ""]
        elif section.title:
            lines += [f"{'#' * section.level} {section.title}", ""]
        if section.text:
            lines += [_md_inline(section.text), ""]
        if section.items:
            lines += [f"- {_md_inline(item)}" for item in section.items] + [""]
        for table in section.tables:
            lines += [markdown_table(table), ""]
        if section.figures:  # one line: side by side where the viewer has room
            lines += [" ".join(_md_figure(f, base) for f in section.figures), ""]
        if section.collapsed:
            lines += ["</details>", ""]
    return "\n".join(lines)


def _md_figure(figure: Figure, base: Path | None) -> str:
    path = os.path.relpath(figure.path, base) if base is not None else str(figure.path)
    return f"![{figure.caption}]({Path(path).as_posix()})"


# --------------------------------------------------------------------------- HTML

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 2em;color:#222;max-width:1400px}
.scroll{max-width:100%;overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f0f0f0}.muted{color:#555;font-size:12px}.ok{color:#176b1c}.bad{color:#a11}
.warn{color:#8a6d00}.best{font-weight:bold;background:#e3f4e1;padding:0 3px}
code{font-size:12px;word-break:break-all}li{overflow-wrap:anywhere}
.figures{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin-bottom:1em}
figure{margin:0;flex:1 1 0;min-width:min(300px,100%);max-width:640px}
figure img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:13px;color:#444}
details{margin:1em 0}summary{cursor:pointer;font-size:1.3em;font-weight:bold}
"""


def _html_span(span: Span) -> str:
    text = html.escape(span.text)
    if span.style == "code":
        return f"<code>{text}</code>"
    if span.style == "best":
        return f"<strong class=best>{text}</strong>"
    return f"<span class={span.style}>{text}</span>" if span.style else text


def _breakable(text: str) -> str:
    """``text`` escaped, with a line-break opportunity after each ``,`` and ``/`` (run names
    such as ``preset,model.beta=1e-05,train.seed=101`` have no spaces)."""
    return html.escape(text).replace(",", ",<wbr>").replace("/", "/<wbr>")


def _html_inline(spans: Inline) -> str:
    return "".join(_html_span(s) for s in spans)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_breakable(c)}</th>" for c in table.columns)
    rows = [
        "<tr>" + "".join(f"<td>{'<br>'.join(_html_span(s) for s in c)}</td>" for c in row) + "</tr>"
        for row in table.rows
    ]
    return "\n".join([f"<div class=scroll><table><tr>{head}</tr>", *rows, "</table></div>"])


def _html_figure(figure: Figure) -> str:
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    caption = html.escape(figure.caption)
    return (
        f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    title = html.escape(report.title)
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    if report.notes:
        out.append("<ul>" + "".join(f"<li>{_html_inline(n)}</li>" for n in report.notes) + "</ul>")
    for section in report.sections:
        if section.collapsed:
            out.append(f"<details><summary>{html.escape(section.title)}</summary>")
        elif section.title:
            out.append(f"<h{section.level}>{html.escape(section.title)}</h{section.level}>")
        if section.text:
            out.append(f"<p>{_html_inline(section.text)}</p>")
        if section.items:
            out.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in section.items))
            out.append("</ul>")
        out += [_html_table(t) for t in section.tables]
        if section.figures:
            out += ["<div class=figures>", *(_html_figure(f) for f in section.figures), "</div>"]
        if section.collapsed:
            out.append("</details>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(report: Report, out: Path) -> tuple[Path, Path]:
    """Write ``out/report.md`` and ``out/report.html``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render_markdown(report, out))
    html_path.write_text(render_html(report))
    return md_path, html_path
