"""Data-parallel training on CPU (gloo, 2 processes): the gathered contrastive losses and their
gradients, whole method steps and short training runs equal the single-process ones on the
global batch, and a 2-process checkpoint resumes in 1 process.

All 2-process work happens in ONE ``torch.multiprocessing.spawn`` (starting processes is the
slow part): the workers check losses and steps against single-process references computed in
the same worker, then train; the main test process trains the 1-process references.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.testing import assert_close

import cvae
from cvae.config import RunConfig
from cvae.errors import ConfigError, CvaeError
from cvae.methods import Shard, build_method, resolve
from cvae.objectives import all_gather_grad, barlow_twins, info_nce_queue, nt_xent
from cvae.training import distributed, trainer
from cvae.training.checkpoint import load_checkpoint
from cvae.training.runlog import read_metrics
from cvae.training.trainer import CHECKPOINT, _steps_per_epoch

WORLD = 2
TIMEOUT_S = 240
SHAPE = (1, 8, 8)
TRAIN_METHODS = ("crvae",)  # trained in 2 processes; every method's step is checked in them


def tiny_config(method: str, **train) -> RunConfig:
    cfg = RunConfig(method=method)
    cfg.data.dataset = "digits"
    cfg.model.channels = [8, 16]
    cfg.loss.terms.infonce.queue_size = 20
    cfg.train.batch_size = 25  # odd: shards of 13 and 12 rows
    cfg.train.epoch_fraction = 0.1  # 5 steps per epoch (1294 training images)
    cfg.train.checkpoint_every_steps = 4  # exercises the mid-epoch (summed) checkpoint
    cfg.train.lr = 1e-3
    cfg.train.threads = 1
    cfg.train.progress = False
    cfg.train.tensorboard = False
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg


# --------------------------------------------------------------------------- in the workers


def _check_gather_autograd(rank: int) -> None:
    """Hand-computed: rank 0 holds 3 rows, rank 1 holds 2; loss = sum(w * gathered), w = 1..5.
    Each rank's dloss/dgathered is w; the backward sums it over the 2 ranks: 2 * w[my rows]."""
    rows = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0])][rank]
    x = rows.clone().requires_grad_()
    gathered = all_gather_grad(x)
    assert gathered.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    w = torch.arange(1.0, 6.0)
    (gathered * w).sum().backward()
    assert x.grad.tolist() == [[2.0, 4.0, 6.0], [8.0, 10.0]][rank]


