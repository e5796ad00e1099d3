"""Images/second of the batched augmentation presets: cvae.augmentations vs kornia 0.9.

    python benchmarks/augment_throughput.py --threads 2 --repeats 20

MNIST preset at batch 128 (1x28x28), CIFAR preset at batch 256 (3x32x32). Each repeat times
every implementation once, in turn, so background load affects both alike; the table reports the
median over repeats after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import Tensor

from cvae.augmentations import build_augment

try:
    import kornia.augmentation as K
except ImportError:
    sys.exit("this benchmark compares with kornia: pip install 'cvae[bench]' (or kornia>=0.7)")

CASES = {  # preset -> (batch, channels, size)
    "cvae-mnist": (128, 1, 28),
    "cvae-cifar": (256, 3, 32),
}


def kornia_pipeline(preset: str, size: int) -> K.AugmentationSequential:
    """The kornia equivalent of a preset (kornia draws from torch's global RNG)."""
    if preset == "cvae-mnist":
        ops = [
            K.RandomResizedCrop((size, size), scale=(0.8, 1.0)),
            K.RandomRotation(15.0, p=1.0),
            K.RandomAffine(degrees=0.0, translate=(0.1, 0.1), p=1.0),
        ]
    else:
        ops = [
            K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
            K.RandomHorizontalFlip(p=0.5),
            K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=1.0),
            K.RandomGrayscale(p=0.2),
        ]
    return K.AugmentationSequential(*ops)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator(device).manual_seed(0)

    rows = []
    for preset, (batch, channels, size) in CASES.items():
        x = torch.rand(batch, channels, size, size, device=device)
        ours, theirs = build_augment(preset), kornia_pipeline(preset, size)
        impls: dict[str, Callable[[Tensor], Tensor]] = {
            "cvae": lambda x, ours=ours: ours(x, generator),
            "kornia": theirs,
        }
        times: dict[str, list[float]] = {name: [] for name in impls}
        for i in range(args.warmup + args.repeats):
            for name, fn in impls.items():
                sync(device)
                start = time.perf_counter()
                fn(x)
                sync(device)
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - start)
        for name, ts in times.items():
            median = statistics.median(ts)
            rows.append((preset, f"{batch}x{channels}x{size}x{size}", name, median, batch / median))

    threads, version = torch.get_num_threads(), torch.__version__
    print(f"device {device}, {threads} threads, median of {args.repeats}, torch {version}")
    print()
    print("| preset | batch | impl | ms/batch | images/s |")
    print("|---|---|---|---:|---:|")
    for preset, shape, name, median, rate in rows:
        print(f"| {preset} | {shape} | {name} | {median * 1e3:.2f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
