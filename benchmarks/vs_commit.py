"""Train one epoch of a preset with this checkout's code and with an earlier commit's, alternating.

How much faster is the code now than it was at ``--base``? Each round runs ``cvae train`` (one
epoch, ``--threads N``, the data under ``../shared/data``) in a fresh process per side: the base
commit from a temporary ``git worktree`` (its ``src`` first on ``PYTHONPATH``, this venv's
packages), then this checkout. It reads each run's epoch seconds and images/s from its
``metrics.csv`` (the trainer's own timing: the epoch's steps plus its validation pass, the same
work on both sides) and prints the medians and the ratio.

    python benchmarks/vs_commit.py --base 6bc189d --preset crvae-mnist-code --threads 1
    python benchmarks/vs_commit.py --base 6bc189d --preset cvae-cifar10-paper --epoch-fraction 0.25
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def data_args(preset: str) -> list[str]:
    """The preset's dataset under ../shared/data (CIFAR-10: the JPEG folder)."""
    if "cifar10" in preset:
        return ["--set", "data.dataset=folder", "--data-dir", str(DATA / "cifar10-train")]
    return ["--data-dir", str(DATA / "mnist")]


def epoch(src: Path, args: argparse.Namespace, out: Path, sets: list[str]) -> dict[str, float]:
    """One epoch with the code under ``src`` and the ``sets`` overrides; its seconds, images/s."""
    argv = [sys.executable, "-m", "cvae", "train", "--preset", args.preset, "--epochs", "1",
            "--threads", str(args.threads), "--out", str(out), *data_args(args.preset)]  # fmt: skip
    argv += [a for kv in sets for a in ("--set", kv)]
    if args.epoch_fraction:
        argv += ["--set", f"train.epoch_fraction={args.epoch_fraction}"]
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=src.parent)
    with (out / "metrics.csv").open() as f:
        row = list(csv.DictReader(f))[-1]
    return {"seconds": float(row["seconds"]), "ips": float(row["images_per_sec"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--preset", default="crvae-mnist-code")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument(
        "--epoch-fraction", type=float, help="train.epoch_fraction (default: the preset's)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for this checkout's side only (repeatable)")  # fmt: skip
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="this checkout's side only (the base runs fp32)")  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base),
                        args.base], check=True)  # fmt: skip
        try:
            ours = [f"train.precision={args.precision}", *args.set]
            sides = {f"base {args.base}": (base / "src", []), "this checkout": (ROOT / "src", ours)}
            results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
            for r in range(args.repeats):
                for side, (src, sets) in sides.items():
                    res = epoch(src, args, Path(tmp) / f"{r}-{side[:4]}", sets)
                    results[side].append(res)
                    load = os.getloadavg()[0]
                    print(f"round {r + 1} {side}: {res['seconds']:.1f} s, "
                          f"{res['ips']:.0f} images/s, load {load:.1f}", flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)  # fmt: skip
    med = {side: statistics.median(r["ips"] for r in runs) for side, runs in results.items()}
    (old, new) = med.values()
    changed = "".join(f", {kv}" for kv in args.set)
    print(f"\n{args.preset}, {args.threads} thread(s), this checkout in {args.precision}{changed}: "
          f"{old:.0f} -> {new:.0f} images/s ({new / old:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
