"""Comparison-first reports: direction arrows, units, the best value, seed groups with their
differences, collapsed protocols, and (integration) the rendered page in a headless Chromium
never wider than a 1400 px window."""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cvae.config import load_preset, save_yaml
from cvae.evaluation.plots import save_kl_per_dim, save_similarity_matrix
from cvae.evaluation.registry import METRICS, metric_spec
from cvae.experiments import report as rp
from cvae.experiments import reproduce as R
from cvae.experiments.compare import (
    best_groups,
    compare,
    difference,
    difference_span,
    headline_cell,
    metric_info,
    metric_label,
)
from cvae.experiments.papers import PAPERS

# --------------------------------------------------------------------------- unit


def test_every_metric_has_a_direction_and_unit_entry() -> None:
    names = [n for spec in METRICS for n in spec.names]
    assert all(metric_spec(n) is not None for n in names) and metric_spec("nope") is None
    assert metric_info("logreg_paper") == {"better": "higher", "unit": "accuracy"}
    assert metric_info("nll_iwae") == {"better": "lower", "unit": "nats per image"}
    assert metric_info("fid_inception")["better"] == "lower"
    assert metric_info("kl") == {"better": None, "unit": "nats"}  # a trade-off
    # a metric this version does not compute: no direction, the unit its cells carry
    assert metric_info("mine", {"run": {"unit": "bits"}}) == {"better": None, "unit": "bits"}
    assert metric_label("logreg_paper", metric_info("logreg_paper")) == (
        rp.Span("logreg_paper ↑"),
        rp.Span("%", "muted"),
    )
    assert metric_label("recon_nll", metric_info("recon_nll"))[0].text == "recon_nll ↓"
    assert metric_label("mine", metric_info("mine")) == (rp.Span("mine"),)


def test_best_value_follows_the_direction() -> None:
    means = {"a": 0.9, "b": 0.95, "c": None, "d": 0.95}
    assert best_groups(means, "higher") == {"b", "d"}  # ties: both
    assert best_groups(means, "lower") == {"a"}
    assert best_groups(means, None) == set()
    assert best_groups({"a": 1.0, "b": None}, "higher") == set()  # nothing to compare with
    assert best_groups({"a": 1.0, "b": 1.0}, "higher") == set()  # all equal: no best
    assert best_groups({"a": "n/a", "b": 2, "c": float("nan")}, "lower") == set()


