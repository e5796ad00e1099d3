"""Per-stage seconds of ``cvae eval`` on a run, for one or two source trees.

Each source tree evaluates its own copy of the run (``cvae eval`` in a subprocess, ``PYTHONPATH``
set to that tree's ``src``), and the seconds come from the ``metrics.json`` it writes: each
metric's ``seconds``, the ``timing`` stages where the tree records them (load, encodings,
figures), and the total. Give two trees to compare them side by side:

    python benchmarks/eval_speed.py /tmp/run --threads 2
    python benchmarks/eval_speed.py /tmp/run --threads 2 --src /work/main/src --src src

Extra ``cvae eval`` flags follow ``--``: ``... -- --embedding none``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KEPT = ("config.yaml", "data.json", "metrics.csv")  # what `cvae eval` reads besides weights


def run_eval(run: Path, src: Path, threads: int, extra: list[str]) -> dict[str, float]:
    """The stage seconds of ``cvae eval`` from ``src`` on a copy of ``run`` (plus ``wall``)."""
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("figures", "metrics*.json"))
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        argv = [sys.executable, "-m", "cvae", "eval", str(copy), "--threads", str(threads)]
        t0 = time.perf_counter()
        subprocess.run([*argv, "--no-progress", *extra], env=env, check=True)
        wall = time.perf_counter() - t0
        return stages(json.loads((copy / "metrics.json").read_text())) | {"wall": wall}


def stages(result: dict[str, Any]) -> dict[str, float]:
    """``{stage: seconds}`` of one ``metrics.json``: its ``timing`` when recorded, else the
    metrics' own ``seconds`` (one per computation), and the ``total``."""
    out: dict[str, float] = {}
    timing = result.get("timing")
    if timing:
        out.update({name: float(entry["seconds"]) for name, entry in timing["stages"].items()})
    else:
        seen: set[float] = set()
        for name, metric in result["metrics"].items():
            seconds = metric.get("seconds")
            if seconds is not None and (name, seconds) not in seen:
                out[name] = float(seconds)
    out["total"] = float(result["seconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a trained run folder")
    parser.add_argument("--src", type=Path, action="append", help="source tree(s) (default: src)")
    parser.add_argument("--threads", type=int, default=2)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    trees = args.src or [Path(__file__).resolve().parents[1] / "src"]
    columns = [run_eval(args.run, src, args.threads, extra) for src in trees]
    names = list(dict.fromkeys(name for col in columns for name in col))
    width = max(map(len, names)) + 2
    print("stage".ljust(width) + "".join(f"{str(src):>24}" for src in trees))
    for name in names:
        cells = (f"{col[name]:24.2f}" if name in col else f"{'-':>24}" for col in columns)
        print(name.ljust(width) + "".join(cells))


if __name__ == "__main__":
    main()
