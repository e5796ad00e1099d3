"""The training loop. Read it top to bottom: setup, (resume), epochs of steps, validation, log,
checkpoint. Whole datasets live on the training device as uint8 (or, with ``data.memmap``, in a
cache file each batch is read from); batches are index slices.

Under ``torchrun`` (several processes) each process takes its rows of every global batch and
trains through DistributedDataParallel; rank 0 alone logs, validates and writes checkpoints
(see :mod:`cvae.training.distributed` and docs/distributed.md).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from cvae import tracking
from cvae.config import RunConfig, TrainConfig, changed_keys, from_plain, save_yaml
from cvae.data import DataSplits, load_data
from cvae.data.memmap import MemmapImages
from cvae.errors import ConfigError, CvaeError
from cvae.methods import Method, build_method, check_config, resolve
from cvae.methods.base import Shard
from cvae.threads import torch_threads
from cvae.training import distributed
from cvae.training.allocator import keep_freed_memory
from cvae.training.checkpoint import CHECKPOINT, Checkpointer, all_finite, load_run_checkpoint
from cvae.training.rundir import RunDir
from cvae.training.runlog import METRICS, RunLog, completed_rows
from cvae.training.schedule import LRSchedule
from cvae.training.stats import EpochStats

NAN_CHECK_EVERY = 25  # steps between finiteness checks (each one syncs the device)


@dataclass
class TrainResult:
    run_dir: Path
    config: RunConfig
    epochs_completed: int
    history: list[dict[str, Any]]
    """Rows of metrics.csv (empty on processes other than rank 0)."""
    rank: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CvaeError(f"device '{name}' requested but CUDA is not available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None


def data_from_config(cfg: RunConfig) -> DataSplits:
    d = cfg.data
    c, h, w = d.synthetic_shape  # three entries (validated)
    data = load_data(
        d.dataset,
        d.data_dir,
        download=d.download,
        image_size=d.image_size,
        val_fraction=d.val_fraction,
        split_seed=d.split_seed,
        test_fraction=d.test_fraction,
        memmap=d.memmap,
        cache_dir=d.cache_dir,
        synthetic_shape=(c, h, w),
        synthetic_size=d.synthetic_size,
    )
    return data if d.channels is None else data.with_channels(d.channels)


def epoch_generator(seed: int, epoch: int, stream: int, device: torch.device) -> torch.Generator:
    """A generator that depends only on (seed, epoch, stream): resuming needs no replay."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch * 1009 + stream)


RESUMABLE_KEYS = frozenset(
    {"train.epochs", "train.device", "train.threads", "train.progress", "train.compile",
     "train.loggers", "data.download", "data.data_dir", "data.memmap", "data.cache_dir"}
)  # fmt: skip
"""Config keys a resumed run may change (how and how long it runs, where its data lies)."""


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    data: DataSplits | None = None,
) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue the run there with ``resume=True``).

    Data-parallel when started by torchrun (or inside an initialised process group): the
    checkpoint is the same as a single process writes, so either can resume the other.
    """
    check_config(cfg)
    tracking.check_available(cfg.train.loggers)  # a missing package: refused before any write
    ctx, device, started = distributed.setup(resolve_device(cfg.train.device), Path(run_dir))
    guard = RunDir(Path(run_dir))
    try:
        with torch_threads(cfg.train.threads):
            return _train(cfg, guard, resume, data, ctx, device)
    finally:
        guard.release()
        if started:
            dist.destroy_process_group()


def _open_run(
    cfg: RunConfig, guard: RunDir, resume: bool, main: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Check the run directory before anything is loaded or written; lock it when it exists.
    Returns the checkpoint to resume from (None for a new run) and the kept metrics rows."""
    run_dir = guard.path
    if not resume:
        guard.check_new()
    elif not (run_dir / CHECKPOINT).is_file():
        raise CvaeError(f"{run_dir / CHECKPOINT}: checkpoint not found; nothing to resume")
    if main and run_dir.is_dir():
        guard.lock()
    if not resume:
        return None, []
    ckpt = load_run_checkpoint(run_dir / CHECKPOINT)
    shape = tuple(ckpt["image_shape"])
    saved = resolve(from_plain(ckpt["config"]), shape)  # keys added since it was saved: defaults
    changed = [k for k in changed_keys(saved, resolve(cfg, shape)) if k not in RESUMABLE_KEYS]
    if changed:
        raise ConfigError(
            f"{run_dir}: the config differs from the run's checkpoint in {', '.join(changed)}; "
            "a resumed run trains as it started (restore config.yaml or start a new run)"
        )
    if not all_finite(ckpt["method"]):
        raise CvaeError(f"{run_dir / CHECKPOINT} holds non-finite weights; it cannot be resumed")
    rows = completed_rows(run_dir / METRICS, ckpt["epoch"]) if main else []
    return ckpt, rows


