"""Training steps of this checkout and of an earlier commit, side by side in one process.

On a machine whose speed drifts by 10-30% between processes, only timings taken in one process,
interleaved, resolve a change of a few percent. This loads ``--base``'s ``src/cvae`` as a second
package (``cvae_base``: extracted with ``git archive``, its ``cvae`` imports renamed), builds the
preset's method and optimizer with each package from the same seed, and times blocks of
``--block`` training steps (``train_step`` as the trainer runs it, on the same synthetic uint8
batches) round-robin, ``--rounds`` blocks per side. It first runs ``--check`` steps of each and
says whether their losses and weights are bit-identical, or how far apart they are.

    python benchmarks/step_ab.py --base 6246c92 --threads 1
    python benchmarks/step_ab.py --base 6246c92 --threads 2 --preset crvae-mnist-code --block 2
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
# what refers to the package by name: imports, and importlib.resources lookups of its presets
RENAME = re.compile(r"\b(from|import)\s+cvae\b|files\(\"cvae\"\)")


def extract_base(commit: str, into: Path) -> None:
    """``commit``'s ``src/cvae`` as the package ``into/cvae_base``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "src/cvae"],
                             check=True, capture_output=True).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / "cvae_base"
    (into / "src" / "cvae").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text()
        path.write_text(RENAME.sub(lambda m: m.group(0).replace("cvae", "cvae_base"), text))


def build(package: str, preset: str, shape: tuple[int, int, int]) -> tuple[Callable[[], Any], Any]:
    """A training step of ``preset`` with ``package``'s code (seed 0, 4 synthetic batches in
    turn) and the method it trains."""
    config = importlib.import_module(f"{package}.config")
    methods = importlib.import_module(f"{package}.methods")
    trainer = importlib.import_module(f"{package}.training.trainer")
    cfg = methods.resolve(config.load_preset(preset), shape)
    bs = cfg.train.batch_size
    torch.manual_seed(0)
    method = trainer.place(methods.build_method(cfg, shape), torch.device("cpu"))
    optimizer = trainer.build_optimizer(cfg.train, method.parameters())
    data = torch.randint(0, 256, (4 * bs, *shape), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cpu", enabled=False)
    count = iter(range(10**12))

    def step() -> Any:
        i = next(count) % 4
        images = data[i * bs : (i + 1) * bs]
        return trainer.train_step(method, optimizer, images, gen, cfg.train.grad_clip, autocast)

    return step, method


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--preset", default="cvae-mnist-paper")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=25, help="timed blocks per side")
    p.add_argument("--block", type=int, default=8, help="steps per timed block")
    p.add_argument("--check", type=int, default=3, help="steps compared before timing")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    shape = SHAPES["cifar10" if "cifar10" in args.preset else "mnist"]
    with tempfile.TemporaryDirectory() as tmp:
        extract_base(args.base, Path(tmp))
        sys.path.insert(0, tmp)
        sys.path.insert(0, str(ROOT / "src"))
        sides = {f"base {args.base}": build("cvae_base", args.preset, shape),
                 "this checkout": build("cvae", args.preset, shape)}  # fmt: skip
    (base_step, base_method), (new_step, new_method) = sides.values()
    gap = 0.0
    for _ in range(args.check):
        gap = max(
            gap, abs(float(base_step()["loss"].detach()) - float(new_step()["loss"].detach()))
        )
    weights = max(
        float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
        for a, b in zip(
            base_method.state_dict().values(), new_method.state_dict().values(), strict=True
        )  # fmt: skip
    )
    if gap == 0.0 and weights == 0.0:
        verdict = "bit-identical losses and weights"
    else:
        verdict = f"largest loss gap {gap:.3g}, largest weight gap {weights:.3g}"
    print(f"{args.preset}, {args.threads} thread(s), first {args.check} steps: {verdict}")
    times: dict[str, list[float]] = {side: [] for side in sides}
    for _ in range(args.rounds):
        for side, (step, _) in sides.items():
            start = time.perf_counter()
            for _ in range(args.block):
                step()
            times[side].append((time.perf_counter() - start) / args.block * 1e3)
    for side, ms in times.items():
        print(f"{side}: median {statistics.median(ms):.2f} ms per step "
              f"(blocks {min(ms):.2f}-{max(ms):.2f})")  # fmt: skip
    old, new = (statistics.median(ms) for ms in times.values())
    ratios = sorted(b / n for b, n in zip(*times.values(), strict=True))
    print(f"speed-up {old / new:.3f}x (per-round ratios {ratios[0]:.2f}-{ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
