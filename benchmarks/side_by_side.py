"""One training epoch of ours and of the reference CVAE code, alternating, in one invocation.

For each thread count, ``--repeats`` rounds each run ours (the ``--preset`` configuration, one
epoch through the trainer's own epoch loop) and then the reference (``peer_bench.py --dataset
D --model cvae --epochs 1 --no-val --threads N``, see ../shared/peer/README.md; D is the preset's
dataset), each in a fresh child process with the same thread count, so both see the same machine
load. Printed per run: training time of the epoch (validation excluded on both sides; the
reference's includes its DataLoader with the notebook's workers, 0 for MNIST and 4 for CIFAR-10,
which is part of how it trains), images/s (one image = one source image, i.e. one pair of views),
and the child's peak RSS (``ru_maxrss`` of that process from ``wait4``); then a table of medians
with the ratio of images/s, ours/reference (the batch sizes differ on CIFAR-10: 256 vs 128), and
the ratio paired by round (each of ours against the reference's run beside it, which saw the same
machine state): its geometric mean, a 95% t-interval on the log ratios, and the range.

    python benchmarks/side_by_side.py --threads 1 2 --repeats 2
    python benchmarks/side_by_side.py --threads 1 --max-batches 50   # a quick partial epoch
    python benchmarks/side_by_side.py --precision bf16   # ours under bf16 autocast (not the
                                                         # reference's numerics: fp32)
    python benchmarks/side_by_side.py --compile   # ours with train.compile: its second epoch
                                                  # timed, the first (which compiles) printed

The reference needs ``PEER_MIRROR`` (a bare git clone of allx2100/contrastive-encoders) and
``PEER_VENV`` (its own venv); without them only ours runs and one line says why. CIFAR-10: the
reference reads a pickle copy (``PEER_CIFAR``, written from the JPEG folder by
``benchmarks/cifar_pickle.py``), ours the JPEG folder ``../shared/data/cifar10-train``: the same
images.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PEER_BENCH = SHARED / "peer" / "peer_bench.py"
MNIST = SHARED / "data" / "mnist"
CIFAR_FOLDER = SHARED / "data" / "cifar10-train"


def dataset_of(preset: str) -> str:
    """The reference's ``--dataset`` for one of our presets."""
    return "cifar10" if "cifar10" in preset else "mnist"


def peer_missing(bench: Path, dataset: str) -> str | None:
    """Why the reference cannot run here (None when it can)."""
    venv, mirror = os.environ.get("PEER_VENV", ""), os.environ.get("PEER_MIRROR", "")
    if not bench.is_file():
        return f"{bench} not found"
    if not venv or not (Path(venv) / "bin" / "python").exists():
        return "PEER_VENV is not set to a venv (see ../shared/peer/README.md)"
    if not mirror or not (Path(mirror) / "HEAD").exists():
        return "PEER_MIRROR is not set to a bare clone of allx2100/contrastive-encoders"
    if (
        dataset == "cifar10"
        and not (Path(os.environ.get("PEER_CIFAR", "")) / "data_batch_1").exists()
    ):
        return "PEER_CIFAR is not set to a CIFAR-10 pickle copy (benchmarks/cifar_pickle.py)"
    return None


def run_child(argv: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run ``argv``; return its stdout and its peak RSS in MiB (from ``wait4``, this child only).
    A failed child raises with the tail of its stderr."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read().strip().splitlines()[-3:]
            raise RuntimeError(f"{Path(argv[1]).name} exited {proc.returncode}: {' | '.join(tail)}")
        return out.read(), usage.ru_maxrss / 1024


def ours(args: argparse.Namespace, threads: int) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", "--preset", args.preset, "--threads", str(threads),
            "--precision", args.precision] + (["--compile"] if args.compile else [])  # fmt: skip
    if args.max_batches:
        argv += ["--max-batches", str(args.max_batches)]
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    out, rss = run_child(argv, env)
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": rss}


def reference(args: argparse.Namespace, threads: int) -> dict[str, float]:
    argv = [f"{os.environ['PEER_VENV']}/bin/python", str(args.peer_bench), "--dataset",
            dataset_of(args.preset), "--model", "cvae", "--epochs", "1", "--no-val", "--threads",
            str(threads)]  # fmt: skip
    if args.max_batches:
        argv += ["--max-batches", str(args.max_batches)]
    out, rss = run_child(argv, {**os.environ, "PEER_BENCH_NO_REEXEC": "1"})
    epoch = json.loads(out.strip().splitlines()[-1])["per_epoch"][0]
    return {"train_s": epoch["train_s"], "images": epoch["images"], "peak_rss_mib": rss}


