"""cvae.networks.kernels' fast paths vs the plain oneDNN ops, layer by layer and for a whole
training step, in one process, round-robin.

For each preset: every conv / transposed conv of the model at the shape the training step feeds
it (both views for the encoder), forward + backward CPU ms with the fast paths on (as shipped:
the sub-pixel form for few channels, the unfused bias of transposed convolutions) and off (the
plain ops); then the median CPU ms of whole training steps (synthetic uint8 images), alternating
the two settings. ``--precision bf16`` runs under bf16 autocast (where the sub-pixel form is off).

    python benchmarks/conv_kernels.py --threads 1 --steps 20 --precision fp32 bf16
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from step_flops import PRESETS, preset_step
from torch import nn

from cvae.networks import kernels
from cvae.networks.conv import PaddedConvTranspose2d

LAYERS = (kernels.FastConv2d, kernels.FastConvTranspose2d, PaddedConvTranspose2d)


def cpu_ms(fn: Callable[[], object], repeats: int, fast: bool) -> float:
    """Median CPU ms of ``fn()`` (after one warm-up call), the fast paths on or off."""
    with nullcontext() if fast else kernels.plain_kernels():
        fn()
        times = []
        for _ in range(repeats):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
    return 1e3 * statistics.median(times)


def layer_shapes(method: nn.Module, batch: torch.Tensor) -> list[tuple[str, nn.Module, torch.Size]]:
    """(name, layer, input shape) of every strided layer in one training step."""
    seen: list[tuple[str, nn.Module, torch.Size]] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, a, n=n: seen.append((n, m, a[0].shape)))
        for n, m in method.named_modules()
        if isinstance(m, LAYERS)
    ]
    method(batch, torch.Generator().manual_seed(0))
    for h in hooks:
        h.remove()
    return seen


def bench_preset(preset: str, steps: int, precision: str) -> None:
    step, method, bs = preset_step(preset, precision)
    shape = PRESETS[preset]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    batch = torch.randint(0, 256, (bs, *shape), dtype=torch.uint8)
    print(f"{preset}, {precision}\n| layer | input | plain ms | fast paths ms |\n|---|---|---|---|")
    for name, layer, in_shape in layer_shapes(method, batch):
        x = torch.randn(in_shape).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(in_shape[1] != shape[0])  # the first layer's input needs no grad

        def fwd_bwd(layer: nn.Module = layer, x: torch.Tensor = x) -> None:
            with autocast:
                y = layer(x)
            y.float().sum().backward()

        reps = max(3, steps // 2)
        plain, fast = cpu_ms(fwd_bwd, reps, False), cpu_ms(fwd_bwd, reps, True)
        print(f"| {name} | {'x'.join(map(str, in_shape))} | {plain:.2f} | {fast:.2f} |")
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(steps):
        for fast_on in (False, True):
            times[fast_on].append(cpu_ms(step, 1, fast_on))
    plain, fast = statistics.median(times[False]), statistics.median(times[True])
    print(f"\nwhole step (median of {steps}, alternating): plain {plain:.1f} ms, fast paths "
          f"{fast:.1f} ms ({plain / fast:.2f}x)\n", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    p.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    small = kernels.SMALL_CHANNELS
    print(f"{args.threads} thread(s); fast paths: the sub-pixel form for <= {small} channels in "
          "the transposed direction, unfused transposed-conv bias; CPU ms, forward + "
          "backward\n")  # fmt: skip
    for preset in args.presets:
        for precision in args.precision:
            bench_preset(preset, args.steps, precision)


if __name__ == "__main__":
    main()
