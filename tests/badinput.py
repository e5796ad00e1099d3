"""Harness for the bad-input tests: a refused call exits with the right code, prints one line on
stderr and no traceback, and leaves every file that existed before it byte-identical."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from cvae.cli import main

TINY_TRAIN = [
    "--dataset", "digits", "--epochs", "1", "--no-progress", "--threads", "1",
    "--set", "model.channels=[8,16]", "--set", "train.tensorboard=false",
]  # fmt: skip
"""`cvae train` flags for a run of a few seconds on the bundled digits."""


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def expect_refusal(
    capsys: pytest.CaptureFixture[str],
    argv: Sequence[str],
    *,
    code: int,
    needle: str,
    root: Path,
) -> str:
    """Run ``cvae ARGV`` in-process; assert the refusal contract; return the stderr line."""
    before = snapshot(root)
    got = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, f"exit {got} != {code}; stderr: {err!r}"
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert "Traceback" not in err
    assert needle.lower() in err.lower(), f"{needle!r} not in {err!r}"
    after = snapshot(root)
    changed = [k for k in before if after.get(k) != before[k]]
    assert not changed, f"files changed or removed by a refused call: {changed}"
    return lines[0]


def train_tiny(folder: Path, *extra: str) -> Path:
    """A finished ``TINY_TRAIN`` run (plus ``extra`` flags) in ``folder/run``."""
    run = folder / "run"
    assert main(["train", *TINY_TRAIN, *extra, "--out", str(run)]) == 0
    return run


def private_copy(run: Path, folder: Path) -> Path:
    """A copy of ``run`` for a test that writes into it."""
    return Path(shutil.copytree(run, folder / "run"))
