"""A library changes nothing global: importing any module leaves matplotlib's backend alone, and
training restores torch's thread count."""

import os
import subprocess
import sys

import torch

import cvae
from cvae.config import RunConfig


def test_importing_every_module_changes_no_global_setting():
    code = (
        "import importlib, pkgutil, matplotlib, torch, cvae\n"
        "backend, threads = matplotlib.rcParams['backend'], torch.get_num_threads()\n"
        "for m in pkgutil.walk_packages(cvae.__path__, 'cvae.'):\n"
        "    if m.name not in ('cvae.__main__',):\n"
        "        importlib.import_module(m.name)\n"
        "assert matplotlib.rcParams['backend'] == backend, matplotlib.rcParams['backend']\n"
        "assert torch.get_num_threads() == threads\n"
        "print('ok')\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}  # a user's choice that an import must not undo
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_train_restores_the_thread_count(tmp_path):
    before = torch.get_num_threads()
    cfg = RunConfig()
    cfg.data.dataset = "digits"
    cfg.model.channels = [8, 16]
    cfg.train.epochs = 1
    cfg.train.threads = 1 if before != 1 else 2
    cfg.train.tensorboard = cfg.train.progress = False
    cvae.train(cfg, tmp_path / "run")
    assert torch.get_num_threads() == before


def test_torch_threads_bounds_torch_and_blas_then_restores_both():
    from threadpoolctl import threadpool_info, threadpool_limits

    from cvae.threads import torch_threads

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    with threadpool_limits(limits=2, user_api="blas"):  # the caller's settings
        torch.set_num_threads(2)
        before = blas()
        with torch_threads(1):
            assert torch.get_num_threads() == 1 and set(blas()) <= {1}
        assert torch.get_num_threads() == 2 and blas() == before
