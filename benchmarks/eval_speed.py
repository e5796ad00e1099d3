"""Per-stage seconds of ``cvae eval`` on a run (wall and CPU), for one or two source trees.

Each source tree runs in its own process (``PYTHONPATH`` set to that tree's ``src``) and walks
the stages of ``evaluate()`` itself, through the registry (``METRICS``, ``FIGURES``,
``measure``): loading the run and its data, the shared encodings (forced first, so that no
metric is charged for them), every metric and every figure, on a copy of the run. CPU seconds
(``time.process_time``, all threads) say more than wall seconds on a shared machine. Two trees
print side by side:

    python benchmarks/eval_speed.py /tmp/run --threads 2
    python benchmarks/eval_speed.py /tmp/run --threads 2 --src /work/main/src --src src
    python benchmarks/eval_speed.py /tmp/run --skip fid --skip figure   # fewer stages

``--set NAME=VALUE`` sets an ``EvalConfig`` option (e.g. ``--set embedding=none``).
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


def stages(run: Path, threads: int, skip: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """``{stage: [wall s, cpu s]}`` of one evaluation of ``run`` by the ``cvae`` importable
    here (``PYTHONPATH``)."""
    import torch

    from cvae.api import load
    from cvae.evaluation.figures import FIGURES
    from cvae.evaluation.options import EvalConfig
    from cvae.evaluation.registry import METRICS, measure

    torch.set_num_threads(threads)
    out: dict[str, Any] = {}

    def timed(name: str, work: Any) -> Any:
        if any(s in name for s in skip):
            return None
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        out[name] = [time.perf_counter() - wall, time.process_time() - cpu]
        return result

    cfg = EvalConfig().replace(**options)
    ctx = timed("load", lambda: _context(load(run, device=cfg.device), cfg))
    labelled = ctx.data.train.labels is not None
    timed("encode", lambda: (ctx.posterior, labelled and (ctx.train_features, ctx.eval_features)))
    for spec in METRICS:
        timed("/".join(spec.names), lambda spec=spec: measure(spec, ctx))
    folder = run / "figures"
    folder.mkdir(exist_ok=True)
    for figure in FIGURES:
        name = f"figure {figure.draw.__name__.removeprefix('_')}"
        if ctx.unmet(figure.needs) is None:
            timed(name, lambda figure=figure: figure.draw(ctx, folder))
    out["total"] = [sum(v[0] for v in out.values()), sum(v[1] for v in out.values())]
    return out


def _context(run: Any, cfg: Any) -> Any:
    """The :class:`EvalContext` ``evaluate()`` builds for ``run``."""
    from cvae.evaluation.evaluate import _eval_data, choose_feature
    from cvae.evaluation.registry import EvalContext, Notes

    splits, _, notes = _eval_data(run, None)
    return EvalContext(run, cfg, splits, choose_feature(run, cfg)[0], Notes(notes))


def child(src: Path, run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The stages of ``src`` on a fresh copy of ``run`` (a subprocess)."""
    with tempfile.TemporaryDirectory(prefix="eval-speed-") as tmp:
        copy = Path(tmp) / run.name
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("figures", "metrics*.json"))
        env = {**os.environ, "PYTHONPATH": str(src.resolve())}
        argv = [sys.executable, __file__, str(copy), "--threads", str(args.threads), "--child"]
        argv += [f"--skip={s}" for s in args.skip] + [f"--set={s}" for s in args.set]
        done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a trained run folder")
    parser.add_argument("--src", type=Path, action="append", help="source tree(s) (default: src)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", action="append", default=[], help="skip stages naming this")
    parser.add_argument("--set", action="append", default=[], help="EvalConfig NAME=VALUE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        options = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
        print(json.dumps(stages(args.run, args.threads, args.skip, options)))
        return
    trees = args.src or [Path(__file__).resolve().parents[1] / "src"]
    columns = [child(src, args.run, args) for src in trees]
    names = list(dict.fromkeys(name for col in columns for name in col))
    width = max(map(len, names)) + 2
    print("stage".ljust(width) + "".join(f"{str(src)[-22:]:>24}" for src in trees))
    print(" " * width + "".join(f"{'wall s':>12}{'cpu s':>12}" for _ in trees))
    for name in names:
        cells = (f"{c[name][0]:12.1f}{c[name][1]:12.1f}" if name in c else f"{'-':>24}"
                 for c in columns)  # fmt: skip
        print(name.ljust(width) + "".join(cells))


def _value(text: str) -> Any:
    """An option value: an int when it reads as one, else the text."""
    try:
        return int(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
