"""The evaluation registry: Metric records, how a spec is skipped or marked unavailable, the probe
feature chosen by the method's spec, and an unlabeled evaluation end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvae.cli import main
from cvae.data import DataSplits, ImageDataset
from cvae.evaluation.evaluate import evaluate
from cvae.evaluation.registry import (
    METRICS,
    NEEDS,
    EvalContext,
    Metric,
    MetricSpec,
    Need,
    Notes,
    linear_sgd_default,
    measure,
    probe_feature,
)
from cvae.methods import METHODS
from cvae.training.trainer import data_from_config

TINY = [
    "--dataset", "digits", "--epochs", "1", "--no-progress", "--threads", "1",
    "--set", "model.channels=[8,16]", "--set", "train.tensorboard=false",
]  # fmt: skip


def test_metric_json_round_trip_keeps_extra_numbers_and_drops_empty_fields():
    raw = {"value": 2.5, "per_dim": [1.0, 1.5], "protocol": {"name": "kl", "n": 4}}
    metric = Metric.from_dict(raw)
    assert metric.extra == {"per_dim": [1.0, 1.5]} and metric.unavailable is None
    assert metric.to_json() == raw and list(metric.to_json()) == ["value", "per_dim", "protocol"]
    metric.seconds, metric.unit = 0.25, "nats"
    assert Metric.from_dict(metric.to_json()) == metric
    missing = Metric.missing("nll_iwae", "no q(z|x)").to_json()
    assert missing == {"value": None, "unavailable": "no q(z|x)", "protocol": {"name": "nll_iwae"}}


class _Context:
    """The part of an :class:`EvalContext` that :func:`measure` reads."""

    def __init__(self, unmet: dict[str, str]) -> None:
        self.notes, self.results, self._unmet = Notes(["given"]), {}, unmet

    def unmet(self, needs: tuple[Need, ...]) -> str | None:
        return next((self._unmet[n] for n in needs if n in self._unmet), None)


def test_measure_skips_marks_unavailable_or_computes_and_times():
    ctx = _Context({"labels": "unlabeled dataset"})
    calls = []

    def compute(c: EvalContext) -> Metric:
        calls.append(c)
        return Metric(1.0, {"name": "a"})

    off = MetricSpec(("a",), compute, off=lambda c: "--a 0")
    assert measure(off, ctx) == {}  # type: ignore[arg-type]
    for name in ("p", "q"):
        got = measure(MetricSpec((name,), compute, ("labels",)), ctx)  # type: ignore[arg-type]
        assert got == {name: Metric.missing(name, "unlabeled dataset")}
    assert calls == [] and ctx.results == {}
    group = MetricSpec(
        ("g1", "g2"), lambda c: {"g1": Metric(1, {}), "g2": Metric(None, {}, unavailable="x")}
    )
    got = measure(group, ctx)  # type: ignore[arg-type]
    assert set(got) == {"g1", "g2"} and all(m.seconds is not None for m in got.values())
    assert ctx.results == got
    assert ctx.notes.to_json() == [
        "given",
        "a: skipped (--a 0)",
        "p, q: unlabeled dataset",
        "g2: x",
    ]


def test_registry_names_are_unique_and_needs_known():
    names = [n for spec in METRICS for n in spec.names]
    assert len(names) == len(set(names))
    assert all(need in NEEDS for spec in METRICS for need in spec.needs)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_probe_feature_and_linear_sgd_follow_the_method_spec(method):
    # the AAVAE paper's protocol (h and the SGD linear evaluation) for its arms and SimCLR
    aavae_paper = method in ("aavae", "ae", "aaae", "simclr")
    assert probe_feature(method) == ("h" if aavae_paper else "mu")
    assert linear_sgd_default(method) is aavae_paper


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("registry") / "run"
    assert main(["train", "--method", "vae", *TINY, "--out", str(run)]) == 0
    return run


def test_unlabeled_evaluation_marks_the_probes_unavailable_in_one_note(trained):
    data = data_from_config_of(trained)
    bare = DataSplits(
        data.name, *(ImageDataset(s.images) for s in (data.train, data.val, data.test))
    )
    result = evaluate(trained, data=bare, embedding="none", iwae_k=0, fid_n=0, linear_epochs=0)
    m = result["metrics"]
    probes = ("logreg_paper", "logreg_standard", "perceptron_probe", "knn_weighted_cosine")
    for name in (*probes, "knn_weighted_cosine_k20", "knn_uniform_euclidean"):
        assert m[name] == Metric.missing(name, "unlabeled dataset").to_json()
    assert "linear_adam" not in m and "nll_iwae" not in m and "fid_domain" not in m
    assert m["kl"]["value"] > 0 and m["view_cosine_within"]["value"] is not None
    assert (
        "logreg_paper, logreg_standard, perceptron_probe, knn_weighted_cosine, "
        "knn_weighted_cosine_k20, knn_uniform_euclidean: unlabeled dataset" in result["notes"]
    )
    assert "nll_iwae: skipped (--iwae-k 0)" in result["notes"]
    assert result["feature_source"] == "method spec (vae: mu)" and result["complete"]
    assert json.loads((trained / "metrics.json").read_text()) == result


@pytest.mark.parametrize(
    ("method", "recon", "decoder_trained"),
    [("vae", None, True), ("simclr", None, False), ("cvae", 0.0, False), ("btvae", 0.0, True)],
)
def test_trains_decoder_follows_the_active_terms(method, recon, decoder_trained):
    from cvae.config import RunConfig
    from cvae.methods import resolve
    from cvae.methods.resolve import trains_decoder

    cfg = RunConfig(method=method)
    cfg.loss.terms.recon.weight = recon
    assert trains_decoder(resolve(cfg, (1, 8, 8))) is decoder_trained  # BT decodes x_hat


def test_decoder_free_run_marks_decoder_metrics_and_figures_unavailable(tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--method", "cvae", *TINY, "--set", "loss.terms.recon.weight=0"]
    assert main([*argv, "--out", str(run)]) == 0
    result = evaluate(run, embedding="none", iwae_n=50, fid_n=0, linear_epochs=0)
    m = result["metrics"]
    for name in ("recon_nll", "nll_iwae"):
        assert m[name]["value"] is None and "decoder-free" in m[name]["unavailable"]
    assert m["kl"]["value"] is not None and m["knn_weighted_cosine"]["value"] is not None
    assert not {"reconstructions", "samples", "interpolations"} & set(result["figures"])


def test_knn_at_k20_and_k200_states_the_clipping(trained):
    result = evaluate(trained, embedding="none", iwae_k=0, fid_n=0, linear_epochs=0)
    m, notes = result["metrics"], result["notes"]
    big, small = m["knn_weighted_cosine"]["protocol"], m["knn_weighted_cosine_k20"]["protocol"]
    assert big["k_requested"] == 200 and small["k_requested"] == 20
    assert small["k_used"] == 20 and small["clipped_reason"] is None
    assert big["k_used"] < 200 and "smallest class count" in big["clipped_reason"]
    line = f"knn_weighted_cosine: {big['clipped_reason']}: k={big['k_used']} used"
    assert line in notes and not any(n.startswith("knn_weighted_cosine_k20:") for n in notes)
    assert m["knn_uniform_euclidean"]["protocol"]["k_used"] == big["k_used"]


def test_split_val_scores_the_validation_split_and_says_so(trained, tmp_path, capsys):
    """Settings are selected on val (``--split val``): every metric scores the val split and
    metrics.json says which; a run without a val split is refused in one line."""
    n_val = len(data_from_config_of(trained).val)
    result = evaluate(trained, split="val", embedding="none", iwae_k=0, fid_n=0, linear_epochs=0)
    assert result["eval_split"] == {"name": "val", "n": n_val} and n_val > 0
    protocol = result["metrics"]["logreg_standard"]["protocol"]
    assert "score on val split" in json.dumps(protocol)
    test = evaluate(trained, embedding="none", iwae_k=0, fid_n=0, linear_epochs=0)
    assert test["eval_split"]["name"] == "test" and test["eval_split"]["n"] != n_val

    run = tmp_path / "no-val"
    argv = ["train", "--method", "vae", *TINY, "--set", "data.val_fraction=0", "--out", str(run)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--split", "val", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"cvae: error: {run}: --split val, but the run has no val split"
    )


def data_from_config_of(run: Path) -> DataSplits:
    from cvae import config as C

    return data_from_config(C.from_dict(C.load_yaml(run / "config.yaml")))