@dataclass
class _Loop:
    """What the epochs step, built once per run (see :func:`_build`)."""

    cfg: RunConfig
    ctx: distributed.Context
    device: torch.device
    method: Method
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    saver: Checkpointer
    train_x: torch.Tensor | MemmapImages
    val_x: torch.Tensor | MemmapImages
    steps: int
    """Global batches per epoch."""
    ddp: nn.Module | None
    autocast: torch.autocast


def _train(
    cfg: RunConfig,
    guard: RunDir,
    resume: bool,
    data: DataSplits | None,
    ctx: distributed.Context,
    device: torch.device,
) -> TrainResult:
    run_dir, tc = guard.path, cfg.train
    ckpt, rows = _open_run(cfg, guard, resume, ctx.main)
    data, cfg = _data_for_run(cfg, data, ckpt, run_dir)
    loop = _build(cfg, data, ctx, device, run_dir)
    epoch, step, sums, gen_state = loop.saver.restore(ckpt) if ckpt else (0, 0, {}, None)
    if ctx.main:  # every check passed: the first write
        guard.lock()
        _write_run_files(run_dir, cfg, data.train.shape, data.info)
        print(_header(cfg, data, device, run_dir, epoch, ctx.world), flush=True)
    log = None
    if ctx.main:
        params = tracking.flatten(cfg.to_dict())
        trackers = tracking.open_trackers(run_dir, params, tc.loggers, tc.tensorboard, epoch)
        log = RunLog(run_dir, trackers, rows)
    failed = True
    try:
        while epoch < tc.epochs:
            t0 = time.perf_counter()
            stats = _train_epoch(loop, epoch, step, sums, gen_state)
            loop.saver.check_finite(f"after epoch {epoch + 1}")  # before its row is logged
            row = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in stats.means().items()}}
            if log is not None:  # the main process validates and logs
                row.update(_validation_row(loop, epoch))
                seconds = time.perf_counter() - t0
                row.update(lr=loop.optimizer.param_groups[0]["lr"], seconds=round(seconds, 3))
                row["images_per_sec"] = round((loop.steps - step) * tc.batch_size / seconds, 1)
                log.log(row, print_summary=True, epochs=tc.epochs)
            loop.schedule.on_epoch(row["train_loss"])
            epoch, step, sums, gen_state = epoch + 1, 0, {}, None
            if "val_loss" in row:  # before last.pt, which records the best so far
                loop.saver.save_best(epoch, row["val_loss"])
            if epoch % tc.checkpoint_every == 0 or epoch == tc.epochs:
                loop.saver.save(epoch, 0, None, {})
        ctx.barrier()  # every process returns once the last checkpoint is written
        failed = False
    finally:
        if log is not None:
            log.close(failed)
    return TrainResult(run_dir, cfg, epoch, [] if log is None else log.rows, ctx.rank)


def _build(
    cfg: RunConfig, data: DataSplits, ctx: distributed.Context, device: torch.device, run_dir: Path
) -> _Loop:
    """The method (seeded init), the data on the device, optimizer, LR schedule, checkpointer."""
    tc, shape = cfg.train, data.train.shape
    distributed.check_compile(cfg, ctx.world)
    torch.manual_seed(tc.seed)
    method = place(build_method(cfg, shape), device)
    train_x, val_x = data.train.images.to(device), data.val.images.to(device)
    steps = _steps_per_epoch(
        len(train_x), tc.batch_size, tc.drop_last, tc.epoch_fraction, ctx.world
    )
    optimizer = build_optimizer(tc, method.parameters())
    schedule = LRSchedule(tc, optimizer, steps)
    saver = Checkpointer(run_dir / CHECKPOINT, method, optimizer, schedule, cfg.to_dict(),
                         list(shape), writer=ctx.main)  # fmt: skip
    if tc.compile:
        method.compile_loss(tc.batch_size)
    ddp = distributed.wrap(method, device, tc.sync_batchnorm) if ctx.active else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")
    return _Loop(cfg, ctx, device, method, optimizer, schedule, saver, train_x, val_x, steps,
                 ddp, autocast)  # fmt: skip


