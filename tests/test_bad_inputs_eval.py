"""`cvae eval` at its edges: bad options and foreign checkpoints are one line (exit 2), an
unexpected exception is one line (exit 1), Ctrl-C keeps the metrics computed so far (exit 130),
and a missing umap-learn falls back to t-SNE. All on one tiny digits run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from badinput import expect_refusal, private_copy, train_tiny

import cvae.cli
import cvae.evaluation.evaluate as ev
import cvae.evaluation.figures as figures
import cvae.evaluation.registry as registry
from cvae.cli import main
from cvae.training.trainer import CHECKPOINT

FAST_EVAL = ["--iwae-k", "0", "--fid-n", "0", "--no-linear", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("eval-edges"))


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return private_copy(trained, tmp_path)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--knn-k", "0"], "knn_k must be an integer >= 1"),
        (["--knn-k", "-5"], "knn_k must be an integer >= 1"),
        (["--knn-temperature", "0"], "knn_temperature must be > 0"),
        (["--knn-temperature", "-1"], "knn_temperature must be > 0"),
        (["--knn-temperature", "nan"], "finite"),
        (["--knn-temperature", "inf"], "finite"),
        (["--mi-batch", "0"], "mi_batch must be an integer >= 1"),
        (["--iwae-k", "-1"], "iwae_k must be an integer >= 0"),
        (["--iwae-n", "-1"], "iwae_n must be an integer >= 0"),
        (["--fid-n", "-2"], "fid_n must be an integer >= 0"),
        (["--linear-epochs", "-3"], "linear_epochs must be an integer >= 0"),
        (["--linear-epochs", "-3", "--no-linear"], "linear_epochs must be an integer >= 0"),
        (["--linear-sgd-epochs", "0"], "linear_sgd_epochs must be an integer >= 1"),
        (["--seed", "-1"], "seed must be an integer >= 0"),
        (["--seed", "99999999999999999"], "seed must be at most"),
        (["--threads", "0"], "threads must be an integer >= 1"),
        (["--device", "bogus"], "unknown device 'bogus'"),
    ],
)
def test_bad_eval_option_is_refused_before_any_work(capsys, trained, flags, needle):
    expect_refusal(capsys, ["eval", str(trained), *flags], code=2, needle=needle, root=trained)
    assert not (trained / "metrics.json").exists()


def _edit_checkpoint(run: Path, edit) -> None:
    path = run / CHECKPOINT
    ckpt = torch.load(path, weights_only=True)
    torch.save(edit(ckpt), path)


def _drop_a_weight(ckpt: dict) -> dict:
    ckpt["method"].pop(next(iter(ckpt["method"])))
    return ckpt


def _reshape_a_weight(ckpt: dict) -> dict:
    key = next(k for k, v in ckpt["method"].items() if v.ndim == 2)
    ckpt["method"][key] = torch.zeros(3, 3)
    return ckpt


def _nan_weights(ckpt: dict) -> dict:
    key = next(k for k, v in ckpt["method"].items() if v.is_floating_point())
    ckpt["method"][key] = torch.full_like(ckpt["method"][key], float("nan"))
    return ckpt


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda ckpt: {"weights": torch.zeros(2)}, "not a cvae run checkpoint (missing method"),
        (lambda ckpt: [1, 2, 3], "not a cvae checkpoint (a list"),
        (_drop_a_weight, "missing key"),
        (_reshape_a_weight, "size mismatch"),
        (lambda ckpt: {**ckpt, "config": {"method": "nope"}}, "unknown method"),
        (lambda ckpt: {**ckpt, "image_shape": [1, 5]}, "not a checkpoint this cvae can load"),
        (_nan_weights, "NaN or inf"),
    ],
    ids=["foreign-dict", "list", "missing-key", "wrong-shape", "bad-config", "bad-shape", "nan"],
)
def test_foreign_checkpoint_is_one_line(capsys, run, edit, needle):
    _edit_checkpoint(run, edit)
    expect_refusal(capsys, ["eval", str(run), *FAST_EVAL], code=2, needle=needle, root=run)


def test_unexpected_exception_is_one_line_and_traceback_on_request(capsys, monkeypatch):
    def broken(_args):
        raise ValueError("boom\nsecond line")

    monkeypatch.setitem(cvae.cli.COMMANDS, "presets", broken)
    monkeypatch.delenv("CVAE_TRACEBACK", raising=False)
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "cvae: internal error: ValueError: boom second line "
        "(set CVAE_TRACEBACK=1 for the traceback)"
    ]
    monkeypatch.setenv("CVAE_TRACEBACK", "1")
    assert main(["presets"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in broken" in err


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_ctrl_c_keeps_metrics_computed_so_far(capsys, run, monkeypatch):
    (run / "metrics.json").write_text('{"an": "earlier evaluation"}')

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "view_cosine_similarity", interrupt)
    argv = ["eval", str(run), *FAST_EVAL, "--embedding", "none"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eval interrupted" in err and "Traceback" not in err
    saved = _metrics(run)
    assert saved["complete"] is False
    for name in ("kl", "active_units", "recon_nll", "logreg_standard", "knn_weighted_cosine"):
        assert saved["metrics"][name]["value"] is not None
    assert "view_cosine_within" not in saved["metrics"]
    assert json.loads((run / "metrics.previous.json").read_text()) == {"an": "earlier evaluation"}


def test_failure_in_figures_loses_no_number(capsys, run, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(figures, "save_kl_per_dim", broken)
    assert main(["eval", str(run), *FAST_EVAL, "--embedding", "none"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: figure exploded" in err
    saved = _metrics(run)
    assert saved["complete"] is False
    assert saved["metrics"]["view_cosine_between"]["value"] is not None
    assert saved["metrics"]["logreg_paper"]["protocol"]["feature_name"] == "mu"


def test_eval_without_umap_falls_back_to_tsne(capsys, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` raises ImportError
    assert main(["eval", str(run), *FAST_EVAL, "--embedding", "umap"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "UMAP unavailable" in line]
    assert len(notes) == 1 and "pip install 'cvae[plots]'" in notes[0]
    saved = _metrics(run)
    assert saved["complete"] is True and "tsne" in saved["figures"]
    assert "umap" not in saved["figures"] and any("UMAP unavailable" in n for n in saved["notes"])
    assert (run / "figures" / "tsne.png").stat().st_size > 1000
    assert not (run / "figures" / "umap.png").exists()


def test_ctrl_c_before_any_metric_changes_nothing(capsys, run, monkeypatch):
    (run / "metrics.json").write_text('{"an": "earlier evaluation"}')

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "load", interrupt)
    expect_refusal(capsys, ["eval", str(run)], code=130, needle="is unchanged", root=run)