def _check_losses(rank: int) -> None:
    """NT-Xent, Barlow Twins, InfoNCE with a queue: a DDP linear layer on local batches of B=4
    gives the loss and (averaged) gradient of one process on the batch of 2B=8."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen)  # two views of 8 samples, view-major
    queue = nn.functional.normalize(torch.randn(4, 10, generator=gen), dim=0)
    keys = torch.randn(8, 4, generator=gen)
    losses = {
        "ntxent": lambda a, b, g: nt_xent(g(a), g(b), 0.5),
        "barlow": lambda a, b, g: barlow_twins(g(a), g(b)),
        "infonce": lambda a, b, g: info_nce_queue(g(a), keys, queue, 0.1),
    }
    mine = slice(4 * rank, 4 * rank + 4)
    for name, loss_fn in losses.items():
        torch.manual_seed(0)
        single = nn.Linear(6, 4)
        ddp = DistributedDataParallel(copy.deepcopy(single))
        out = single(x)
        ref = loss_fn(out[:8], out[8:], lambda t: t)
        ref.backward()
        local = ddp(torch.cat([x[:8][mine], x[8:][mine]]))
        value = loss_fn(local[:4], local[4:], all_gather_grad)
        value.backward()
        assert_close(value, ref, rtol=1e-5, atol=1e-6, msg=name)
        for p, p_ref in zip(ddp.module.parameters(), single.parameters(), strict=True):
            assert_close(p.grad, p_ref.grad, rtol=1e-5, atol=1e-6, msg=name)


def _check_method_steps(rank: int) -> None:
    """A whole training step of each contrastive method (augmentation, posterior noise, gathered
    terms, MoCo's global key shuffle and queue) on 7 images split 4 + 3: gathered terms equal the
    1-process values, per-process means average to them, gradients and the queue are equal and
    the generators stay in step."""
    images = torch.randint(0, 256, (7, *SHAPE), dtype=torch.uint8, generator=torch.Generator())
    shard = Shard(rank, WORLD, len(images))
    for method_name, global_term in (("cvae", "ntxent"), ("btvae", "barlow"), ("crvae", "infonce")):
        cfg = resolve(tiny_config(method_name), SHAPE)
        torch.manual_seed(0)
        single = build_method(cfg, SHAPE)
        ddp = DistributedDataParallel(copy.deepcopy(single), find_unused_parameters=True)
        gen_ref, gen = (torch.Generator().manual_seed(5) for _ in range(2))
        ref = single(images, gen_ref)
        ref["loss"].backward()
        out = ddp(images[shard.rows], gen, shard=shard)
        out["loss"].backward()
        msg = f"{method_name}"
        assert_close(out[global_term], ref[global_term], rtol=1e-5, atol=1e-6, msg=msg)
        n = shard.sizes[rank]
        for term in ("recon", "kl"):
            mean = out[term].detach() * n / len(images)
            dist.all_reduce(mean)
            assert_close(mean, ref[term].detach(), rtol=1e-5, atol=1e-6, msg=f"{msg} {term}")
        for (key, p), p_ref in zip(ddp.module.named_parameters(), single.parameters(), strict=True):
            if p_ref.grad is not None:
                assert_close(p.grad, p_ref.grad, rtol=1e-4, atol=2e-5, msg=f"{msg} {key}")
        assert torch.equal(gen.get_state(), gen_ref.get_state()), msg
        for key, value in single.state_dict().items():  # the queue, the EMA key encoder
            assert_close(ddp.module.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)


class _Stop(Exception):
    pass


def _train_interrupted(cfg: RunConfig, run_dir: Path, steps: int) -> None:
    """Train, stopping every process before step ``steps + 1`` (a crash after a checkpoint)."""
    real, calls = trainer.train_step, [0]

    def limited(*args, **kwargs):
        if calls[0] == steps:
            raise _Stop
        calls[0] += 1
        return real(*args, **kwargs)

    trainer.train_step = limited
    try:
        cvae.train(cfg, run_dir)
    except _Stop:
        pass
    finally:
        trainer.train_step = real


def _worker(rank: int, port: int, run_root: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        _check_gather_autograd(rank)
        _check_losses(rank)
        _check_method_steps(rank)
        for method in TRAIN_METHODS:
            result = cvae.train(tiny_config(method, epochs=1), Path(run_root) / method)
            assert result.rank == rank and (result.history == []) == (rank != 0)
        _train_interrupted(tiny_config("cvae", epochs=1), Path(run_root) / "mid-epoch", 4)
    finally:
        dist.destroy_process_group()
    os._exit(0)  # success: skip the interpreter's teardown of torch (~15 s on a loaded machine)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(run_root: Path) -> None:
    """Spawn the workers; fail (and kill them) after TIMEOUT_S; no process is left behind."""
    context = mp.spawn(_worker, args=(_free_port(), str(run_root)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"2-process workers still running after {TIMEOUT_S} s")
    finally:
        for proc in context.processes:
            if proc.is_alive():
                proc.kill()
            proc.join()


# --------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    run_two_processes(root)
    return root


@pytest.mark.integration
def test_gathered_losses_steps_and_training_in_two_processes(two_process_runs):
    """The spawned workers assert the loss/gradient equalities; here: they all passed."""
    for method in TRAIN_METHODS:
        assert (two_process_runs / method / CHECKPOINT).is_file()


@pytest.mark.integration
@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_two_process_training_equals_one_process_and_resumes_in_one(
    two_process_runs, tmp_path, method
):
    """Same global batches, same noise: the 2-process weights after an epoch equal the
    1-process ones (up to float summation order), and the 2-process checkpoint continues in one
    process exactly like the 1-process run continues."""
    two = two_process_runs / method
    one = tmp_path / "one"
    cvae.train(tiny_config(method, epochs=1), one)
    a, b = load_checkpoint(one / CHECKPOINT), load_checkpoint(two / CHECKPOINT)
    assert a["method"].keys() == b["method"].keys()
    for key, value in a["method"].items():
        assert_close(b["method"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert a["epoch"] == b["epoch"] == 1
    loss_two = read_metrics(two / "metrics.csv")[0]["train_loss"]
    assert loss_two == pytest.approx(read_metrics(one / "metrics.csv")[0]["train_loss"], rel=1e-4)

    cvae.train(tiny_config(method, epochs=2), one, resume=True)
    cvae.train(tiny_config(method, epochs=2), two, resume=True)
    a, b = load_checkpoint(one / CHECKPOINT), load_checkpoint(two / CHECKPOINT)
    assert b["epoch"] == 2
    for key, value in a["method"].items():
        assert_close(b["method"][key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.integration
def test_mid_epoch_two_process_checkpoint_resumes_in_one_process(two_process_runs, tmp_path):
    """The 2 processes stopped after step 4 of 5, right after a checkpoint: one
    process finishes the epoch with the same batches, noise and epoch sums as an uninterrupted
    1-process epoch."""
    run = two_process_runs / "mid-epoch"
    ckpt = load_checkpoint(run / CHECKPOINT)
    assert (ckpt["epoch"], ckpt["step"], ckpt["sums"]["n"]) == (0, 4, 4 * 25)  # global count
    cvae.train(tiny_config("cvae", epochs=1), run, resume=True)
    one = tmp_path / "one"
    cvae.train(tiny_config("cvae", epochs=1), one)
    a, b = load_checkpoint(one / CHECKPOINT), load_checkpoint(run / CHECKPOINT)
    for key, value in a["method"].items():
        assert_close(b["method"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    (row_b,), (row_a,) = read_metrics(run / "metrics.csv"), read_metrics(one / "metrics.csv")
    for key in ("train_loss", "train_recon", "train_kl", "train_ntxent"):
        assert row_b[key] == pytest.approx(row_a[key], rel=1e-4), key


def test_shard_rows_sizes_and_gradient_share():
    assert Shard(0, 2, 7).sizes == [4, 3]
    assert (Shard(0, 2, 7).rows, Shard(1, 2, 7).rows) == (slice(0, 4), slice(4, 7))
    assert Shard(0, 2, 7).share == pytest.approx(8 / 7)  # 2 * 4 / 7
    assert Shard(1, 2, 7).share == pytest.approx(6 / 7)
    assert Shard(1, 3, 9).rows == slice(3, 6) and Shard(1, 3, 9).share == 1.0


def test_steps_per_epoch_drops_a_last_batch_smaller_than_the_world():
    assert _steps_per_epoch(101, 10, False, 1.0, 1) == 11
    assert _steps_per_epoch(101, 10, False, 1.0, 2) == 10  # last batch of 1 < 2 processes
    assert _steps_per_epoch(102, 10, False, 1.0, 2) == 11
    with pytest.raises(CvaeError, match="< 4 processes"):
        _steps_per_epoch(100, 3, False, 1.0, 4)


def test_single_process_context_and_sync_batchnorm_needs_cuda():
    ctx, device, started = distributed.setup(torch.device("cpu"), Path("run"))
    assert (ctx.rank, ctx.world, ctx.main, ctx.active, started) == (0, 1, True, False, False)
    assert ctx.shard(8) is None
    assert {k: float(v) for k, v in ctx.sum({"a": torch.tensor(2.0), "n": 3.0}).items()} == {
        "a": 2.0,
        "n": 3.0,
    }
    method = build_method(resolve(tiny_config("vae"), SHAPE), SHAPE)
    with pytest.raises(CvaeError, match="sync_batchnorm needs CUDA"):
        distributed.wrap(method, torch.device("cpu"), sync_batchnorm=True)


def test_devices_flag_runs_torchrun_with_the_resolved_command(monkeypatch, tmp_path):
    """`cvae train --devices 2` hands torchrun the config it parsed (a new run) or the resume
    flags, and returns torchrun's exit status."""
    from cvae import cli
    from cvae.config import from_dict, load_yaml, save_yaml

    calls = []

    def fake_run(cmd, check):
        config = cmd[cmd.index("--config") + 1] if "--config" in cmd else None
        calls.append((cmd, from_dict(load_yaml(config)) if config else None))
        return subprocess.CompletedProcess(cmd, 7)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(subprocess, "run", fake_run)
    out = tmp_path / "run"
    args = ["train", "--devices", "2", "--method", "crvae", "--device", "cpu", "--out", str(out)]
    assert cli.main([*args, "--batch-size", "24", "--set", "loss.queue_size=48"]) == 7
    out.mkdir()
    save_yaml(calls[0][1], out / "config.yaml")  # what the (faked) run would have written
    assert cli.main(["train", "--devices", "3", "--resume", str(out), "--epochs", "5"]) == 7
    (new, cfg), (resume, _) = calls
    torchrun = ["-m", "torch.distributed.run", "--standalone"]
    assert new[1:4] == torchrun and resume[1:4] == torchrun
    assert new[4:8] == ["--nproc-per-node=2", "-m", "cvae", "train"]
    assert new[-2:] == ["--out", str(out)]
    assert (cfg.method, cfg.train.batch_size, cfg.loss.terms.infonce.queue_size) == (
        "crvae",
        24,
        48,
    )
    assert resume[4:] == ["--nproc-per-node=3", "-m", "cvae", "train", "--resume", str(out)] + [
        "--epochs",
        "5",
        "--device",
        "cpu",
    ]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(args) == 2  # under torchrun: one-line error, exit 2


def test_compile_with_several_processes_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    """``train.compile`` compiles a one-process step: with ``--devices 2`` (before any process
    starts) or under torchrun (in the trainer) one line and exit 2, nothing trained."""
    from cvae import cli

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("torchrun started"))
    out = tmp_path / "run"
    args = ["train", "--method", "vae", "--device", "cpu", "--out", str(out), "--compile"]
    assert cli.main([*args, "--devices", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.compile runs in one process only" in err[0]
    cfg = resolve(tiny_config("vae", compile=True), SHAPE)
    data, ctx = trainer.data_from_config(cfg), distributed.Context(0, 2)
    with pytest.raises(ConfigError, match="train.compile runs in one process only"):
        trainer._build(cfg, data, ctx, torch.device("cpu"), tmp_path)
    assert not out.exists()


@pytest.mark.integration
def test_cli_devices_2_then_resume_in_one_process(tmp_path):
    """The acceptance path end to end on digits: torchrun with 2 gloo processes, then a
    single-process resume."""
    run = tmp_path / "run"
    common = ["--no-progress", "--set", "train.tensorboard=false"]
    cmd = [sys.executable, "-m", "cvae", "train", "--method", "cvae", "--dataset", "digits"]
    cmd += ["--devices", "2", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]
    cmd += ["--set", "train.epoch_fraction=0.2", "--out", str(run), *common]
    subprocess.run(cmd, check=True, timeout=TIMEOUT_S)
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 1
    resume = [sys.executable, "-m", "cvae", "train", "--resume", str(run), "--epochs", "2"]
    subprocess.run(resume, check=True, timeout=TIMEOUT_S)
    assert [r["epoch"] for r in read_metrics(run / "metrics.csv")] == [1.0, 2.0]
