"""`cvae train` on bad input and faults: exit 2 (bad input) or 3 (divergence), one line on stderr,
no traceback, and every file present before the call byte-identical after it."""

from __future__ import annotations

import builtins
import errno
import os
import pickle
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from badinput import TINY_TRAIN, expect_refusal, private_copy, train_tiny

from cvae.cli import main
from cvae.errors import CvaeError
from cvae.training import checkpoint as checkpoint_module
from cvae.training.checkpoint import BEST, CHECKPOINT, all_finite, load_checkpoint, save_checkpoint
from cvae.training.rundir import RunDir
from cvae.training.runlog import read_metrics

QUICK = TINY_TRAIN
ONE_STEP = [*QUICK, "--batch-size", "4096"]  # digits in one step per epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("trained"), "--batch-size", "4096")


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    return private_copy(trained, tmp_path)


# --------------------------------------------------------------------------- config values


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--set", "train.weight_decay=-1"], "train.weight_decay must be >= 0"),
        (["--set", "train.optimizer=sgd", "--set", "train.momentum=-1"], "train.momentum"),
        (
            ["--set", "train.optimizer=sgd", "--set", "train.momentum=0"]
            + ["--set", "train.nesterov=true"],
            "nesterov",
        ),
        (["--set", "train.plateau_factor=2"], "train.plateau_factor"),
        (["--set", "loss.stages=[{epochs: 1, weights: 5}]"], "loss.stages[0]"),
        (["--set", "loss.stages=[{epochs: 1, weights: {kl: x}}]"], "expects a number"),
        (["--device", "bogus"], "train.device"),
        (["--seed", "99999999999999999"], "train.seed"),
        (["--seed", "-1"], "train.seed"),
        (["--set", "data.split_seed=99999999999999999"], "data.split_seed"),
        (["--method", "cvae", "--set", "model.projection=[]"], "projection"),
        (["--lr", "inf"], "train.lr must be a finite number"),
        (["--beta", "nan"], "loss.terms.kl.weight must be a finite number"),
        (["--set", "train.grad_clip=nan"], "train.grad_clip must be a finite number"),
        (["--set", "loss.log_scale=-inf"], "loss.terms.recon.log_scale"),
        (["--set", "loss.stages=[{epochs: 1, weights: {kl: .inf}}]"], "loss.stages"),
        (["--set", "train.min_lr=-1"], "train.min_lr"),
    ],
)
def test_bad_config_value_is_refused_before_anything_is_loaded(capsys, tmp_path, argv, needle):
    out = tmp_path / "run"
    expect_refusal(capsys, ["train", *QUICK, *argv, "--out", str(out)], code=2, needle=needle,
                   root=tmp_path)  # fmt: skip
    assert not out.exists()


def test_split_leaving_no_training_images_is_a_config_error(capsys, tmp_path):
    argv = ["train", *QUICK, "--set", "data.val_fraction=0.9999", "--out", str(tmp_path / "r")]
    expect_refusal(capsys, argv, code=2, needle="no training images", root=tmp_path)
    assert not (tmp_path / "r").exists()


def test_non_utf8_yaml_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"train: {lr: \xff\xfe}\n")
    argv = ["train", "--config", str(bad), "--out", str(tmp_path / "r")]
    expect_refusal(capsys, argv, code=2, needle="UTF-8", root=tmp_path)


def test_failed_torch_compile_is_one_line(capsys, tmp_path, monkeypatch):
    """``--compile`` where torch.compile cannot build its kernels (e.g. no C++ compiler): one line
    naming the option and the reason, exit 2."""
    from torch._dynamo.exc import BackendCompilerFailed

    def broken(fn):
        def call(*args):
            raise BackendCompilerFailed(fn, RuntimeError("no C++ compiler found\nmore"), None)

        return call

    monkeypatch.setattr(torch, "compile", broken)
    argv = ["train", *QUICK, "--compile", "--out", str(tmp_path / "r")]
    line = expect_refusal(capsys, argv, code=2, needle="train.compile", root=tmp_path)
    assert "no C++ compiler found" in line and "without it" in line


# --------------------------------------------------------------------------- divergence


