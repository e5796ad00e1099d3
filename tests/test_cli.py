"""CLI: bad input gives one line on stderr and a non-zero exit, never a traceback."""

import pytest
from badinput import TINY_TRAIN

from cvae.cli import main
from cvae.training.trainer import CHECKPOINT

QUICK = TINY_TRAIN


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "mnist"),
        (["train", "--preset", "no-such-preset"], "unknown preset"),
        (["train", "--set", "train.lr=fast"], "train.lr expects a number"),
        (["train", "--set", "nonsense"], "expects key=value"),
        (["train", "--method", "nope"], "unknown method"),
        (["train", "--dataset", "imagenet"], "unknown dataset"),
        (["train", "--config", "/nonexistent.yaml"], "config file not found"),
        (["train", "--resume", "/nonexistent-run"], "config file not found"),
        (["eval", "/nonexistent-run"], "run directory not found"),
    ],
)
def test_bad_input_is_one_line_error(capsys, argv, needle):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cvae: error:")
    assert needle in err
    assert "Traceback" not in err


def test_corrupt_checkpoint_is_one_line_error(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *QUICK, "--out", str(run))[0] == 0
    (run / CHECKPOINT).write_bytes(b"not a checkpoint")
    code, _, err = run_cli(capsys, "eval", str(run))
    assert code == 2 and "unreadable checkpoint" in err and err.count("\n") == 1


def test_corrupt_mnist_file_names_the_file(capsys, tmp_path, mnist_dir):
    for f in mnist_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    code, _, err = run_cli(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path))
    assert code == 2 and "t10k-labels-idx1-ubyte.gz" in err and err.count("\n") == 1


def test_resume_refuses_config_changes(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", *QUICK, "--out", str(run))[0] == 0
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--lr", "0.1")
    assert code == 2 and "only --epochs" in err
    code, out, _ = run_cli(capsys, "train", "--resume", str(run), "--epochs", "2")
    assert code == 0 and "trained 2 epochs" in out


def test_presets_listing(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0 and "cvae-mnist-paper" in out and "vae-cifar10-code" in out


def test_help_for_every_command(capsys):
    for cmd in ("train", "eval", "demo", "presets"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
    assert "--resume" in capsys.readouterr().out