def place(method: Method, device: torch.device) -> Method:
    """``method`` on ``device``; on the CPU its 4-d weights channels-last, on which oneDNN's
    convolutions run faster (the same sums, float rounding aside).

    Channels-last strides are set explicitly, also where a size-1 dimension makes a tensor both
    contiguous and channels-last (``contiguous(memory_format=...)`` would keep it as it is): a
    ``[8, 1, 4, 4]`` weight with contiguous strides makes oneDNN return a 1-channel input's
    convolution in NCHW, and the ReLU after it then runs its backward 40x slower on mixed formats.
    On the CPU, glibc's malloc also keeps freed memory for the next step
    (:func:`cvae.training.allocator.keep_freed_memory`).
    """
    method = method.to(device)
    if device.type == "cpu":
        keep_freed_memory()
        for tensor in (*method.parameters(), *method.buffers()):
            if tensor.dim() == 4:
                cl = torch.empty_like(tensor.data, memory_format=torch.channels_last)
                tensor.data = cl.copy_(tensor.data)
    return method


def _train_epoch(
    loop: _Loop,
    epoch: int,
    start_step: int,
    sums: dict[str, float],
    gen_state: torch.Tensor | None,
) -> EpochStats:
    """Steps ``start_step..`` of ``epoch``: batches of a permutation seeded by (seed, epoch), one
    optimisation step each, the loss checked for finiteness every ``NAN_CHECK_EVERY`` steps,
    mid-epoch checkpoints every ``train.checkpoint_every_steps``."""
    tc, bs, ctx = loop.cfg.train, loop.cfg.train.batch_size, loop.ctx
    loop.method.train()
    cpu = torch.device("cpu")
    n = len(loop.train_x)
    perm = torch.randperm(n, generator=epoch_generator(tc.seed, epoch, 0, cpu)).to(loop.device)
    gen = epoch_generator(tc.seed, epoch, 1, loop.device)
    if start_step and gen_state is not None:
        gen.set_state(gen_state)
    stats = EpochStats(ctx, loop.device, sums)
    bar = _progress_bar(loop.steps, start_step, epoch, tc, ctx.main)
    for step in range(start_step, loop.steps):
        idx = perm[step * bs : (step + 1) * bs]
        shard = ctx.shard(len(idx))
        if shard is not None:
            idx = idx[shard.rows]
        loop.method.epoch_progress = epoch + step / loop.steps
        out = train_step(loop.method, loop.optimizer, loop.train_x[idx], gen, tc.grad_clip,
                         loop.autocast, shard, loop.ddp)  # fmt: skip
        loop.schedule.on_step()
        stats.add(out, len(idx))
        done = step + 1
        mid_ckpt = tc.checkpoint_every_steps and done % tc.checkpoint_every_steps == 0
        if mid_ckpt or done % NAN_CHECK_EVERY == 0 or done == loop.steps:
            if not stats.loss_finite():  # all processes stop together
                loop.saver.diverged("the loss", f"by epoch {epoch + 1} step {done}")
            bar.set_postfix(loss=f"{float(out['loss'].detach()):.4g}")
        if mid_ckpt:
            loop.saver.save(epoch, done, gen.get_state(), stats.totals())
        bar.update()
    bar.close()
    loop.method.after_epoch()
    return stats


def _validation_row(loop: _Loop, epoch: int) -> dict[str, float]:
    """``val_<term>`` means on the validation split; a non-finite one is divergence."""
    val = validate(loop.method, loop.val_x, loop.cfg.train.batch_size, loop.cfg.train.seed)
    if not all(map(math.isfinite, val.values())):
        loop.saver.diverged("the validation loss", f"after epoch {epoch + 1}")
    return {f"val_{k}": v for k, v in val.items()}


def _data_for_run(
    cfg: RunConfig, data: DataSplits | None, ckpt: dict[str, Any] | None, run_dir: Path
) -> tuple[DataSplits, RunConfig]:
    """The run's data and its config resolved for the data's image shape."""
    data = data if data is not None else data_from_config(cfg)
    shape = data.train.shape
    if ckpt is not None and list(shape) != list(ckpt["image_shape"]):
        raise CvaeError(
            f"{run_dir}: the data's images are {list(shape)}, the run's {ckpt['image_shape']}"
        )
    if len(data.train.images) == 0:
        raise ConfigError(
            f"no training images (data.val_fraction={cfg.data.val_fraction} of "
            f"{len(data.val.images)} images goes to validation)"
        )
    return data, resolve(cfg, shape)