def test_huge_lr_stops_with_exit_3_and_writes_no_checkpoint(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", *ONE_STEP, "--lr", "1e30", "--out", str(out)]
    line = expect_refusal(capsys, argv, code=3, needle="no checkpoint was written", root=tmp_path)
    assert "kept" not in line
    assert not (out / CHECKPOINT).exists()


def _poison_step(monkeypatch: pytest.MonkeyPatch, at_call: int) -> None:
    """The optimizer update of the ``at_call``-th step (1-based) makes a weight NaN; the loss
    of that step, computed before the update, stays finite."""
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def step(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> Any:
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at_call:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step)


def test_nan_update_of_an_epochs_last_step_is_never_checkpointed(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _poison_step(monkeypatch, at_call=2)  # epoch 2's only (and last) step
    argv = ["train", *ONE_STEP, "--epochs", "2", "--out", str(out)]
    line = expect_refusal(capsys, argv, code=3, needle="the weights became non-finite",
                          root=tmp_path)  # fmt: skip
    assert f"last good checkpoint kept at {out / CHECKPOINT}" in line
    ckpt = load_checkpoint(out / CHECKPOINT)
    assert ckpt["epoch"] == 1 and all_finite(ckpt["method"]) and all_finite(ckpt["optimizer"])
    assert [r["epoch"] for r in read_metrics(out / "metrics.csv")] == [1.0]


def test_nan_update_before_the_first_checkpoint_says_none_was_written(
    capsys, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    _poison_step(monkeypatch, at_call=1)
    argv = ["train", *ONE_STEP, "--out", str(out)]
    expect_refusal(capsys, argv, code=3, needle="no checkpoint was written", root=tmp_path)
    assert not (out / CHECKPOINT).exists()


def test_nan_update_before_a_mid_epoch_checkpoint_is_not_written(capsys, tmp_path, monkeypatch):
    out = tmp_path / "run"
    _poison_step(monkeypatch, at_call=2)  # the step that a mid-epoch checkpoint follows
    argv = ["train", *QUICK, "--batch-size", "64", "--set", "train.checkpoint_every_steps=2"]
    expect_refusal(capsys, [*argv, "--out", str(out)], code=3, needle="no checkpoint was written",
                   root=tmp_path)  # fmt: skip
    assert not (out / CHECKPOINT).exists()


# --------------------------------------------------------------------------- resume


def _edit_config(run: Path, key: str, value: object) -> None:
    data = yaml.safe_load((run / "config.yaml").read_text())
    *sections, leaf = key.split(".")
    node = data
    for section in sections:
        node = node[section]
    node[leaf] = value
    (run / "config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("train.lr", 0.5),
        ("method", "cvae"),
        ("model.latent_dim", 3),
        ("data.dataset", "synthetic"),
        ("loss.terms.kl.weight", 2.0),
    ],
)
def test_resume_refuses_an_edited_config(capsys, run, key, value):
    _edit_config(run, key, value)
    line = expect_refusal(capsys, ["train", "--resume", str(run)], code=2,
                          needle="differs from the run's checkpoint", root=run)  # fmt: skip
    assert key in line


def _write_foreign(run: Path, kind: str) -> None:
    path = run / CHECKPOINT
    ckpt = load_checkpoint(path)
    if kind == "not-a-run":
        ckpt = {"state_dict": ckpt["method"]}
    elif kind == "missing-keys":
        del ckpt["rng"], ckpt["sums"]
    elif kind == "wrong-type":
        ckpt["epoch"] = "one"
    elif kind == "missing-weights":
        ckpt["method"].pop(next(iter(ckpt["method"])))
    elif kind == "wrong-shapes":
        key = next(k for k, v in ckpt["method"].items() if v.ndim > 1)
        ckpt["method"][key] = torch.zeros(3, 3)
    elif kind == "optimizer":
        ckpt["optimizer"] = {"state": {}, "param_groups": []}
    elif kind == "tensor":
        ckpt = torch.zeros(3)
    torch.save(ckpt, path)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("not-a-run", "not a cvae run checkpoint (missing"),
        ("missing-keys", "missing sums, rng"),
        ("wrong-type", "bad epoch"),
        ("missing-weights", "model state does not fit"),
        ("wrong-shapes", "model state does not fit"),
        ("optimizer", "optimizer state does not fit"),
        ("tensor", "not a cvae checkpoint"),
    ],
)
def test_resume_refuses_a_foreign_checkpoint(capsys, run, kind, needle):
    _write_foreign(run, kind)
    expect_refusal(capsys, ["train", "--resume", str(run)], code=2, needle=needle, root=run)


def test_raw_pickle_checkpoint_is_refused_without_unsafe_advice(capsys, run):
    (run / CHECKPOINT).write_bytes(pickle.dumps({"x": Path("a")}))
    line = expect_refusal(capsys, ["train", "--resume", str(run)], code=2,
                          needle="not loaded for safety", root=run)  # fmt: skip
    assert "weights_only" not in line


