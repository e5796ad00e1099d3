"""``cvae reproduce``: grids per paper and budget, missing datasets, mean (std) over seeds,
verdicts and the paper-shaped report (runs faked: no training here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cvae import config as C
from cvae.cli import main
from cvae.errors import ConfigError
from cvae.experiments import reproduce as R
from cvae.experiments.papers import PAPERS, paper_number
from cvae.experiments.results import Aggregate, aggregate, combine, format_aggregate
from cvae.experiments.sweep import SweepRun
from cvae.experiments.verdict import DIFFERS, REPRODUCED, judge, standard_error


def _names(runs: list[R.PlannedRun]) -> set[str]:
    return {p.job.name for p in runs}


def test_cvae_paper_quick_grid_is_table1_and_table2_at_one_epoch():
    runs = R.plan("cvae-paper", "quick")
    mnist = {
        f"{m}-mnist-paper,loss.terms.kl.weight={b},train.seed=0"
        for m in ("vae", "cvae")
        for b in ("0.001", "1e-05", "1e-08")
    }
    cifar = {"vae-cifar10-paper,loss.terms.kl.weight=0.001,train.seed=0"}
    cifar.add("cvae-cifar10-paper,loss.terms.kl.weight=0.01,train.seed=0")
    assert _names(runs) == mnist | cifar  # Table 1's MNIST runs are Table 2's beta=1e-3 runs
    assert all(p.job.config.train.epochs == 1 and not p.variant for p in runs)
    beta = {p.job.name: p.job.config.loss.terms.kl.weight for p in runs}
    assert beta["cvae-mnist-paper,loss.terms.kl.weight=1e-08,train.seed=0"] == 1e-8


def test_budgets_set_epochs_seeds_and_reference_code_variants():
    medium = R.plan("cvae-paper", "medium")
    code = {p.job.name: p.job.config.train.epochs for p in medium if p.variant}
    assert code == {
        "vae-mnist-code,loss.terms.kl.weight=0.001,train.seed=0": 10,
        "cvae-mnist-code,loss.terms.kl.weight=0.001,train.seed=0": 10,
        "vae-cifar10-code,loss.terms.kl.weight=0.001,train.seed=0": 10,
        "cvae-cifar10-code,loss.terms.kl.weight=0.01,train.seed=0": 10,
    }
    paper = {p.job.name: p.job.config.train.epochs for p in R.plan("cvae-paper", "paper")}
    assert paper["vae-mnist-paper,loss.terms.kl.weight=0.001,train.seed=0"] == 700
    assert paper["cvae-cifar10-paper,loss.terms.kl.weight=0.01,train.seed=0"] == 2000

    quick = R.plan("crvae-paper", "quick")
    assert _names(quick) == {
        f"{p}-mnist,train.seed={s}"
        for p in ("vae-crvae", "infovae", "infomaxvae", "crvae")
        for s in (101, 202)
    }
    assert {p.job.config.train.epoch_fraction for p in quick} == {0.25}
    full = R.plan("crvae-paper", "paper")
    table3 = [p for p in full if p.row.table == "Table III" and not p.variant]
    assert len(table3) == 4 * 4 * 5  # datasets x (VAE, InfoVAE, InfoMax-VAE, CR-VAE) x seeds
    assert {p.seed for p in table3} == {101, 202, 303, 404, 505}
    ablation = [p for p in full if p.row.table.startswith("Fig. 4")]
    assert sorted(p.job.config.loss.terms.infonce.weight for p in ablation) == [
        0,
        0.2,
        0.4,
        0.6,
        0.8,
    ]
    assert {p.seed for p in ablation} == {101}  # one run per gamma
    assert {p.job.config.train.epochs for p in full} == {50}

    three = R.plan("crvae-paper", "quick", seeds=3, data_dir="/data")
    assert {p.seed for p in three} == {101, 202, 303}
    assert {p.job.config.data.data_dir for p in three} == {str(Path("/data").resolve())}

    bt = R.plan("btvae-paper", "paper")
    lams = sorted(p.job.config.loss.terms.barlow.weight for p in bt if p.dataset == "mnist")
    assert lams == [-2.5e-4, 0, 2.5e-4, 2.5e-4, 2.5e-3, 0.025, 0.025, 0.25]  # + code, + d=2
    assert [p.job.config.model.latent_dim for p in bt if p.row.table.startswith("Fig. 3")] == [2]
    aavae = {p.job.name for p in R.plan("aavae-paper", "quick")}
    assert {"aavae-cifar10,train.seed=0", "simclr-cifar10,train.seed=0"} <= aavae
    assert len(aavae) == 6


def test_bad_paper_budget_or_seeds_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown paper"):
        R.plan("vae-paper")
    with pytest.raises(ConfigError, match="unknown budget"):
        R.plan("cvae-paper", "huge")
    with pytest.raises(ConfigError, match=r"--seeds must be 1\.\.5"):
        R.plan("crvae-paper", seeds=6)


def _metrics_json(run_dir: Path, values: dict[str, float | None], epoch: int = 1) -> None:
    metrics = {
        k: {"value": v, "protocol": {"name": k, "metric": "top-1 accuracy"}}
        if k.startswith(("knn", "logreg", "linear"))
        else {"value": v, "protocol": {"name": k}}
        for k, v in values.items()
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    data = {"checkpoint_epoch": epoch, "metrics": metrics, "figures": {}, "notes": []}
    (run_dir / "metrics.json").write_text(json.dumps(data))


def test_aggregate_mean_and_sample_std_over_seeds(tmp_path):
    for i, acc in enumerate((0.8, 0.9, 1.0)):
        _metrics_json(tmp_path / f"s{i}", {"knn_weighted_cosine": acc, "kl": 2.0 + i}, epoch=5 - i)
    _metrics_json(tmp_path / "s3", {"knn_weighted_cosine": None})
    dirs = [tmp_path / f"s{i}" for i in range(4)] + [tmp_path / "absent"]
    agg = aggregate(dirs, "knn_weighted_cosine")
    assert agg.values == [0.8, 0.9, 1.0]
    assert agg.mean == pytest.approx(0.9) and agg.std == pytest.approx(0.1)
    assert agg.unit == "accuracy" and agg.epochs == 1
    assert agg.reason == "knn_weighted_cosine: no value; not evaluated yet"
    assert format_aggregate(agg) == "90.00% (10.00)"
    kl = aggregate(dirs[:3], "kl")
    assert (kl.mean, kl.std) == (3.0, 1.0) and format_aggregate(kl) == "3.00 (1.00)"
    one = aggregate(dirs[:1], "kl")
    assert one.std is None and format_aggregate(one) == "2.00"
    none = aggregate(dirs[:1], "nll_iwae")
    assert none.mean is None and format_aggregate(none) == "n/a: nll_iwae: n/a"


def _agg(values, epochs=50, protocol=None, reason=None):
    return Aggregate(list(values), "", dict(protocol or {}), epochs, reason)


def test_verdict_standard_error_over_seeds_and_test_images():
    cfg = C.load_preset("crvae-mnist")
    kl = paper_number(cfg, "kl")  # 16.99 (0.08) over 5 runs
    assert (kl.value, kl.std) == (16.99, 0.08)

    def text(entry, ours, **kw):
        return judge(entry, ours, target_epochs=50, **kw).text

    # seeds: se = 0.1414 / sqrt(2) = 0.1; tolerance = 2 * sqrt(0.08^2 + 0.1^2) = 0.2561
    assert standard_error(_agg([17.0, 17.2]), "nats") == pytest.approx(0.1)
    assert text(kl, _agg([17.0, 17.2])) == "reproduced within noise (+0.11, tolerance 0.2561)"
    assert text(kl, _agg([17.4, 17.6])) == "differs (+0.51, tolerance 0.2561)"
    assert text(kl, _agg([17.0])) == "reproduced within noise (+0.01, tolerance 0.16)"
    # accuracies add the binomial error of n_test images: one run, then two seeds
    knn = paper_number(cfg, "knn_weighted_cosine")  # 95.29% (0.14)
    one = _agg([0.95], protocol={"n_test": 10000})
    assert standard_error(one, "accuracy") == pytest.approx(math.sqrt(0.95 * 0.05 / 10000))
    two = _agg([0.94, 0.96], protocol={"n_test": 10000})
    se = math.sqrt(0.01**2 + 0.95 * 0.05 / 10000)  # stdev(0.94, 0.96)^2 / 2 = 0.01^2
    assert standard_error(two, "accuracy") == pytest.approx(se)
    verdict = judge(knn, two, target_epochs=50)
    assert verdict.status == REPRODUCED
    tolerance = 200 * math.hypot(0.0014, se)  # in %
    assert verdict.text == f"reproduced within noise (-0.29%, tolerance {tolerance:.2f}%)"
    assert standard_error(_agg([0.95]), "accuracy") == 0.0  # no n_test recorded
    assert standard_error(_agg([]), "accuracy") == 0.0


def test_verdict_not_comparable_reasons_and_tolerance_floor():
    kl = paper_number(C.load_preset("crvae-mnist"), "kl")

    def text(entry, ours, **kw):
        return judge(entry, ours, **{"target_epochs": 50, **kw}).text

    assert text(kl, _agg([17.0], epochs=1)) == "not comparable (budget: 1 of 50 epochs)"
    assert text(kl, _agg([17.0]), fraction=0.5) == (
        "not comparable (budget: 50 x 0.5 of the train set of 50 epochs)"
    )
    assert text(kl, _agg([17.0], epochs=None)) == text(kl, _agg([17.0]), target_epochs=None)
    assert text(kl, _agg([])) == "not comparable (no value)"
    assert text(kl, _agg([], reason="kl: crashed")) == "not comparable (no value: kl: crashed)"
    assert text(kl, _agg([17.0]), mismatches=["a=1 (paper 2)", "b"]) == (
        "not comparable (config: a=1 (paper 2); b)"
    )
    fid = paper_number(C.load_preset("cvae-mnist-paper"), "fid_inception")
    assert text(fid, _agg([48.0]), target_epochs=None).startswith("not comparable (the paper's FID")
    bt = paper_number(C.load_preset("btvae-cifar10"), "fid_inception")  # 0.2838, floor 10%
    assert text(bt, _agg([0.29])) == "not comparable (protocol: paper dims=64, ours None)"
    near = judge(bt, _agg([0.30], protocol={"dims": 64}), target_epochs=50)
    assert (near.status, near.detail) == (REPRODUCED, "+0.0162, tolerance 0.02838")
    assert judge(bt, _agg([0.32], protocol={"dims": 64}), target_epochs=50).status == DIFFERS


def test_a_val_split_number_is_never_judged_against_a_paper_test_number():
    """Settings selected with `cvae eval --split val` get no verdict against the paper."""
    kl = paper_number(C.load_preset("crvae-mnist"), "kl")
    test = Aggregate([17.0], epochs=50, split="test")
    val = Aggregate([17.0], epochs=50, split="val")
    assert judge(kl, test, target_epochs=50).status != "not comparable"
    assert judge(kl, combine([test, val]), target_epochs=50).text == (
        "not comparable (split: ours scored the val split, the paper its test split)"
    )


def _fake_run_jobs(values):
    """A run_jobs that writes config.yaml and metrics.json (``values(job)``) for every job."""
    calls = []

    def run_jobs(jobs, out, **kwargs):
        calls.append([j.name for j in jobs])
        runs = []
        for job in jobs:
            run_dir = Path(out) / job.name
            _metrics_json(run_dir, values(job), epoch=job.config.train.epochs)
            C.save_yaml(job.config, run_dir / "config.yaml")
            runs.append(SweepRun(job.name, run_dir, job.overrides, "done"))
        return runs

    return run_jobs, calls


def test_missing_dataset_skipped_and_report_has_paper_tables(tmp_path, monkeypatch, mnist_dir):
    root = tmp_path / "data"
    root.mkdir()
    (root / "mnist").symlink_to(mnist_dir)
    run_jobs, calls = _fake_run_jobs(lambda job: {"logreg_paper": 0.9, "fid_domain": 12.5})
    monkeypatch.setattr(R, "run_jobs", run_jobs)
    echoed = []
    result = R.reproduce(
        "cvae-paper", budget="quick", data_dir=root, out=tmp_path / "out", echo=echoed.append
    )
    assert len(calls) == 1 and len(calls[0]) == 6 and all("mnist" in n for n in calls[0])
    assert echoed == [f"skipped: cifar10: not found in {root / 'cifar10'}; download "
                      "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/"
                      f"cifar-10-python.tar.gz into {root / 'cifar10'}"]  # fmt: skip
    t1 = {line["row"]: line for line in result["tables"]["Table 1"]}
    assert t1["mnist CVAE"]["paper"] == "93.05% (Table 1)"
    assert t1["mnist CVAE"]["ours"] == "90.00% (1 run)"
    assert t1["mnist CVAE"]["budget"] == "quick: 1 of 700 epochs"
    assert t1["mnist CVAE"]["verdict"] == "not comparable (budget: 1 of 700 epochs)"
    assert t1["cifar10 VAE"]["ours"] == "n/a: dataset cifar10 missing"
    assert t1["cifar10 VAE"]["verdict"].startswith("not comparable (no value: dataset cifar10")
    t2 = [(x["row"], x["metric"], x["paper"]) for x in result["tables"]["Table 2"]]
    assert ("VAE, beta=1e-05", "fid_inception", "87.04 (Table 2)") in t2
    assert ("CVAE, beta=1e-08", "fid_domain", "—") in t2
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| mnist CVAE | logreg_paper | 93.05% (Table 1) | 90.00% (1 run) |" in md
    assert "Skipped: cifar10: not found" in md and "# Every run" in md
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.index("<h2>Table 2</h2>") < page.index("<h1>Every run</h1>")


def test_crvae_report_mean_std_over_seeds_and_code_knn(tmp_path, monkeypatch):
    def values(job):
        seed = job.config.train.seed
        return {"kl": 16.0 + seed / 101, "knn_uniform_euclidean": 0.5, "knn_weighted_cosine": 0.95}

    run_jobs, _ = _fake_run_jobs(values)
    monkeypatch.setattr(R, "run_jobs", run_jobs)
    monkeypatch.setattr(R, "missing_datasets", lambda runs, data_dir: [])
    result = R.reproduce("crvae-paper", out=tmp_path, echo=lambda _: None)
    lines = {(x["row"], x["metric"]): x for x in result["tables"]["Table III"]}
    kl = lines[("mnist CR-VAE", "kl")]
    assert kl["ours"] == "17.50 (0.71)"  # seeds 101, 202 -> 17, 18
    assert kl["paper"] == "16.99(0.08) over 5 runs (Table III)"
    assert kl["seeds"] == "101,202"
    assert kl["budget"] == "quick: 1 x 0.25 of 50 epochs"
    knn = lines[("mnist VAE", "knn_weighted_cosine")]
    assert knn["ours"] == "95.00% (0.00)"
    assert knn["reference code"] == "knn_uniform_euclidean: 50.00% (0.00)"
    nll = lines[("mnist VAE", "recon_nll")]
    assert nll["ours"] == "n/a: recon_nll: n/a"


def test_cli_reproduce_unknown_paper_exits_2(capsys):
    assert main(["reproduce", "nope-paper"]) == 2
    assert "unknown paper 'nope-paper'" in capsys.readouterr().err


def test_compare_and_reproduce_share_the_verdict_of_a_run(tmp_path):
    """One crvae-mnist run at the paper's budget: compare's cell and reproduce's line agree."""
    runs = [p for p in R.plan("crvae-paper", "paper") if p.row.label == "mnist CR-VAE"][:1]
    run_dir = tmp_path / "runs" / runs[0].job.name
    metrics = {"knn_weighted_cosine": 0.951, "kl": 17.2}
    _metrics_json(run_dir, metrics, epoch=50)
    data = json.loads((run_dir / "metrics.json").read_text())
    data["metrics"]["knn_weighted_cosine"]["protocol"]["n_test"] = 10000
    (run_dir / "metrics.json").write_text(json.dumps(data))
    C.save_yaml(runs[0].job.config, run_dir / "config.yaml")
    result = R.write_report(PAPERS["crvae-paper"], "paper", runs, tmp_path)
    lines = {x["metric"]: x for x in result["tables"]["Table III"]}
    cells = result["compare"]["table"]
    for metric in metrics:
        assert lines[metric]["verdict"] == cells[metric][run_dir.name]["verdict"]
    assert lines["kl"]["verdict"] == "differs (+0.21, tolerance 0.16)"
    assert lines["knn_weighted_cosine"]["verdict"].startswith("reproduced within noise (-0.19%")
    page = (tmp_path / "report.html").read_text()
    assert page.count("<html") == 1 and "<span class=bad>differs (+0.21" in page


def test_latent_figure_is_drawn_by_the_plots_module(tmp_path):
    import numpy as np

    from cvae.evaluation.plots import save_scatter

    points = np.random.default_rng(0).normal(size=(50, 2))
    labels = np.arange(50) % 10
    path = save_scatter(points, labels, tmp_path / "f" / "latent.png", xlabel="a", ylabel="b",
                        title="t")  # fmt: skip
    assert path.read_bytes().startswith(b"\x89PNG")