def _header(
    cfg: RunConfig, data: DataSplits, device: torch.device, run_dir: Path, epoch: int, world: int
) -> str:
    """The start-of-run block: what is trained, on what, where, for how long."""
    tc = cfg.train
    test = "none" if data.test is None else len(data.test)
    sizes = f"train {len(data.train)}, val {len(data.val)}, test {test}"
    start = f"from epoch {epoch} to {tc.epochs}" if epoch else f"{tc.epochs}"
    processes = f" x {world} processes" if world > 1 else ""
    lines = {
        "method": f"{cfg.method} (preset: {cfg.preset or 'none'})",
        "data": f"{data.name} {'x'.join(map(str, data.train.shape))} ({sizes})",
        "device": f"{device}{processes}, {torch.get_num_threads()} threads, {tc.precision}"
        + (", compiled (the first full batch compiles the loss: 5-30 s)" if tc.compile else ""),
        "epochs": f"{start}, batch {tc.batch_size}, lr {tc.lr:g}, seed {tc.seed}",
        "run dir": str(run_dir),
    }
    return "\n".join(f"{k:>8}: {v}" for k, v in lines.items())


def _write_run_files(
    run_dir: Path, cfg: RunConfig, shape: tuple[int, int, int], info: dict[str, Any]
) -> None:
    save_yaml(cfg, run_dir / "config.yaml")
    (run_dir / "data.json").write_text(
        json.dumps({"image_shape": list(shape), **info}, indent=2, default=str)
    )


def _progress_bar(total: int, initial: int, epoch: int, tc: TrainConfig, main: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        desc=f"epoch {epoch + 1}/{tc.epochs}",
        disable=not (tc.progress and main and sys.stderr.isatty()),
        leave=False,
    )


def train_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    generator: torch.Generator,
    grad_clip: float | None,
    autocast: torch.autocast,
    shard: Shard | None = None,
    ddp: nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step on a uint8 batch; returns the (attached) loss terms.

    Data-parallel: ``images`` are this process's ``shard`` of the global batch and the forward
    pass goes through ``ddp`` (the DistributedDataParallel wrapper of ``method``), whose
    ``backward`` averages the gradients over processes.
    """
    with autocast:
        out = (ddp or method)(images, generator, shard=shard)
    optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(method.parameters(), grad_clip, foreach=True)
    optimizer.step()
    return out


def build_optimizer(tc: TrainConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD or Adam with the fused update (one kernel over every parameter, CPU and CUDA): SGD's is
    bit-identical to the per-parameter loop, Adam's equal up to float rounding (tested); the MNIST
    CVAE step ran 23.8 -> 22.6 ms with it (README, speed)."""
    if tc.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=tc.lr,
            momentum=tc.momentum,
            nesterov=tc.nesterov,
            weight_decay=tc.weight_decay,
            fused=True,
        )
    return torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay, fused=True)


def _steps_per_epoch(n: int, batch_size: int, drop_last: bool, fraction: float, world: int) -> int:
    """Global batches per epoch. With ``world`` processes every process needs >= 1 image of each
    batch: a last partial batch smaller than ``world`` is dropped."""
    if batch_size < world:
        raise CvaeError(f"train.batch_size {batch_size} (global) < {world} processes")
    steps = n // batch_size if drop_last else math.ceil(n / batch_size)
    if not drop_last and 0 < n % batch_size < world:
        steps -= 1
    steps = max(1, int(steps * fraction))
    if drop_last and n < batch_size:
        raise CvaeError(f"train.drop_last with {n} training images < batch size {batch_size}")
    return steps


@torch.no_grad()
def validate(
    method: Method, images: torch.Tensor | MemmapImages, batch_size: int, seed: int
) -> dict[str, float]:
    """Mean of every term on clean (un-augmented) validation images, fixed noise seed."""
    if len(images) == 0:
        return {}
    was_training = method.training
    method.eval()
    gen = epoch_generator(seed, 0, 2, images.device)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        for key, value in method(batch, gen, train=False).items():
            sums[key] = sums.get(key, 0.0) + value.float() * len(batch)
    method.train(was_training)
    return {k: float(v) / len(images) for k, v in sums.items()}