@pytest.mark.parametrize(
    "content",
    [
        b"epoch,train_loss\n1,0.5,extra\n",
        b"epoch,train_loss\n1\n",
        b"train_loss\n0.5\n",
        b"epoch,train_loss\none,0.5\n",
        b"epoch,train_loss\n\xff\xfe,0.5\n",
        b"epoch,train_loss\n1,0\x00.5\n",
    ],
)
def test_resume_refuses_a_malformed_metrics_file(capsys, run, content):
    (run / "metrics.csv").write_bytes(content)
    expect_refusal(capsys, ["train", "--resume", str(run), "--epochs", "2"], code=2,
                   needle="malformed metrics file", root=run)  # fmt: skip


def test_resume_with_non_utf8_config_is_one_line(capsys, run):
    (run / "config.yaml").write_bytes(b"method: \xff\n")
    expect_refusal(capsys, ["train", "--resume", str(run)], code=2, needle="UTF-8", root=run)


def test_resume_cleans_temp_files_of_an_interrupted_write(capsys, run):
    leftovers = [run / "checkpoints" / ".last.pt.k1b2x9", run / "metrics.csv.tmp"]
    for path in leftovers:
        path.write_bytes(b"partial")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert not any(p.exists() for p in leftovers)
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 2


# --------------------------------------------------------------------------- the run directory


def test_out_refuses_a_folder_that_is_not_a_run(capsys, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.yaml").write_text("my: notes\n")
    (out / "metrics.csv").write_text("a,b\n1,2\n")
    expect_refusal(capsys, ["train", *QUICK, "--out", str(out)], code=2,
                   needle="is not a cvae run", root=tmp_path)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "metrics.csv"]


def test_out_refuses_a_finished_run(capsys, run):
    expect_refusal(capsys, ["train", *QUICK, "--out", str(run)], code=2,
                   needle="already holds a run", root=run)  # fmt: skip


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_train_into_a_locked_run_is_refused(capsys, run, tmp_path, resume):
    target = run if resume else tmp_path / "new"
    holder = RunDir(target)
    holder.lock()  # as a running `cvae train` holds it
    try:
        argv = ["train", *(["--resume", str(run)] if resume else [*QUICK, "--out", str(target)])]
        expect_refusal(capsys, argv, code=2, needle="in use by another cvae train", root=tmp_path)
    finally:
        holder.release()
    assert not (tmp_path / "new" / "config.yaml").exists()


def test_full_disk_names_the_checkpoint_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"a": torch.ones(2)}, path)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "fsync", full)
    with pytest.raises(CvaeError, match=f"{path}: cannot write checkpoint .No space left"):
        save_checkpoint({"a": torch.zeros(2)}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_full_disk_during_training_is_one_line_naming_the_file(capsys, tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.os, "fsync", full)
    out = tmp_path / "run"
    needle = f"{out / BEST}: cannot write checkpoint"  # best.pt is written before last.pt
    expect_refusal(capsys, ["train", *ONE_STEP, "--out", str(out)], code=2, needle=needle,
                   root=tmp_path)  # fmt: skip


# --------------------------------------------------------------------------- Ctrl-C


def _interrupt(*args: object, **kwargs: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_written(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("cvae.training.trainer.data_from_config", _interrupt)
    argv = ["train", *QUICK, "--out", str(tmp_path / "run")]
    line = expect_refusal(capsys, argv, code=130, needle="interrupted; no checkpoint was written",
                          root=tmp_path)  # fmt: skip
    assert "resume" not in line


def test_ctrl_c_of_a_resumed_run_says_how_to_resume(capsys, run, monkeypatch):
    monkeypatch.setattr("cvae.training.trainer.data_from_config", _interrupt)
    expect_refusal(capsys, ["train", "--resume", str(run), "--epochs", "2"], code=130,
                   needle=f"kept (resume with `cvae train --resume {run}`)", root=run)  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_the_import_of_torch_waits_for_the_import(
    capsys, tmp_path, monkeypatch, signum, ctrl_c
):
    """An import interrupted halfway leaves torch or numpy half-initialised; the interrupt (Ctrl-C
    or a `kill`) is held back until the import is complete, then reported as one line."""
    real_import = builtins.__import__
    completed: list[str] = []

    def interrupted_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "cvae.training":
            os.kill(os.getpid(), signum)
            module = real_import(name, *args, **kwargs)
            completed.append(name)  # not reached if the interrupt is raised at once
            return module
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    argv = ["train", *QUICK, "--out", str(tmp_path / "run")]
    previous = signal.getsignal(signal.SIGTERM)
    expect_refusal(capsys, argv, code=130, needle="interrupted", root=tmp_path)
    assert completed == ["cvae.training"]
    assert signal.getsignal(signal.SIGTERM) is previous  # main() restores what it changed
