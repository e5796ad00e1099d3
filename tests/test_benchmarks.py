"""The benchmark scripts still run against today's code (they are not imported by the package,
so nothing else would notice an API change under them), and the CIFAR-10 pickle writer writes
what the canonical loaders read."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvae.data.cifar import safe_unpickle

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def _run(*argv: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for key in ("PEER_VENV", "PEER_MIRROR", "PEER_CIFAR"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_cifar_pickle_writes_the_canonical_batches(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    rng = np.random.default_rng(0)
    pixels = {}
    for name in ("cat", "airplane"):
        (folder / name).mkdir(parents=True)
        for i in range(3):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(img).save(folder / name / f"{i}.png")  # lossless: exact pixels
            (folder / name / f"{i}.png").rename(folder / name / f"{i}.jpg")
            pixels[(name, i)] = img
    _run(str(BENCH / "cifar_pickle.py"), "--folder", str(folder), "--out", str(tmp_path / "out"))
    batch = safe_unpickle(tmp_path / "out" / "data_batch_1")
    assert isinstance(batch, dict)
    data, labels = batch[b"data"], batch[b"labels"]
    assert data.shape == (6, 3072) and data.dtype == np.uint8
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]  # classes sorted: airplane 0, cat 1
    want = {img.transpose(2, 0, 1).tobytes() for img in pixels.values()}  # CHW rows
    assert {row.tobytes() for row in data} == want
    with open(tmp_path / "out" / "batches.meta", "rb") as f:
        assert pickle.load(f)[b"label_names"] == [b"airplane", b"cat"]


def test_side_by_side_pairs_each_round_with_the_reference_run_beside_it() -> None:
    """Ratios 2x and 4x: geometric mean sqrt(8) = 2.83x; log ratios ln 2, ln 4 have sd
    ln(2) / sqrt(2), so the t(1 df, 0.975 = 12.706) half-width is 12.706 * ln(2) / 2 on the log
    scale: exp(ln sqrt(8) -+ 4.404) = 0.03-231.22x."""
    spec = importlib.util.spec_from_file_location("side_by_side", BENCH / "side_by_side.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ours = [{"images": 200.0, "train_s": 1.0}, {"images": 400.0, "train_s": 1.0}]
    ref = [{"images": 300.0, "train_s": 3.0}, {"images": 50.0, "train_s": 0.5}]
    assert module.paired_ratio(ours, ref) == (
        "geometric mean 2.83x over 2 rounds, 95% t-interval 0.03-231.22x, rounds 2.00-4.00x"
    )
    assert module.paired_ratio(ours[:1], ref[:1]) == (
        "geometric mean 2.00x over 1 rounds, rounds 2.00-2.00x"
    )


@pytest.mark.integration
def test_benchmark_scripts_run(mnist_dir: Path, tmp_path: Path) -> None:
    out = _run(str(BENCH / "side_by_side.py"), "--threads", "1", "--repeats", "1",
               "--max-batches", "2", "--precision", "bf16")  # fmt: skip
    assert "reference skipped: PEER_VENV" in out and "| 1 |" in out and "ours in bf16" in out
    out = _run(str(BENCH / "train_throughput.py"), "--threads", "1", "--steps", "1")
    assert "| mnist CVAE | 128 |" in out
    out = _run(str(BENCH / "step_flops.py"), "--threads", "1", "--steps", "1", "--matmul", "64",
               "--presets", "cvae-mnist-paper", "--precision", "fp32", "bf16")  # fmt: skip
    assert "| cvae-mnist-paper | fp32 | 128 | 217 |" in out
    assert "| cvae-mnist-paper | bf16 | 128 |" in out
    out = _run(str(BENCH / "conv_kernels.py"), "--threads", "1", "--steps", "1",
               "--presets", "cvae-mnist-paper")  # fmt: skip
    assert "| model.decoder.net.4 | 128x8x12x12 |" in out and "whole step" in out
    out = _run(str(BENCH / "vs_commit.py"), "--base", "HEAD", "--preset", "cvae-mnist-paper",
               "--epoch-fraction", "0.005", "--repeats", "1")  # fmt: skip
    assert "cvae-mnist-paper, 1 thread(s)" in out and "images/s (" in out
    out = _run(str(BENCH / "step_ab.py"), "--base", "HEAD", "--rounds", "1", "--block", "1",
               "--check", "2")  # fmt: skip
    assert "cvae-mnist-paper, 1 thread(s), first 2 steps:" in out and "speed-up" in out
    src_as_committed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src"],
                                      cwd=REPO).returncode == 0  # fmt: skip
    if src_as_committed:  # the same code loaded twice trains identically
        assert "bit-identical losses and weights" in out
    out = _run(str(BENCH / "memmap_rss.py"), "--sizes", "500", "--dir", str(tmp_path / "mm"))
    assert "memmap" in out
