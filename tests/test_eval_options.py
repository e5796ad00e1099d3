"""One evaluation config: the `cvae eval` flags are generated from EvalConfig, and the Python
API and the CLI check the same ranges."""

from __future__ import annotations

import dataclasses

import pytest
from badinput import expect_refusal

from cvae.cli import build_parser
from cvae.errors import CvaeError
from cvae.evaluation.evaluate import evaluate
from cvae.evaluation.options import EvalConfig, from_args, from_argv, to_argv


def test_cli_defaults_are_the_config_defaults():
    args = build_parser().parse_args(["eval", "RUN"])
    assert from_args(args) == EvalConfig()
    no_linear = from_args(build_parser().parse_args(["eval", "RUN", "--no-linear"]))
    assert (no_linear.linear_epochs, no_linear.run_linear_sgd) == (0, False)


def test_every_field_has_a_flag():
    parser = build_parser()
    for f in dataclasses.fields(EvalConfig):
        if f.type in ("int", "float"):
            value = "3"
        elif f.name == "fid_dims":
            value = "64"
        else:
            continue
        flag = "--" + f.name.replace("_", "-")
        cfg = from_args(parser.parse_args(["eval", "RUN", flag, value]))
        assert getattr(cfg, f.name) == type(f.default)(value), f.name
    args = parser.parse_args(["eval", "RUN", "--no-linear-sgd", "--embedding", "none"])
    assert from_args(args).run_linear_sgd is False and from_args(args).embedding == "none"


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"knn_k": 0}, "knn_k must be an integer >= 1"),
        ({"knn_k": 2.5}, "knn_k must be an integer"),
        ({"knn_temperature": float("nan")}, "finite"),
        ({"embedding": "pca"}, "embedding must be one of"),
        ({"fid_dims": 100}, "fid_dims must be one of 64, 2048"),
        ({"iwae_samples": 3}, "unknown evaluation options ['iwae_samples']"),
    ],
)
def test_api_refuses_what_the_cli_refuses_before_any_work(tmp_path, options, needle):
    with pytest.raises(CvaeError) as err:
        evaluate(tmp_path / "no-such-run", **options)  # refused before the run is looked at
    assert needle in str(err.value)


def test_argv_round_trip_and_the_cli_agree(tmp_path):
    assert to_argv(EvalConfig()) == []
    for cfg in (
        EvalConfig(embedding="none", knn_k=7, knn_temperature=0.05, run_linear_sgd=True),
        EvalConfig(run_linear_sgd=False, fid_weights=tmp_path / "w.pt", fid_dims=64, seed=3),
    ):
        argv = to_argv(cfg)
        assert from_argv(argv) == cfg
        assert from_args(build_parser().parse_args(["eval", "RUN", *argv])) == cfg
    assert to_argv(EvalConfig(run_linear_sgd=False)) == ["--no-linear-sgd"]
    assert from_argv(["--no-linear"]) == EvalConfig(linear_epochs=0, run_linear_sgd=False)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--embedding", "pca"], "invalid choice: 'pca'"),
        (["--threads", "2"], "unknown eval options: --threads 2"),
        (["--knn-k", "0"], "knn_k must be an integer >= 1"),
    ],
)
def test_from_argv_refuses_in_one_line(argv, needle):
    with pytest.raises(CvaeError) as err:
        from_argv(argv)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_sweep_checks_its_eval_args_before_anything_runs(capsys, tmp_path):
    argv = [
        "sweep",
        "vae-mnist-paper",
        "--set",
        "train.epochs=1",
        "--out",
        str(tmp_path / "s"),
        "--eval",
    ]
    expect_refusal(
        capsys, [*argv, "--eval-args=--embedding pca"], code=2, needle="pca", root=tmp_path
    )
