"""Training throughput and peak memory of the CVAE paper's configurations on synthetic data.

For each configuration it times (a) the full training step exactly as the trainer runs it
(index slice of the on-device uint8 dataset, two augmented views, forward, loss, backward, clip,
Adam) and (b) the model's own part alone (forward, loss, backward, clip, Adam on views prepared
beforehand), and reports images/second (each image counted once, not once per view) and the share
of step time spent outside the model: 1 - (b)/(a).

    python benchmarks/train_throughput.py --threads 2 --steps 30
    python benchmarks/train_throughput.py --threads 1 --processes 2   # DDP, gloo/nccl

With ``--processes N`` the same global batch is split over N DistributedDataParallel processes
(CPU: gloo; CUDA: nccl, one GPU each) exactly as ``cvae train --devices N`` does; images/s then
counts the global batch and (b) is not measured.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cvae.config import load_preset
from cvae.methods import build_method, resolve
from cvae.training import distributed
from cvae.training.trainer import place, resolve_device, train_step

CONFIGS = {
    "mnist": ("cvae-mnist-paper", (1, 28, 28)),
    "cifar10": ("cvae-cifar10-paper", (3, 32, 32)),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name: str, device: torch.device, steps: int, precision: str) -> dict[str, float]:
    preset, shape = CONFIGS[name]
    cfg = resolve(load_preset(preset), shape)
    bs = cfg.train.batch_size
    ctx, device, _ = distributed.setup(device, Path(__file__).resolve().parent)
    torch.manual_seed(0)
    method = place(build_method(cfg, shape), device)
    ddp = distributed.wrap(method, device, sync_batchnorm=False) if ctx.active else None
    opt = torch.optim.Adam(method.parameters(), lr=cfg.train.lr)
    data = torch.randint(0, 256, (bs * 8, *shape), dtype=torch.uint8, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    perm = torch.randperm(len(data), device=device)
    shard = ctx.shard(bs)

    def full(i: int) -> None:
        idx = perm[(i % 8) * bs : (i % 8 + 1) * bs]
        idx = idx if shard is None else idx[shard.rows]
        train_step(method, opt, data[idx], gen, cfg.train.grad_clip, autocast, shard, ddp)

    def model_only(step) -> None:
        with autocast:
            out = method.loss(step)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(method.parameters(), cfg.train.grad_clip)
        opt.step()

    for i in range(3):
        full(i)
    t_full, t_model = [], []
    for i in range(steps):
        sync(device)
        t0 = time.perf_counter()
        full(i)
        sync(device)
        t_full.append(time.perf_counter() - t0)
        if ctx.active:
            t_model.append(float("nan"))
            continue
        step = method.make_step(data[perm[(i % 8) * bs : (i % 8 + 1) * bs]], gen, train=True)
        sync(device)
        t0 = time.perf_counter()
        model_only(step)
        sync(device)
        t_model.append(time.perf_counter() - t0)
    full_s, model_s = statistics.median(t_full), statistics.median(t_model)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS
    return {
        "batch": bs,
        "step_ms": 1000 * full_s,
        "model_ms": 1000 * model_s,
        "images_per_s": bs / full_s,
        "outside_share": max(0.0, 1 - model_s / full_s),
        "peak_mib": peak,
    }


def _worker(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    for name in args.configs:
        r = bench(name, device, args.steps, args.precision)
        if rank == 0:
            print(
                f"| {name} CVAE | {r['batch']} | {r['step_ms']:.1f} | - | "
                f"{r['images_per_s']:.0f} | - | {r['peak_mib']:.0f} |",
                flush=True,
            )
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--processes", type=int, default=1, help="DDP processes (threads each)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mem = "peak GPU MiB" if device.type == "cuda" else "peak RSS MiB (process)"
    print(
        f"device={device} threads={args.threads} precision={args.precision} steps={args.steps} "
        f"processes={args.processes}"
    )
    print(f"| config | batch | step ms | model fwd+bwd+opt ms | images/s | outside model | {mem} |")
    print("|---|---|---|---|---|---|---|", flush=True)
    if args.processes > 1:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(_worker, args=(args.processes, port, args), nprocs=args.processes)
        return
    for name in args.configs:
        r = bench(name, device, args.steps, args.precision)
        print(
            f"| {name} CVAE | {r['batch']} | {r['step_ms']:.1f} | {r['model_ms']:.1f} | "
            f"{r['images_per_s']:.0f} | {100 * r['outside_share']:.0f}% | {r['peak_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