def child(args: argparse.Namespace) -> None:
    """One epoch of ours, timed around the trainer's epoch loop; prints one JSON line."""
    import torch

    from cvae.config import load_preset, set_value
    from cvae.threads import torch_threads
    from cvae.training import distributed, trainer

    cfg = load_preset(args.preset)
    settings = {"epochs": 1, "progress": False, "device": "cpu", "precision": args.precision,
                "compile": args.compile}  # fmt: skip
    for key, value in {f"train.{k}": v for k, v in settings.items()}.items():
        set_value(cfg, key, value)
    if cfg.data.dataset == "mnist" and MNIST.is_dir():
        set_value(cfg, "data.data_dir", str(MNIST))
    if cfg.data.dataset == "cifar10" and CIFAR_FOLDER.is_dir():
        set_value(cfg, "data.dataset", "folder")
        set_value(cfg, "data.data_dir", str(CIFAR_FOLDER))
    data = trainer.data_from_config(cfg)
    with torch_threads(args.threads[0]), tempfile.TemporaryDirectory() as tmp:
        data, cfg = trainer._data_for_run(cfg, data, None, Path(tmp))
        if args.max_batches:
            full = len(data.train) // cfg.train.batch_size + 1
            set_value(cfg, "train.epoch_fraction", min(1.0, (args.max_batches + 0.5) / full))
        ctx, device, _ = distributed.setup(torch.device("cpu"), Path(tmp))
        loop = trainer._build(cfg, data, ctx, device, Path(tmp))
        seconds = []
        for epoch in range(2 if args.compile else 1):  # compiled: the first epoch compiles
            t0 = time.perf_counter()
            trainer._train_epoch(loop, epoch, 0, {}, None)
            seconds.append(round(time.perf_counter() - t0, 3))
    images = min(len(data.train), loop.steps * cfg.train.batch_size)
    out = {"train_s": seconds[-1], "images": images, "steps": loop.steps}
    print(json.dumps({**out, "first_epoch_s": seconds[0]} if args.compile else out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--preset", default="cvae-mnist-paper")
    p.add_argument("--max-batches", type=int, default=None, help="partial epochs of N batches")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="ours only")
    p.add_argument(
        "--compile",
        action="store_true",
        help="ours with train.compile: times its second epoch (the first, which compiles, is "
        "printed beside it)",
    )
    p.add_argument("--peer-bench", type=Path, default=PEER_BENCH)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    missing = peer_missing(args.peer_bench, dataset_of(args.preset))
    if missing:
        print(f"reference skipped: {missing}; timing ours only", flush=True)
    sides = {"ours": ours} if missing else {"ours": ours, "reference": reference}
    compiled = ", compiled (its second epoch timed)" if args.compile else ""
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; ours in "
          f"{args.precision}{compiled}, the reference in fp32", flush=True)  # fmt: skip
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for threads in args.threads:
        for r in range(args.repeats):
            for side, fn in sides.items():
                res = fn(args, threads)
                results.setdefault((side, threads), []).append(res)
                first = res.get("first_epoch_s")
                first = f" (first epoch {first:.1f} s)" if first else ""
                print(f"threads {threads} round {r + 1} {side:>9}: {res['train_s']:7.1f} s{first}, "
                      f"{res['images'] / res['train_s']:6.0f} images/s, "
                      f"peak RSS {res['peak_rss_mib']:.0f} MiB, load {os.getloadavg()[0]:.1f}",
                      flush=True)  # fmt: skip
    print("\n| threads | ours s | reference s | ratio (images/s) | ours images/s | "
          "reference images/s | peak RSS ours / ref MiB |\n"
          "|---|---|---|---|---|---|---|")  # fmt: skip
    for threads in args.threads:
        med = {side: _medians(results[(side, threads)]) for side in sides}
        o, ref = med["ours"], med.get("reference")
        row = [
            f"{o['train_s']:.1f}",
            "-",
            "-",
            f"{o['ips']:.0f}",
            "-",
            f"{o['peak_rss_mib']:.0f} / -",
        ]
        if ref:
            row[1:3] = [f"{ref['train_s']:.1f}", f"{o['ips'] / ref['ips']:.2f}x"]
            row[4:6] = [f"{ref['ips']:.0f}", f"{o['peak_rss_mib']:.0f} / {ref['peak_rss_mib']:.0f}"]
        print(f"| {threads} | " + " | ".join(row) + " |")
    if "reference" in sides:
        print("\nPaired by round (ours / the reference's run beside it):")
        for threads in args.threads:
            paired = paired_ratio(results[("ours", threads)], results[("reference", threads)])
            print(f"- {threads} thread(s): {paired}")


def paired_ratio(ours: list[dict[str, float]], ref: list[dict[str, float]]) -> str:
    """The ratio of images/s of each round against the reference's run beside it (both saw the
    same machine state): geometric mean over rounds, a 95% t-interval on the log ratios, range."""
    from cvae.experiments.claims import student_t_quantile

    logs = [math.log((o["images"] / o["train_s"]) / (r["images"] / r["train_s"]))
            for o, r in zip(ours, ref, strict=True)]  # fmt: skip
    mean, n = statistics.fmean(logs), len(logs)
    text = f"geometric mean {math.exp(mean):.2f}x over {n} rounds"
    if n >= 2:
        half = student_t_quantile(0.975, n - 1) * statistics.stdev(logs) / math.sqrt(n)
        text += f", 95% t-interval {math.exp(mean - half):.2f}-{math.exp(mean + half):.2f}x"
    return text + f", rounds {math.exp(min(logs)):.2f}-{math.exp(max(logs)):.2f}x"


def _medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        "train_s": statistics.median(r["train_s"] for r in runs),
        "ips": statistics.median(r["images"] / r["train_s"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


if __name__ == "__main__":
    main()
