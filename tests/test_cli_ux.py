"""The CLI explains itself: fast help without torch, --version, help and defaults on every option,
one --set vocabulary, a start-of-run header, epoch lines without bars, eval progress."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cvae
from cvae.cli import SET_ALIASES, build_parser, main

EVAL_CHEAP = ["--embedding", "none", "--iwae-k", "0", "--no-linear", "--fid-n", "0"]
TRAIN = [
    "train", "--dataset", "digits", "--threads", "1", "--no-progress",
    "--set", "model.channels=[8,16]", "--set", "train.tensorboard=false",
]  # fmt: skip


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"]])
def test_help_imports_neither_torch_nor_sklearn(argv):
    code = (
        "import sys\nfrom cvae.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'sklearn', 'numpy', 'yaml') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[-1] == "HEAVY []"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cvae {cvae.__version__}"


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    commands = _subparsers(parser)
    assert set(commands) >= {"train", "eval", "demo", "presets", "compare", "sweep", "reproduce"}
    missing = [
        f"{name} {action.dest}"
        for name, sub in [("cvae", parser), *commands.items()]
        for action in sub._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_help_shows_defaults(capsys):
    for argv in (["eval", "--help"], ["sweep", "--help"], ["demo", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 200)" in out  # eval --knn-k
    assert "(default: 0)" in out  # eval --seed: a falsy default is still shown
    assert "(default: 1)" in out  # sweep --jobs
    assert "(default: 40)" in out  # demo --epochs
    assert "(default: None)" not in out and "(default: False)" not in out


def test_set_aliases_cover_every_train_flag():
    parser = _subparsers(build_parser())["train"]
    flags = {o.lstrip("-") for a in parser._actions for o in a.option_strings}
    assert {"epochs", "batch-size", "batch_size", "lambda", "lr", "beta"} <= set(SET_ALIASES)
    assert {k for k in SET_ALIASES if "_" not in k} <= flags


def test_train_header_set_alias_and_epoch_lines_without_bars(capsys, tmp_path):
    run = tmp_path / "run"
    assert main([*TRAIN, "--set", "epochs=2", "--set", "batch-size=64", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["batch_size"] == 64
    assert out.count("run dir:") == 1 and str(run) in out
    header = out.split("epoch 1/2")[0]
    for needle in ("method: vae", "data: digits 1x8x8 (train ", "device: cpu, 1 threads", "seed 0"):
        assert needle in header
    assert "epoch 1/2 train_" in out and "epoch 2/2 train_" in out  # --no-progress keeps them


def test_sweep_and_train_share_the_aliases(capsys, tmp_path):
    argv = ["sweep", "--dry-run", "--set", "epochs=1,2", "--set", "lambda=0.5", "--out"]
    assert main([*argv, str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "| train.epochs=1 | 1 |" in out and "| train.epochs=2 | 2 |" in out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ux") / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("tty", [True, False])
def test_eval_progress_on_a_terminal_only(capsys, monkeypatch, trained, tty):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    assert main(["eval", str(trained), *EVAL_CHEAP]) == 0
    err = capsys.readouterr().err
    assert ("eval: knn_weighted_cosine (" in err) is tty
    assert ("eval: figure samples (" in err) is tty
    assert ("eval: encode (" in err) is tty
    # every stage's seconds are in metrics.json, terminal or not
    stages = json.loads((trained / "metrics.json").read_text())["timing"]["stages"]
    assert list(stages)[:3] == ["load", "encode", "kl"] and "figure samples" in stages
    assert all(s["seconds"] >= 0 and s["cpu_seconds"] >= 0 for s in stages.values())


def test_eval_no_progress(capsys, monkeypatch, trained):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["eval", str(trained), *EVAL_CHEAP, "--no-progress"]) == 0
    assert "eval: " not in capsys.readouterr().err
