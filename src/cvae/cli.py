"""Command-line interface: ``cvae train | eval | export | compare | sweep | reproduce | demo |
presets``.

Errors in the user's input (data, config, run directory) print one line and exit 2; an
interrupted or diverged run keeps its last good checkpoint and says how to resume; any other
exception is one line and exit 1 (``CVAE_TRACEBACK=1`` prints its traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from cvae.errors import CvaeError, TrainingDiverged

# flag -> (config key, type, help), for the common overrides (everything else: --set key=value)
TRAIN_FLAGS: dict[str, tuple[str, type, str]] = {
    "method": ("method", str, "vae | cvae | btvae | crvae | aavae | ae | aaae"),
    "dataset": ("data.dataset", str, "a name of cvae.data.DATASETS, e.g. mnist (docs/datasets.md)"),
    "data_dir": ("data.data_dir", str, "folder holding the dataset files (or one per dataset)"),
    "epochs": ("train.epochs", int, "training epochs"),
    "batch_size": ("train.batch_size", int, "images per optimisation step"),
    "lr": ("train.lr", float, "learning rate"),
    "beta": ("loss.terms.kl.weight", float, "KL weight"),
    "lam": ("loss.terms.ntxent.weight", float, "contrastive (NT-Xent) weight"),
    "latent_dim": ("model.latent_dim", int, "size of the latent code"),
    "device": ("train.device", str, "auto | cpu | cuda | cuda:N"),
    "threads": ("train.threads", int, "torch CPU threads"),
    "seed": ("train.seed", int, "seed of the initialisation, batches and views"),
    "precision": ("train.precision", str, "fp32 | bf16"),
}


def _flag_name(dest: str) -> str:
    return "lambda" if dest == "lam" else dest.replace("_", "-")


# the keys `--set` accepts besides dotted config keys, in `cvae train` and `cvae sweep`: every
# train flag name, with - or _
SET_ALIASES = {_flag_name(name): key for name, (key, _, _) in TRAIN_FLAGS.items()}
SET_ALIASES |= {name.replace("-", "_"): key for name, key in SET_ALIASES.items()}
RESUMABLE = {"epochs", "device", "threads"}


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing (not
    None, False or empty); the train flags say which config key they set instead."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help, default = action.help or "", action.default
        unset = default is None or default is False or default in ([], "", argparse.SUPPRESS)
        if "%(default)" in help or unset:
            return help
        return f"{help} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    from cvae import __version__
    from cvae.tracking.base import BACKENDS

    parser = argparse.ArgumentParser(
        prog="cvae",
        description="Train and evaluate VAEs regularised with self-supervised objectives.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    t = command("train", "train a model into a run directory")
    t.add_argument("--preset", help="packaged preset name (see `cvae presets`) or a YAML file")
    t.add_argument("--config", help="YAML config file (applied after --preset)")
    for name, (key, kind, help) in TRAIN_FLAGS.items():
        flag = "--" + _flag_name(name)
        choices = ["fp32", "bf16"] if name == "precision" else None
        t.add_argument(flag, dest=name, type=kind, choices=choices,
                       help=f"{help} (sets {key}; default: the preset's)")  # fmt: skip
    t.add_argument(
        "--download", action="store_true", help="download missing files (checksum-verified)"
    )
    t.add_argument(
        "--devices",
        type=int,
        help="data-parallel processes on this machine (runs torchrun; CUDA: one GPU each)",
    )
    t.add_argument("--compile", action="store_true", help="torch.compile the training loss")
    t.add_argument(
        "--logger",
        action="append",
        default=[],
        choices=list(BACKENDS),
        help="also track the run in MLflow or Weights & Biases (adds to train.loggers; "
        "repeatable; docs/tracking.md)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key (or a flag name above), e.g. --set "
        "model.channels=[8,16,32] or --set epochs=3; repeatable",
    )
    t.add_argument(
        "--out", type=Path, help="run directory (default: runs/<method>-<dataset>-<time>)"
    )
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument(
        "--no-progress", action="store_true", help="no progress bars (the epoch lines stay)"
    )
    t.add_argument("--eval", action="store_true", help="run `cvae eval` on the result")

    e = command("eval", "evaluate a run: probes, KNN, figures -> metrics.json")
    e.add_argument("run_dir", type=Path, help="the run directory to evaluate")
    _eval_args(e)

    x = command("export", "write a run's weights, config and model card to a hub-ready folder")
    x.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run directory to export")
    x.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    x.add_argument(
        "--checkpoint",
        choices=["last", "best"],
        default="last",
        help="last.pt, or best.pt (the epoch with the lowest validation loss)",
    )

    d = command("demo", "train and evaluate vae and cvae on the bundled digits (offline)")
    d.add_argument("--out", type=Path, default=Path("demo-runs"), help="folder for the runs")
    d.add_argument("--epochs", type=int, default=40, help="epochs of each run")
    d.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")

    command("presets", "list the packaged presets")

    c = command(
        "compare", "compare evaluated runs (and the papers' numbers): Markdown + HTML report"
    )
    c.add_argument(
        "run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="evaluated run directories"
    )
    c.add_argument("--out", type=Path, required=True, help="folder for report.md and report.html")
    c.add_argument("--title", help="report title (default: one made from the runs)")

    s = command("sweep", "train a grid of runs (resumable), evaluate, summarise")
    s.add_argument("base", nargs="?", help="preset name or YAML config every run starts from")
    s.add_argument("--preset", help="same as BASE")
    s.add_argument("--config", help="YAML config file (applied after the preset)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=V1,V2,...",
        help="a grid axis (dotted key or a train flag name), e.g. "
        "--set loss.terms.kl.weight=1e-3,1e-5 or --set epochs=3; repeatable",
    )
    s.add_argument("--out", type=Path, required=True, help="folder holding one dir per run")
    s.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cores/N threads)")
    s.add_argument("--eval", action="store_true", help="run `cvae eval` on each finished run")
    s.add_argument(
        "--eval-args", default="", help="arguments for `cvae eval`, e.g. '--embedding none'"
    )
    s.add_argument("--dry-run", action="store_true", help="print what each run needs; do nothing")

    r = command("reproduce", "train, evaluate and report one paper's tables beside its numbers")
    r.add_argument("paper", help="cvae-paper | btvae-paper | crvae-paper | aavae-paper")
    r.add_argument(
        "--budget",
        choices=["quick", "medium", "paper", "cpu"],
        default="quick",
        help="quick: minutes on a CPU; medium: about an hour; paper: the paper's epochs; "
        "cpu: the paper's claim checks (arms x seeds, CI of the difference, verdict), about an "
        "hour of a 2-core CPU per claim",
    )
    r.add_argument(
        "--claim", action="append", help="with --budget cpu: run only this claim (repeatable)"
    )
    r.add_argument("--data-dir", type=Path, help="data root with one folder per dataset")
    r.add_argument("--out", type=Path, help="default: reproductions/<paper>-<budget>")
    r.add_argument("--jobs", type=int, default=1, help="runs at once (each gets cores/N threads)")
    r.add_argument("--seeds", type=int, help="how many of the paper's seeds (default: budget's)")
    return parser


def _eval_args(p: argparse.ArgumentParser) -> None:
    from cvae.evaluation.options import add_arguments

    add_arguments(p)
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest on a busy CPU)")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown only on a terminal)"
    )


def _train_config(args: argparse.Namespace):  # -> RunConfig
    from cvae import config as C

    if args.resume is not None:
        given = {k for k in TRAIN_FLAGS if getattr(args, k) is not None} - RESUMABLE
        if given or args.preset or args.config or args.set:
            raise CvaeError(
                "--resume continues a run as configured; only --epochs, --device and "
                "--threads may change"
            )
        cfg = C.from_plain(C.load_yaml(args.resume / "config.yaml"))
    else:
        cfg = C.load_preset(args.preset) if args.preset else C.RunConfig()
        if args.config:
            cfg = C.from_dict(C.load_yaml(args.config), base=cfg)
    for flag, (key, _, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            C.set_value(cfg, key, value)
    if args.download:
        cfg.data.download = True
    if args.compile:
        cfg.train.compile = True
    if args.no_progress:
        cfg.train.progress = False
    for key, raw in C.parse_overrides(args.set).items():
        C.set_value(cfg, SET_ALIASES.get(key, key), raw)
    cfg.train.loggers = list(dict.fromkeys([*cfg.train.loggers, *args.logger]))
    from cvae.methods import check_config

    return check_config(cfg)


def _import_train():  # -> cvae.training.train
    """Import the training stack with Ctrl-C (and SIGTERM) held back until the import is
    complete: an import of torch or numpy interrupted halfway breaks the next one."""
    from cvae.interrupts import held_signals

    with held_signals():
        from cvae.training import train
    return train


def cmd_train(args: argparse.Namespace) -> int:
    run_dir = args.resume
    try:
        train = _import_train()
        cfg = _train_config(args)
        if run_dir is None:
            if args.out is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise CvaeError("under torchrun every process must name the same run: pass --out")
            run_dir = args.out or Path("runs") / (
                f"{cfg.method}-{cfg.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
            )
        if args.devices is not None and args.devices > 1:
            from cvae.training.distributed import launch_train

            code = launch_train(cfg, run_dir, args.resume is not None, args.devices)
            if code != 0:
                return code
        else:
            result = train(cfg, run_dir, resume=args.resume is not None)
            if result.rank != 0:  # one of several torchrun processes: rank 0 reports
                return 0
            last = result.history[-1] if result.history else {}
            summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k.startswith("val_"))
            print(f"trained {result.epochs_completed} epochs -> {run_dir} ({summary})")
    except KeyboardInterrupt:
        # training.checkpoint.CHECKPOINT, named here without importing torch
        ckpt = None if run_dir is None else run_dir / "checkpoints" / "last.pt"
        kept = (
            f"the last checkpoint is kept (resume with `cvae train --resume {run_dir}`)"
            if ckpt is not None and ckpt.is_file()
            else "no checkpoint was written"
        )
        print(f"cvae: interrupted; {kept}", file=sys.stderr)
        return 130
    if args.eval:
        from cvae.evaluation.evaluate import evaluate

        device = cfg.train.device if cfg.train.device != "auto" else "cpu"
        _print_eval(evaluate(run_dir, device=device))
    return 0


def _print_eval(result: dict) -> None:
    for name, m in result["metrics"].items():
        value = "n/a" if m["value"] is None else f"{m['value']:.4g}"
        print(f"{name:>24}: {value}")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"metrics: {Path(result['run_dir']) / 'metrics.json'} ({result['seconds']} s)")


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from cvae.evaluation.evaluate import evaluate
    from cvae.evaluation.options import from_args

    config = from_args(args)  # checked before any work
    if args.threads is not None:
        if args.threads < 1:
            raise CvaeError(f"threads must be an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        result = evaluate(args.run_dir, config, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"cvae: eval interrupted; {_eval_kept(args.run_dir)}", file=sys.stderr)
        return 130
    _print_eval(result)
    return 0


def _eval_kept(run_dir: Path) -> str:
    """What an interrupted ``cvae eval`` left in ``run_dir/metrics.json``."""
    import json

    path = run_dir / "metrics.json"
    try:
        partial = json.loads(path.read_text()).get("complete") is False
    except (OSError, ValueError, AttributeError):
        partial = False
    if partial:
        return f"the metrics computed so far are in {path} (complete: false)"
    return f"no metric was computed yet; {path} is unchanged"


def cmd_export(args: argparse.Namespace) -> int:
    from cvae.export import export

    out = export(args.run_dir, args.out, checkpoint=args.checkpoint)
    print(f"exported {args.run_dir} ({args.checkpoint}) -> {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cvae.demo import run_demo

    report = run_demo(args.out, epochs=args.epochs, threads=args.threads)
    print(f"report: {report}")
    return 0


def cmd_presets(_: argparse.Namespace) -> int:
    from cvae.config import load_preset, preset_names

    for name in preset_names():
        cfg = load_preset(name)
        print(
            f"{name:<20} method={cfg.method:<5} dataset={cfg.data.dataset:<8} "
            f"epochs={cfg.train.epochs} batch={cfg.train.batch_size}"
        )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from cvae.experiments.compare import compare, markdown_table

    result = compare(args.run_dirs, args.out, title=args.title)
    print(markdown_table(result))
    print(f"report: {result['markdown']}")
    print(f"html: {result['html']}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    import shlex

    from cvae import config as C
    from cvae.evaluation.options import from_argv
    from cvae.experiments.sweep import format_markdown, parse_grid, run_sweep

    if args.base and args.preset:
        raise CvaeError("give the base preset either as BASE or as --preset, not both")
    preset = args.base or args.preset
    cfg = C.load_preset(preset) if preset else C.RunConfig()
    if args.config:
        cfg = C.from_dict(C.load_yaml(args.config), base=cfg)
    grid = parse_grid(args.set, SET_ALIASES)
    try:
        runs = run_sweep(
            cfg,
            grid,
            args.out,
            jobs=args.jobs,
            evaluate=args.eval,
            eval_config=from_argv(shlex.split(args.eval_args)),
            dry_run=args.dry_run,
        )
    except KeyboardInterrupt:
        print(
            f"cvae: sweep interrupted; summary in {args.out / 'summary.md'} "
            "(re-run the same command to finish it)",
            file=sys.stderr,
        )
        return 130
    print(format_markdown(runs), end="")
    if not args.dry_run:
        print(f"summary: {args.out / 'summary.md'}, {args.out / 'summary.csv'}")
    return 1 if any(r.status == "failed" for r in runs) else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from cvae.experiments.claim_check import CLAIM_BUDGETS, reproduce_claims
    from cvae.experiments.reproduce import reproduce

    if args.claim and args.budget not in CLAIM_BUDGETS:
        raise CvaeError(f"--claim needs --budget {' or '.join(CLAIM_BUDGETS)}")
    try:
        if args.budget in CLAIM_BUDGETS:
            for _, paths in reproduce_claims(
                args.paper, args.budget, claims=args.claim, out=args.out,
                data_dir=args.data_dir, jobs=args.jobs, seeds=args.seeds,
            ):  # fmt: skip
                print(f"report: {paths['markdown']}")
                print(f"html: {paths['html']}")
            return 0
        result = reproduce(
            args.paper,
            budget=args.budget,
            data_dir=args.data_dir,
            out=args.out,
            jobs=args.jobs,
            seeds=args.seeds,
        )
    except KeyboardInterrupt:
        print("cvae: reproduce interrupted; re-run the same command to finish it", file=sys.stderr)
        return 130
    print(f"report: {result['markdown']}")
    print(f"html: {result['html']}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "export": cmd_export,
    "demo": cmd_demo,
    "presets": cmd_presets,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
    "reproduce": cmd_reproduce,
}


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a `kill`, a sweep stopping its runs) stops a command as Ctrl-C does: the run
    keeps its last checkpoint. SIGINT may be ignored, as in a script's background job, so a
    sweep stops its runs with SIGTERM. Restored on exit (``main`` may run inside a program)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _terminate_as_interrupt():
            return COMMANDS[args.command](args)
    except TrainingDiverged as err:
        print(f"cvae: training stopped: {err}", file=sys.stderr)
        return 3
    except CvaeError as err:
        print(f"cvae: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "cvae: interrupted; the last checkpoint is kept "
            "(resume with `cvae train --resume RUN_DIR`)",
            file=sys.stderr,
        )
        return 130
    except OSError as err:
        print(f"cvae: error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug, or a case no check foresaw: one line, exit 1
        if os.environ.get("CVAE_TRACEBACK", "") not in ("", "0"):
            traceback.print_exc()
        message = " ".join(str(err).split())
        if len(message) > 300:
            message = message[:297] + "..."
        print(
            f"cvae: internal error: {type(err).__name__}: {message} "
            "(set CVAE_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
