"""Multiply-adds per training step, achieved multiply-adds per second, and this CPU's peak.

For each preset: the multiply-adds of one full training step (augmented views, forward, loss,
backward, clip, optimizer; counted by ``torch.utils.flop_counter.FlopCounterMode``, which counts
convolutions and matrix products, forward and backward, as 2 FLOPs per multiply-add; counted with
the direct kernels, so the model's own products, not a faster form's extra ones), the median
step time over ``--steps`` steps as the trainer runs them (wall and CPU time of this process, on
synthetic uint8 images of the preset's shape), and the achieved rate next to the peak: the rate
of a large matmul (``--matmul`` square, in the step's precision) with the same thread count.
``--precision fp32 bf16`` adds rows under bf16 autocast (the trainer's ``train.precision=bf16``:
convolutions and matrix products in bf16, losses and weights fp32), against the bf16 matmul peak.

    python benchmarks/step_flops.py --threads 1 --steps 20 --precision fp32 bf16

On a machine shared with other jobs the wall rate drops with the load; the CPU-time rate is
what the process got done per second of CPU it was given.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from cvae.config import load_preset
from cvae.methods import build_method, resolve
from cvae.networks import kernels
from cvae.training.trainer import build_optimizer, place, train_step

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
PRESETS = {
    "cvae-mnist-paper": (1, 28, 28),
    "cvae-cifar10-paper": (3, 32, 32),
    "crvae-mnist-code": (1, 28, 28),
}


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` (after one warm-up call)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def peak_macs(size: int, dtype: torch.dtype, repeats: int = 5) -> tuple[float, float]:
    """Multiply-adds per second of a ``size``-square matmul in ``dtype``: (wall, CPU) rates."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    wall, cpu = timed(lambda: a @ b, repeats)
    return size**3 / wall, size**3 / cpu


def preset_step(preset: str, precision: str) -> tuple[Callable[[], None], torch.nn.Module, int]:
    """One training step of ``preset`` as the trainer runs it (synthetic uint8 images of its
    shape, 4 batches in turn), the method it trains, and its batch size."""
    shape = PRESETS[preset]
    cfg = resolve(load_preset(preset), shape)
    bs = cfg.train.batch_size
    torch.manual_seed(0)
    method = place(build_method(cfg, shape), torch.device("cpu"))
    opt = build_optimizer(cfg.train, method.parameters())
    data = torch.randint(0, 256, (bs * 4, *shape), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    batches = iter(range(10**9))

    def step() -> None:
        i = next(batches) % 4
        train_step(method, opt, data[i * bs : (i + 1) * bs], gen, cfg.train.grad_clip, autocast)

    return step, method, bs


def step_macs(preset: str, steps: int, precision: str) -> dict[str, float]:
    step, _, bs = preset_step(preset, precision)
    step()
    # the plain kernels while counting: the model's own multiply-adds, not the extra border
    # products of the sub-pixel form (cvae.networks.kernels), which are overhead
    with FlopCounterMode(display=False) as counter, kernels.plain_kernels():
        step()
    macs = counter.get_total_flops() / 2
    wall, cpu = timed(step, steps)
    return {"batch": bs, "macs": macs, "wall": wall, "cpu": cpu}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--matmul", type=int, default=2048)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=list(DTYPES))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    peaks = {prec: peak_macs(args.matmul, DTYPES[prec]) for prec in args.precision}
    for prec, (wall, cpu) in peaks.items():
        print(f"threads {args.threads}: {prec} {args.matmul}^3 matmul peak {wall / 1e9:.1f} GMAC/s "
              f"wall, {cpu / 1e9:.1f} GMAC/s per CPU second")  # fmt: skip
    print("| preset | precision | batch | MMAC/step | step ms (wall / CPU) | images/s | GMAC/s "
          "(wall / CPU) | of peak (wall / CPU) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for preset in args.presets:
        for prec in args.precision:
            r = step_macs(preset, args.steps, prec)
            rate_w, rate_c = r["macs"] / r["wall"], r["macs"] / r["cpu"]
            peak_wall, peak_cpu = peaks[prec]
            print(f"| {preset} | {prec} | {r['batch']} | {r['macs'] / 1e6:.0f} | "
                  f"{1e3 * r['wall']:.1f} / {1e3 * r['cpu']:.1f} | {r['batch'] / r['wall']:.0f} | "
                  f"{rate_w / 1e9:.2f} / {rate_c / 1e9:.2f} | {100 * rate_w / peak_wall:.1f}% / "
                  f"{100 * rate_c / peak_cpu:.1f}% |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