def test_mean_std_and_welch_difference_hand_computed() -> None:
    cell = headline_cell([0.9, 0.92, 0.94], "accuracy")
    assert cell["mean"] == pytest.approx(0.92) and cell["std"] == pytest.approx(0.02)
    assert cell["text"] == "92.00% ± 2.00% (n=3)"
    assert headline_cell([17.1], "nats")["text"] == "17.1"
    assert headline_cell([], "nats")["mean"] is None
    # a = 1, 2, 3; b = 4, 5, 6: diff 3, se = sqrt(1/3 + 1/3), Welch dof = 4, t(0.975, 4) = 2.7764
    d = difference([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert d is not None and d["diff"] == pytest.approx(3.0)
    half = 2.776445 * (2 / 3) ** 0.5
    assert (d["low"], d["high"]) == (pytest.approx(3 - half, abs=1e-5), pytest.approx(3 + half))
    assert difference([1.0], [2.0, 3.0]) is None  # one run: no spread to compare with
    same = difference([1.0, 1.0], [2.0, 2.0])
    assert same == {"diff": 1.0, "low": 1.0, "high": 1.0, "level": 0.95}
    # green when the interval excludes 0 on the better side, red on the worse, muted across 0
    up = {"diff": 0.02, "low": 0.01, "high": 0.03, "level": 0.95}
    assert difference_span(up, "accuracy", "higher") == rp.Span(
        "Δ +2.00% [95% CI +1.00%, +3.00%]", "ok"
    )
    assert difference_span(up, "accuracy", "lower").style == "bad"
    assert difference_span(up, "accuracy", None).style == ""
    across = {"diff": 0.5, "low": -0.1, "high": 1.1, "level": 0.95}
    assert difference_span(across, "nats", "lower").style == "muted"


PNG_CACHE: dict[str, bytes] = {
    "tiny": base64.b64decode(  # a valid 1x1 PNG
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    )
}


def _figure(kind: str, tmp: Path) -> bytes:
    """A real figure of ``kind`` (drawn once per session), or a 1x1 ``tiny`` one."""
    if kind not in PNG_CACHE:
        path = tmp / f"{kind}.png"
        if kind == "kl_per_dim":
            save_kl_per_dim(np.linspace(0.1, 2.0, 16), path, [True] * 16, title="KL per dim")
        else:
            sim = np.eye(32) * 0.5 + 0.5
            save_similarity_matrix(sim, 4, path, title="cvae: cosine similarity of mu (seed 0)")
        PNG_CACHE[kind] = path.read_bytes()
    return PNG_CACHE[kind]


def _run(
    root: Path,
    name: str,
    metrics: dict[str, float | None],
    *,
    preset: str = "crvae-mnist",
    seed: int = 0,
    figures: tuple[str, ...] = (),
) -> Path:
    """A run folder with ``config.yaml`` (``preset`` at ``seed``), ``metrics.json`` and
    ``figures``; accuracies carry their protocol's metric, everything a long protocol."""
    run = root / name
    (run / "figures").mkdir(parents=True)
    cfg = load_preset(preset)
    cfg.train.seed = seed
    save_yaml(cfg, run / "config.yaml")
    for kind in figures:
        (run / "figures" / f"{kind}.png").write_bytes(_figure(kind, root))
    entries = {
        k: {
            "value": v,
            "protocol": {
                "name": k,
                "metric": "top-1 accuracy" if k.startswith(("knn", "logreg")) else k,
                "n_test": 10000,
                "per_class": [0.9] * 5,
                "description": "a long protocol string " * 8,
            },
        }
        for k, v in metrics.items()
    }
    data = {
        "method": cfg.method,
        "preset": preset,
        "dataset": cfg.data.dataset,
        "checkpoint_epoch": 50,
        "feature": "mu",
        "eval_split": {"name": "test", "n": 10000},
        "seed": 0,
        "metrics": entries,
        "figures": {k: f"{k}.png" for k in figures},
        "notes": [],
    }
    (run / "metrics.json").write_text(json.dumps(data))
    return run


def _seeded_runs(root: Path, figures: tuple[str, ...] = ()) -> list[Path]:
    """crvae-mnist and vae-crvae-mnist, two seeds each, with kNN accuracy, NLL and KL."""
    runs = []
    for preset, acc, nll in (("crvae-mnist", 0.95, 22.0), ("vae-crvae-mnist", 0.90, 25.0)):
        for i, seed in enumerate((101, 202)):
            metrics = {"knn_weighted_cosine": acc + 0.01 * i, "recon_nll": nll + i, "kl": 17.0}
            runs.append(_run(root, f"{preset},train.seed={seed}", metrics, preset=preset,
                             seed=seed, figures=figures))  # fmt: skip
    return runs


def test_compare_groups_seeds_marks_the_best_and_collapses_protocols(tmp_path: Path) -> None:
    result = compare(_seeded_runs(tmp_path / "runs"), tmp_path / "out")
    groups = result["groups"]
    assert [g["name"] for g in groups] == ["crvae-mnist (2 seeds)", "vae-crvae-mnist (2 seeds)"]
    assert groups[0]["seeds"] == [101, 202] and len(groups[1]["runs"]) == 2
    knn = result["headline"]["knn_weighted_cosine"]
    base, other = knn["crvae-mnist (2 seeds)"], knn["vae-crvae-mnist (2 seeds)"]
    assert base["text"] == "95.50% ± 0.71% (n=2)" and base["best"] and not other["best"]
    assert base["diff"] is None and other["diff"]["diff"] == pytest.approx(-0.05)
    # std 0.00707 each: se = sqrt(2 * 0.00707^2 / 2) = 0.00707, Welch dof 2, t = 4.303
    assert other["diff"]["high"] == pytest.approx(-0.05 + 4.3027 * 0.5**0.5 / 100, abs=1e-5)
    nll = result["headline"]["recon_nll"]
    assert nll["crvae-mnist (2 seeds)"]["best"] and not nll["vae-crvae-mnist (2 seeds)"]["best"]
    assert not any(c["best"] for c in result["headline"]["kl"].values())  # no direction

    md = Path(result["markdown"]).read_text()
    assert "| knn_weighted_cosine ↑ · % | **95.50% ± 0.71% (n=2)** · paper" in md
    assert "90.50% ± 0.71% (n=2) · Δ -5.00% [95% CI -8.04%, -1.96%] · paper" in md
    assert "| recon_nll ↓ · nats per image | **22.5 ± 0.7071 (n=2)** · paper" in md
    assert md.startswith("# Comparison of crvae-mnist (2 seeds), vae-crvae-mnist (2 seeds)\n")
    assert "## Every value" in md  # the per-run table, as the headline pooled seeds
    assert md.index("## Figures") < md.index("<details><summary>Protocols</summary>")
    page = Path(result["html"]).read_text()
    details = page[page.index("<details><summary>Protocols</summary>") :]
    assert page.count("n_test") == details.count("n_test") > 0  # protocols: only inside
    assert "<strong class=best>95.50% ± 0.71% (n=2)</strong>" in page
    assert "<span class=bad>Δ -5.00% [95% CI -8.04%, -1.96%]</span>" in page
    assert page.count("<div class=scroll><table>") == 3  # headline, runs, every value


def test_compare_without_seeds_has_one_column_per_run_and_no_differences(tmp_path: Path) -> None:
    a = _run(tmp_path, "a", {"knn_weighted_cosine": 0.9}, figures=("tiny",))
    b = _run(tmp_path, "b", {"knn_weighted_cosine": 0.8}, preset="vae-crvae-mnist")
    result = compare([a, b], tmp_path / "out")
    assert [g["name"] for g in result["groups"]] == ["a", "b"]
    cells = result["headline"]["knn_weighted_cosine"]
    assert cells["a"]["best"] and cells["b"]["diff"] is None
    md = Path(result["markdown"]).read_text()
    assert "Every value" not in md and "Δ" not in md
    assert "### tiny\n\n![a](../a/figures/tiny.png)" in md
    assert "No figures for b (run `cvae eval` to draw them)." in md


def test_report_model_collapsed_sections_scroll_boxes_and_figure_rows(tmp_path: Path) -> None:
    png = tmp_path / "f.png"
    png.write_bytes(_figure("tiny", tmp_path))
    report = rp.Report(
        "T",
        sections=[
            rp.Section("Fig", figures=[rp.Figure("a", png), rp.Figure("b", png)]),
            rp.Section("Hidden", items=[rp.inline(rp.Span("{}", "code"))], collapsed=True),
            rp.Section(tables=[rp.Table.of_text(["x,y"], [["1"]])]),
        ],
    )
    md = rp.render_markdown(report, tmp_path)
    assert "![a](f.png) ![b](f.png)" in md
    assert "<details><summary>Hidden</summary>\n\n- `{}`\n\n</details>" in md
    page = rp.render_html(report)
    assert "<div class=figures><figure>" in page.replace("\n", "")
    assert (
        "<details><summary>Hidden</summary>\n<ul><li><code>{}</code></li>\n</ul>\n</details>"
        in page
    )
    assert "<div class=scroll><table><tr><th>x,<wbr>y</th></tr>" in page


# --------------------------------------------------------------------------- the browser

CHECK = """<script>
addEventListener('load', () => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  const width = document.documentElement.clientWidth;
  const clipped = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement)
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    return false;
  };
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if ((r.right > width + 0.5 || r.left < -0.5) && !clipped(el))
      wide.push(`${el.tagName} right=${Math.round(r.right)}: ${el.textContent.slice(0, 60)}`);
  }
  const scrolls = [...document.querySelectorAll('.scroll')].map(
    (e) => [e.scrollWidth, e.clientWidth]);
  const out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({
    window: innerWidth, width, scrollWidth: document.documentElement.scrollWidth, wide, scrolls,
    images: [...document.images].map((i) => i.naturalWidth),
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture
def chromium() -> str:
    """Debian's chromium; the test fails without it under CVAE_REQUIRE_BROWSER (CI), else
    skips, saying why."""
    found = next(
        (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
    )
    if found is None:
        if os.environ.get("CVAE_REQUIRE_BROWSER"):
            pytest.fail("chromium not found, and CVAE_REQUIRE_BROWSER is set (.ci/run installs it)")
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)")
    return found


def _layout(chromium: str, page: Path, tmp: Path) -> dict:
    """The page in a 1400 px headless Chromium, every <details> open: the ``window``'s width,
    the page's (``width``, less a scroll bar), the document's ``scrollWidth``, the elements
    beyond the page outside a scroll box (``wide``), each scroll box's widths (``scrolls``)."""
    probe = tmp / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    argv = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--window-size=1400,900",
            f"--user-data-dir={tmp / 'profile'}", "--dump-dom", probe.as_uri()]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="layout-check">(.*?)</pre>', done.stdout, re.S)
    assert found, (
        f"no layout check in chromium's DOM (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    layout = json.loads(html.unescape(found.group(1)))
    assert layout["window"] == 1400 and all(w > 0 for w in layout["images"])  # figures decoded
    return layout


@pytest.mark.integration
def test_compare_report_fits_a_1400px_window(chromium: str, tmp_path: Path) -> None:
    runs = _seeded_runs(tmp_path / "runs", figures=("kl_per_dim", "view_similarity"))
    result = compare(runs[:1] + runs[2:], tmp_path / "out")  # 1 + 2 seeds: two columns
    layout = _layout(chromium, Path(result["html"]), tmp_path)
    assert layout["scrollWidth"] <= layout["width"] and layout["wide"] == []
    assert len(layout["images"]) == 6


@pytest.mark.integration
def test_reproduction_report_with_many_runs_fits_a_1400px_window(
    chromium: str, tmp_path: Path
) -> None:
    planned = R.plan("crvae-paper", "medium")
    assert len(planned) == 20
    for i, p in enumerate(planned):
        assert p.job.config is not None
        run_dir = tmp_path / "runs" / p.job.name
        metrics = {"kl": 16.0 + i / 10, "knn_weighted_cosine": 0.9 + i / 1000, "recon_nll": 30.0}
        _run(tmp_path / "runs", p.job.name, metrics, figures=("kl_per_dim",))
        save_yaml(p.job.config, run_dir / "config.yaml")
    result = R.write_report(PAPERS["crvae-paper"], "medium", planned, tmp_path)
    assert len(result["compare"]["runs"]) == 20
    layout = _layout(chromium, Path(result["html"]), tmp_path)
    assert layout["scrollWidth"] <= layout["width"] and layout["wide"] == []
    # the per-run table of 20 runs is wider than the window: it scrolls inside its own box
    assert any(scroll > client for scroll, client in layout["scrolls"])
