"""Multi-process data-parallel training (DistributedDataParallel) and its launcher.

Every process (one per GPU, or several on a CPU) holds the whole uint8 dataset on its device and
takes its contiguous rows (:class:`cvae.methods.base.Shard`) of each *global* batch; the global
batch order depends only on (seed, epoch), so it is the same for any number of processes.
Processes are started by ``torchrun`` (or ``cvae train --devices N``, which runs it), which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cvae.config import RunConfig, save_yaml
from cvae.errors import ConfigError, CvaeError
from cvae.methods import Method
from cvae.methods.base import Shard


@dataclass(frozen=True)
class Context:
    """This process's place in the job: ``rank`` of ``world`` processes (1: not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, total: int) -> Shard | None:
        """This process's rows of a global batch of ``total`` images (None: not distributed)."""
        return Shard(self.rank, self.world, total) if self.active else None

    def sum(self, values: dict[str, torch.Tensor | float]) -> dict[str, torch.Tensor]:
        """Sum each value over processes (one collective; every process must pass the same keys).
        Returns new float tensors, the inputs are untouched."""
        keys = sorted(values)
        if not keys:
            return {}
        device = next((v.device for v in values.values() if torch.is_tensor(v)), None)
        stacked = torch.stack([torch.as_tensor(values[k], device=device).float() for k in keys])
        if self.active:
            dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return dict(zip(keys, stacked.unbind(), strict=True))

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def setup(device: torch.device, run_dir: Path) -> tuple[Context, torch.device, bool]:
    """Join (or start) the process group; returns the context, this process's device and
    whether the group was started here (the caller then destroys it at the end).

    An initialised group is used as is; else ``WORLD_SIZE > 1`` in the environment starts one
    (backend nccl on CUDA, gloo on CPU; on several machines too, see docs/distributed.md). On
    CUDA each process takes ``cuda:LOCAL_RANK``. Every process must name the same ``run_dir``.
    """
    started = False
    if not (dist.is_available() and dist.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return Context(), device, False
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    try:
        ctx = Context(dist.get_rank(), dist.get_world_size())
        if device.type == "cuda" and ctx.active:
            local = int(os.environ.get("LOCAL_RANK", ctx.rank))
            if local >= torch.cuda.device_count():
                raise CvaeError(
                    f"process {ctx.rank} needs cuda:{local}; only "
                    f"{torch.cuda.device_count()} GPUs are visible"
                )
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        if ctx.active:
            check_same_run_dir(run_dir)
    except BaseException:
        if started:
            dist.destroy_process_group()
        raise
    return ctx, device, started


def check_same_run_dir(run_dir: Path) -> None:
    """Refuse (on every process) a job whose processes name different run directories: rank 0
    writes the run, and every process reads a resumed checkpoint from it, so on several
    machines it must lie on a filesystem they share, under the same path (one collective)."""
    paths: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(paths, str(run_dir.absolute()))
    if len(set(paths)) > 1:
        named = ", ".join(f"rank {r}: {p}" for r, p in enumerate(paths))
        raise CvaeError(
            f"the processes name different run directories ({named}); pass the same --out "
            "(a path on a filesystem every machine shares)"
        )


def wrap(method: Method, device: torch.device, sync_batchnorm: bool) -> nn.Module:
    """``method`` (already on ``device``) in DistributedDataParallel: gradients are averaged over
    processes during ``backward``. ``sync_batchnorm``: BatchNorm statistics over the global batch
    (torch's SyncBatchNorm: CUDA only). Parameters that a step leaves unused (a term switched
    off by a stage, a fixed-scale likelihood) are allowed."""
    if sync_batchnorm:
        if device.type != "cuda":
            raise CvaeError(
                "train.sync_batchnorm needs CUDA (torch's SyncBatchNorm has no CPU "
                "kernel); set it to false on CPU"
            )
        nn.SyncBatchNorm.convert_sync_batchnorm(method)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(method, device_ids=ids, find_unused_parameters=True)


def check_compile(cfg: RunConfig, processes: int) -> None:
    """``train.compile`` compiles a one-process step: refused for several processes."""
    if cfg.train.compile and processes > 1:
        raise ConfigError("train.compile runs in one process only; drop it or train with 1 device")


def launch_train(cfg: RunConfig, run_dir: Path, resume: bool, devices: int) -> int:
    """``cvae train`` in ``devices`` processes on this machine: runs ``torchrun --standalone
    --nproc-per-node devices -m cvae train ...`` (free rendezvous port) with ``cfg`` (a new run:
    written to a temporary YAML file) or ``--resume run_dir``; returns its exit status."""
    if devices < 1:
        raise CvaeError(f"--devices must be >= 1, got {devices}")
    if "WORLD_SIZE" in os.environ:
        raise CvaeError("--devices starts its own processes; under torchrun/srun leave it out")
    check_compile(cfg, devices)
    if _max_processes(cfg) < devices:
        raise CvaeError(f"--devices {devices} > {torch.cuda.device_count()} visible GPUs")
    with tempfile.TemporaryDirectory(prefix="cvae-launch-") as tmp:
        if resume:
            args = ["--resume", str(run_dir), "--epochs", str(cfg.train.epochs)]
            args += ["--device", cfg.train.device]
            if cfg.train.threads:
                args += ["--threads", str(cfg.train.threads)]
        else:
            save_yaml(cfg, Path(tmp) / "config.yaml")
            args = ["--config", str(Path(tmp) / "config.yaml"), "--out", str(run_dir)]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={devices}", "-m", "cvae", "train", *args]  # fmt: skip
        return subprocess.run(cmd, check=False).returncode


def _max_processes(cfg: RunConfig) -> int:
    """Processes the config's device allows on this machine: the GPUs for CUDA, any on CPU."""
    name = cfg.train.device
    cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    return torch.cuda.device_count() if cuda else sys.maxsize
