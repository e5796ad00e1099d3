"""Paper numbers, `cvae compare` reports, and view similarities on a real (tiny) run."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import pytest
import torch
from badinput import expect_refusal

import cvae
from cvae.cli import main
from cvae.config import load_preset, save_yaml
from cvae.errors import CvaeError
from cvae.evaluation.collapse import active_units, mean_kl
from cvae.evaluation.plots import save_interpolations, save_kl_per_dim, save_similarity_matrix
from cvae.evaluation.probes import logistic_regression_paper
from cvae.evaluation.views import view_cosine_similarity
from cvae.experiments import report as rp
from cvae.experiments.compare import compare
from cvae.experiments.papers import PAPER_NUMBERS, PAPERS, condition_mismatches, paper_number
from cvae.training.trainer import data_from_config

PNG = base64.b64decode(  # a valid 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


# --------------------------------------------------------------------------- paper numbers


def test_paper_number_lookups() -> None:
    cvae_mnist = load_preset("cvae-mnist-paper")
    e = paper_number(cvae_mnist, "logreg_paper")
    assert e is not None and e.table == "Table 1" and e.model == "CVAE"
    assert e.value == pytest.approx(0.9305) and e.unit == "accuracy"
    assert paper_number(load_preset("vae-mnist-code"), "logreg_paper").value == pytest.approx(0.918)
    assert paper_number(load_preset("cvae-cifar10-code"), "logreg_paper").value == pytest.approx(
        0.6015
    )
    # beta selects the CVAE Table 2 column; Table 1 is only reported at beta = 1e-3
    cvae_mnist.loss.terms.kl.weight = 1e-5
    assert paper_number(cvae_mnist, "fid_inception").value == 162.71
    assert paper_number(cvae_mnist, "logreg_paper") is None
    # the config may be a plain dict (config.yaml)
    crvae = load_preset("crvae-mnist-code").to_dict()
    kl = paper_number(crvae, "kl")
    assert (kl.value, kl.std, kl.runs, kl.model) == (16.99, 0.08, 5, "CR-VAE")
    assert paper_number(crvae, "knn_weighted_cosine").value == pytest.approx(0.9529)
    assert paper_number(load_preset("vae-crvae-cifar10"), "marginal_kl").value == 14.92
    # BTVAE: lambda picks the row; lambda 0 is the VAE row
    bt = load_preset("btvae-cifar10")
    assert paper_number(bt, "fid_inception").value == 0.2838
    bt.loss.terms.barlow.weight = 0.0
    assert paper_number(bt, "fid_inception").model == "VAE"
    assert paper_number(load_preset("aaae-cifar10"), "linear_sgd").value == pytest.approx(0.5062)
    # another dataset, no preset, or an unknown metric: nothing to compare with
    other = load_preset("crvae-mnist")
    other.data.dataset = "digits"
    assert paper_number(other, "kl") is None
    assert condition_mismatches(other, paper_number(load_preset("crvae-mnist"), "kl")) == [
        "data.dataset='digits' (paper 'mnist')"
    ]
    assert paper_number(cvae.RunConfig(), "kl") is None
    assert paper_number(load_preset("crvae-mnist"), "no_such_metric") is None


def test_paper_tables_complete() -> None:
    """Every cell of the five spec tables is present once (16x7 + 4x2 + 2x3 + 6x3 + 5x2)."""
    by_table = {}
    for e in PAPER_NUMBERS:
        by_table.setdefault((e.paper.split(" ")[0], e.table), []).append(e)
    sizes = {k: len(v) for k, v in by_table.items()}
    assert sizes == {
        ("CVAE", "Table 1"): 4,
        ("CVAE", "Table 2"): 6,
        ("BTVAE", "Table 1"): 18,
        ("CR-VAE", "Table III"): 112,
        ("AAVAE", "Table 1"): 10,
    }
    assert len(PAPER_NUMBERS) == 150  # 148 cells of the five tables + SimCLR in AAVAE Table 1
    for paper in PAPERS.values():  # each paper holds its own numbers, rows and budgets
        assert {e.paper for e in paper.numbers} == {paper.title.split(":")[0]}
        assert set(paper.budgets) == {"quick", "medium", "paper"}
    aavae = [e for e in PAPERS["aavae-paper"].numbers if e.model == "AAVAE"]
    assert [(e.dataset, e.value, e.text) for e in aavae] == [
        ("cifar10", 0.8714, "87.14%"),
        ("stl10", 0.8472, "84.72%"),
    ]
    bt = [e for e in PAPERS["btvae-paper"].numbers if e.text == "0.9283"]
    assert len(bt) == 1 and bt[0].tolerance == pytest.approx(0.09283)
    assert bt[0].conditions == {"model.latent_dim": 128, "loss.terms.barlow.weight": 0.25}
    emnist_vae_mkl = [
        e for e in by_table[("CR-VAE", "Table III")] if e.dataset == "emnist" and e.model == "VAE"
    ][2]
    assert emnist_vae_mkl.metric == "marginal_kl" and emnist_vae_mkl.std == 0.73  # OCR'd "-0.73"


# --------------------------------------------------------------------------- compare


def _fake_run(
    root: Path,
    name: str,
    preset: str,
    epochs: int,
    metrics: dict,
    figures: dict | None = None,
    notes: tuple[str, ...] = (),
) -> Path:
    run = root / name
    (run / "figures").mkdir(parents=True)
    cfg = load_preset(preset)
    save_yaml(cfg, run / "config.yaml")
    (run / "figures" / "samples.png").write_bytes(PNG)
    data = {
        "run_dir": str(run),
        "method": cfg.method,
        "preset": preset,
        "dataset": cfg.data.dataset,
        "checkpoint_epoch": epochs,
        "feature": "mu",
        "eval_split": {"name": "test", "n": 10000},
        "seed": 0,
        "metrics": metrics,
        "figures": figures or {"samples": "samples.png"},
        "notes": list(notes),
    }
    (run / "metrics.json").write_text(json.dumps(data))
    return run


def _acc(value: float) -> dict:
    return {"value": value, "protocol": {"name": "logreg_paper", "n_test": 2000}}


def test_compare_markdown_verdicts_and_html(tmp_path: Path) -> None:
    a = _fake_run(
        tmp_path,
        "cvae-full",
        "cvae-mnist-paper",
        700,
        {
            "logreg_paper": _acc(0.925),
            "fid_inception": {
                "value": None,
                "unavailable": "pip install 'cvae[fid]'",
                "protocol": {"name": "fid_inception"},
            },
            "my_new_metric": {"value": 1.5, "protocol": {"name": "mine", "k": 3}},
        },
        notes=("unlabeled test",),
    )
    b = _fake_run(tmp_path, "vae-full", "vae-mnist-paper", 700, {"logreg_paper": _acc(0.85)})
    c = _fake_run(tmp_path, "cvae-short", "cvae-mnist-paper", 3, {"logreg_paper": _acc(0.93)})
    d = _fake_run(
        tmp_path,
        "crvae",
        "crvae-mnist",
        50,
        {
            "kl": {"value": 17.1, "protocol": {"name": "kl", "per_dim": [1.0] * 16}},
            "active_units": {"value": 15, "protocol": {"name": "active_units"}},
        },
    )
    out = tmp_path / "report"
    result = compare([a, b, c, d], out, title="T", notes=["hello note"])
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.md"]
    table = result["table"]
    assert result["metrics"] == [
        "logreg_paper",
        "fid_inception",
        "my_new_metric",
        "kl",
        "active_units",
    ]
    # |0.925 - 0.9305| = 0.0055 <= 2 * sqrt(0.925 * 0.075 / 2000) = 0.01178
    assert table["logreg_paper"]["cvae-full"]["verdict"].startswith("reproduced within noise")
    # |0.85 - 0.918| = 0.068 > 2 * sqrt(0.85 * 0.15 / 2000) = 0.01597
    assert table["logreg_paper"]["vae-full"]["verdict"].startswith("differs")
    assert table["logreg_paper"]["cvae-short"]["verdict"] == (
        "not comparable (budget: 3 of 700 epochs)"
    )
    # |17.1 - 16.99| = 0.11 <= 2 * 0.08; AU 15 vs 16.00(0.00) differs
    assert table["kl"]["crvae"]["verdict"].startswith("reproduced within noise")
    assert table["active_units"]["crvae"]["verdict"].startswith("differs")
    assert table["fid_inception"]["cvae-full"]["verdict"] == "not comparable (no value)"
    assert table["my_new_metric"]["cvae-full"]["paper"] is None
    assert "crvae" not in table["logreg_paper"]

    md = (out / "report.md").read_text()
    assert md.startswith("# T\n")
    assert (
        "| logreg_paper ↑ · % | 92.50% · paper 93.05% (CVAE Table 1) · reproduced within noise "
        "(-0.55%, tolerance 1.18%) | 85.00% · paper 91.80% (CVAE Table 1) · differs "
        "(-6.80%, tolerance 1.60%) | **93.00%** · paper 93.05% (CVAE Table 1) · not comparable "
        "(budget: 3 of 700 epochs) | — |"
    ) in md
    assert "n/a: pip install 'cvae[fid]'" in md
    assert "| my_new_metric | 1.5 | — | — | — |" in md
    assert "17.1 · paper 16.99(0.08) (CR-VAE Table III)" in md
    assert "| cvae-short | cvae | cvae-mnist-paper | mnist | 3 / 700 |" in md
    assert '`{"k": 3, "name": "mine"}`' in md
    assert '"per_dim": "[16 values]"' in md  # long protocol lists are shortened
    assert "- hello note" in md and "- cvae-full: unlabeled test" in md

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64," + base64.b64encode(PNG).decode()) == 4
    assert page.count("<img ") == 4 and "<link" not in page and "<script" not in page
    assert "reproduced within noise" in page and "<style>" in page


def test_compare_errors(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(CvaeError, match="run `cvae eval"):
        compare([run], tmp_path / "out")
    assert main(["compare", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cvae eval {run}" in err
    assert main(["compare", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "run directory not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"[1, 2]", "the file is not a JSON object"),
        (b'"text"', "the file is not a JSON object"),
        (b'{"metrics": [1]}', "its 'metrics' is not a JSON object"),
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_compare_refuses_a_metrics_json_that_is_not_an_object(
    tmp_path: Path, capsys, content: bytes, needle: str
) -> None:
    run = _fake_run(tmp_path, "run", "crvae-mnist", 50, {})
    (run / "metrics.json").write_bytes(content)
    argv = ["compare", str(run), "--out", str(tmp_path / "out")]
    line = expect_refusal(capsys, argv, code=2, needle=needle, root=tmp_path)
    assert str(run / "metrics.json") in line and not (tmp_path / "out").exists()


def test_report_renders_one_model_to_markdown_and_html(tmp_path: Path) -> None:
    png = tmp_path / "runs" / "a" / "figures" / "samples.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(PNG)
    cell = (rp.Span("17.1"), rp.Span("paper 16.99", "muted"), rp.Span("differs (+1)", "bad"))
    report = rp.Report(
        "Title <&>",
        notes=[rp.inline("budget ", rp.Span("quick", "code"))],
        sections=[
            rp.Section("Table", tables=[rp.Table(("metric", "a|b"), ((rp.inline("kl"), cell),))]),
            rp.Section("Figures", 3, text=rp.inline("one figure"), figures=[rp.Figure("s", png)]),
        ],
    )
    md_path, html_path = rp.write_report(report, tmp_path / "out")
    md = md_path.read_text()
    assert md.startswith("# Title <&>\n\n- budget `quick`\n\n## Table\n\n| metric | a\\|b |\n")
    assert "| kl | 17.1 · paper 16.99 · differs (+1) |" in md
    assert "### Figures\n\none figure\n\n![s](../runs/a/figures/samples.png)" in md
    page = html_path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<html") == 1
    assert "<h1>Title &lt;&amp;&gt;</h1>" in page and "<li>budget <code>quick</code></li>" in page
    assert "<td>17.1<br><span class=muted>paper 16.99</span><br>" in page
    assert "<span class=bad>differs (+1)</span>" in page and "<h3>Figures</h3>" in page
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page


# --------------------------------------------------------------------------- a real tiny run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = cvae.RunConfig(method="cvae")
    cfg.data.dataset = "digits"
    cfg.data.augment = "cvae-mnist"  # named: auto gives none on 8x8 digits
    cfg.model.channels = [16, 32]
    cfg.train.epochs = 1
    cfg.train.lr = 1e-3
    cfg.train.batch_size = 64
    cfg.train.progress = cfg.train.tensorboard = False
    run = tmp_path_factory.mktemp("digits") / "run"
    cvae.train(cfg, run)
    return run


def test_real_run_figures_views_and_compare(digits_run: Path, tmp_path: Path, capsys) -> None:
    run = cvae.load(digits_run)
    test = data_from_config(run.config).test
    result = view_cosine_similarity(run, test.images, augment="none", n_images=4, n_views=3)
    assert result["matrix"].shape == (12, 12)
    # identical views: every view of an image has the same mu, so within-image similarity is 1
    assert result["view_cosine_within"]["value"] == pytest.approx(1.0, abs=1e-5)
    assert result["view_cosine_between"]["value"] < 1.0
    proto = result["view_cosine_between"]["protocol"]
    assert (proto["augment"], proto["n_images"], proto["n_views"]) == ("none", 4, 3)
    aug = view_cosine_similarity(run, test.images, n_images=4, n_views=3, seed=1)
    assert aug["protocol"]["augment"] == "cvae-mnist"  # the run's own training views
    assert aug["view_cosine_within"]["value"] < 1.0
    h = view_cosine_similarity(run, test.images, "none", n_images=4, n_views=3, feature="h")
    assert h["protocol"]["feature_dim"] == 32 * 2 * 2  # flattened last conv map of 8x8 digits
    assert h["view_cosine_within"]["value"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(CvaeError, match="feature must be"):
        view_cosine_similarity(run, test.images, feature="z")

    figures = digits_run / "figures"
    save_similarity_matrix(aug["matrix"], 3, figures / "view_similarity.png")
    save_interpolations(run, test.images[:3], test.images[3:6], figures / "interp.png", steps=5)
    mu, logvar = run.encode(test.images)
    metrics = {
        "kl": mean_kl(mu, logvar),
        "active_units": active_units(mu),
        "logreg_paper": logistic_regression_paper(mu.numpy(), test.labels.numpy()),
    }
    kl = metrics["kl"]["per_dim"]
    var = metrics["active_units"]["protocol"]["per_dim_variance"]
    save_kl_per_dim(kl, figures / "kl_per_dim.png", [v >= 0.01 for v in var])
    # the metrics.json `cvae eval` writes (its figures and probes skipped to keep this fast)
    (digits_run / "metrics.json").write_text(
        json.dumps({"method": "cvae", "checkpoint_epoch": run.epoch, "metrics": metrics})
    )

    assert main(["compare", str(digits_run), "--out", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| metric | run |") and "| logreg_paper ↑ · % |" in out
    assert f"html: {tmp_path / 'cmp' / 'report.html'}" in out
    page = (tmp_path / "cmp" / "report.html").read_text()
    for kind in ("view_similarity", "interp", "kl_per_dim"):  # one section per kind
        assert f'<h3>{kind}</h3>\n<div class=figures>\n<figure><img alt="run"' in page
    assert math.isfinite(metrics["kl"]["value"])


def test_interpolation_rows_are_endpoints_and_path(digits_run: Path, tmp_path: Path) -> None:
    """Row i: original a, decodes of mu(a) .. mu(b), original b (height grows by one row)."""
    run = cvae.load(digits_run)
    imgs = data_from_config(run.config).test.images
    import matplotlib.image as mpimg

    heights = []
    for n in (1, 2):
        out = save_interpolations(run, imgs[:n], imgs[5 : 5 + n], tmp_path / f"i{n}.png", steps=4)
        heights.append(mpimg.imread(out).shape[0])
    assert heights[1] - heights[0] == 8 * 6 + 4  # one 8-px row at scale ceil(48 / 8) + the gap
    torch.testing.assert_close(
        run.interpolate(imgs[:1], imgs[5:6], steps=4)[0, -1], run.reconstruct(imgs[5:6])[0]
    )


def _probe(name: str, feature: str) -> dict:
    return {"value": 0.9, "protocol": {"name": name, "feature_name": feature}}


def test_compare_notes_runs_probed_on_different_features(tmp_path: Path) -> None:
    def run(name: str, preset: str, feature: str, knn_feature: str, source: str | None) -> Path:
        metrics = {
            "logreg_standard": _probe("logreg_standard", feature),
            "linear_adam": _probe("linear_adam", feature),
            "knn_weighted_cosine": _probe("knn_weighted_cosine", knn_feature),
            "kl": {"value": 3.0, "protocol": {"name": "kl"}},
        }
        path = _fake_run(tmp_path, name, preset, 1, metrics)
        data = json.loads((path / "metrics.json").read_text())
        if source is not None:
            data["feature_source"] = source
        (path / "metrics.json").write_text(json.dumps(data))
        return path

    vae = run("vae", "vae-aavae-cifar10", "mu", "mu", "method spec (vae: mu)")
    aavae = run("aavae", "aavae-cifar10", "h", "mu", "method spec (aavae: h)")
    old = run("old", "aavae-cifar10", "h", "mu", None)  # a metrics.json without feature_source
    notes = compare([vae, aavae, old], tmp_path / "out")["notes"]
    line = (
        "logreg_standard, linear_adam: the runs were probed on different features: "
        "vae mu (method spec (vae: mu)), aavae h (method spec (aavae: h)), old h"
    )
    assert [n for n in notes if "different features" in n] == [line]
    assert f"- {line}" in (tmp_path / "out" / "report.md").read_text()
    same = compare([aavae, old], tmp_path / "same")["notes"]
    assert not any("different features" in n for n in same)
