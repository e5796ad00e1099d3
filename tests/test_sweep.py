"""`cvae sweep`: grid expansion and names, skip/resume/start planning, parallel subprocesses,
failure reporting and the summary files."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from badinput import expect_refusal

import cvae
from cvae.cli import main
from cvae.config import RunConfig, save_yaml
from cvae.errors import ConfigError, CvaeError
from cvae.evaluation.options import EvalConfig
from cvae.experiments.sweep import (
    REQUEST,
    SweepJob,
    SweepRun,
    expand_grid,
    format_markdown,
    parse_grid,
    plan_run,
    progress_line,
    run_jobs,
    run_name,
    sweep_jobs,
    write_summary,
)
from cvae.training import train
from cvae.training.runlog import read_metrics
from cvae.training.trainer import CHECKPOINT


def tiny_config(epochs: int = 2) -> RunConfig:
    cfg = RunConfig()
    cfg.data.dataset = "digits"
    cfg.model.channels = [8, 16]
    cfg.train.epochs = epochs
    cfg.train.tensorboard = False
    return cfg


def test_parse_grid_splits_top_level_commas_and_maps_short_keys():
    grid = parse_grid(
        ["beta=1e-3, 1e-5", "model.channels=[8,16],[16,32]", "loss.schedules={kl: 'a,b'},{}"],
        {"beta": "loss.beta"},
    )
    assert grid == {
        "loss.beta": ["1e-3", "1e-5"],
        "model.channels": ["[8,16]", "[16,32]"],
        "loss.schedules": ["{kl: 'a,b'}", "{}"],
    }
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["loss.beta=1", "beta=2"], {"beta": "loss.beta"})
    with pytest.raises(ConfigError, match="key=v1,v2"):
        parse_grid(["loss.beta"])


def test_expand_grid_is_the_cartesian_product_first_key_slowest():
    assert expand_grid({"a": [1, 2], "b": ["x", "y", "z"]}) == [
        {"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")
    ]
    assert expand_grid({}) == [{}]
    with pytest.raises(ConfigError, match="no values"):
        expand_grid({"a": []})


def test_run_names_are_sorted_typed_and_filesystem_safe():
    assert run_name({"method": "cvae", "loss.beta": 1e-05}) == "loss.beta=1e-05,method=cvae"
    assert run_name({"data.data_dir": "/x/y z", "model.channels": [8, 16]}) == (
        "data.data_dir=_x_y_z,model.channels=[8,16]"
    )
    assert run_name({"train.grad_clip": None, "model.batchnorm": True}) == (
        "model.batchnorm=true,train.grad_clip=null"
    )
    assert run_name({}) == "run"
    long_a, long_b = run_name({"k": "a" * 200}), run_name({"k": "a" * 199 + "b"})
    assert len(long_a) == 111 and long_a[:100] == long_b[:100] and long_a != long_b


def test_sweep_jobs_coerce_values_and_keep_constants_out_of_names():
    grid = parse_grid(["loss.beta=1e-3,0.00001", "method=vae,cvae", "epochs=3"])
    with pytest.raises(ConfigError, match="unknown config key 'epochs'"):
        sweep_jobs(tiny_config(), grid)
    grid = parse_grid(["loss.beta=1e-3,0.00001", "method=vae,cvae", "train.epochs=3"])
    jobs = sweep_jobs(tiny_config(), grid)
    assert [j.name for j in jobs] == [
        "loss.beta=0.001,method=vae",
        "loss.beta=0.001,method=cvae",
        "loss.beta=1e-05,method=vae",
        "loss.beta=1e-05,method=cvae",
    ]
    assert jobs[2].overrides == {"loss.beta": 1e-05, "method": "vae"}
    assert [
        (j.config.loss.terms.kl.weight, j.config.method, j.config.train.epochs) for j in jobs[2:]
    ] == [
        (1e-05, "vae", 3),
        (1e-05, "cvae", 3),
    ]
    bad = sweep_jobs(tiny_config(), {"train.lr": ["1e-3", "-1", "fast"]})
    assert bad[0].config is not None and bad[0].error is None
    assert bad[1].config is None and bad[1].error == "train.lr must be > 0, got -1.0"
    assert bad[2].error == "train.lr expects a number, got 'fast'"
    assert [j.name for j in bad] == ["train.lr=0.001", "train.lr=-1.0", "train.lr=fast"]


def fake_run(run_dir: Path, cfg: RunConfig, epochs_done: int) -> None:
    """A run directory as the sweep leaves it: request, checkpoint after ``epochs_done``."""
    run_dir.mkdir(parents=True)
    save_yaml(cfg, run_dir / REQUEST)
    (run_dir / CHECKPOINT).parent.mkdir()
    torch.save({"epoch": epochs_done, "step": 0}, run_dir / CHECKPOINT)


def test_plan_starts_resumes_evaluates_or_skips(tmp_path):
    job = SweepJob("r", {}, tiny_config(epochs=2))
    run_dir = tmp_path / "r"
    action, commands = plan_run(job, run_dir)
    assert action == "start" and len(commands) == 1
    assert commands[0] == [sys.executable, "-m", "cvae", "train", "--config"] + [
        str(run_dir / REQUEST),
        "--out",
        str(run_dir),
    ]

    fake_run(run_dir, job.config, epochs_done=1)
    quick = EvalConfig(embedding="tsne")
    action, commands = plan_run(job, run_dir, evaluate=True, eval_config=quick)
    assert action == "resume"
    assert commands[0][3:9] == ["train", "--resume", str(run_dir), "--epochs", "2", "--device"]
    assert commands[1][3:] == ["eval", str(run_dir), "--embedding", "tsne"]

    torch.save({"epoch": 2, "step": 0}, run_dir / CHECKPOINT)
    assert plan_run(job, run_dir) == ("skip", [])
    assert plan_run(job, run_dir, evaluate=True)[0] == "eval"
    metrics = run_dir / "metrics.json"
    metrics.write_text("{}")
    ckpt_time = (run_dir / CHECKPOINT).stat().st_mtime
    os.utime(metrics, (ckpt_time + 5, ckpt_time + 5))
    assert plan_run(job, run_dir, evaluate=True) == ("skip", [])
    for partial in ('{"complete": false, "metrics": {}}', "not json"):  # interrupted or corrupt
        metrics.write_text(partial)
        os.utime(metrics, (ckpt_time + 5, ckpt_time + 5))
        assert plan_run(job, run_dir, evaluate=True)[0] == "eval"
    os.utime(metrics, (ckpt_time - 5, ckpt_time - 5))  # evaluated an older checkpoint
    assert plan_run(job, run_dir, evaluate=True)[0] == "eval"

    longer = tiny_config(epochs=5)  # more epochs extend the run
    assert plan_run(SweepJob("r", {}, longer), run_dir)[0] == "resume"
    other = tiny_config(epochs=2)
    other.train.lr = 0.5
    with pytest.raises(CvaeError, match="holds a run with train.lr=0.0001, not 0.5"):
        plan_run(SweepJob("r", {}, other), run_dir)
    (run_dir / REQUEST).unlink()
    with pytest.raises(CvaeError, match="this sweep did not start"):
        plan_run(job, run_dir)
    assert plan_run(SweepJob("bad", {}, None, "train.lr must be > 0"), run_dir) == ("fail", [])


def test_finished_runs_are_skipped_and_summarised(tmp_path):
    """No subprocess: every run is finished (or unbuildable), so the sweep only reads them."""
    jobs = sweep_jobs(tiny_config(), {"loss.beta": ["1", "0.5", "-1"]})
    for job, loss in zip(jobs[:2], (0.25, 0.125), strict=True):
        run_dir = tmp_path / job.name
        fake_run(run_dir, job.config, epochs_done=2)
        (run_dir / "metrics.csv").write_text(f"epoch,train_loss\n1,9.0\n2,{loss}\n")
        metrics = {"kl": {"value": 2.5, "protocol": {}}, "figures": {"value": "x"}}
        (run_dir / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    lines = []
    runs = run_jobs(jobs, tmp_path, parallel=2, echo=lines.append)
    assert lines == []  # nothing launched
    assert [(r.status, r.epochs, r.train_loss, r.metrics) for r in runs] == [
        ("skipped", 2, 0.25, {"kl": 2.5}),
        ("skipped", 2, 0.125, {"kl": 2.5}),
        ("failed", None, None, {}),
    ]
    assert (tmp_path / "summary.md").read_text() == (
        "| run | loss.beta | status | exit | epochs | train_loss | kl |\n"
        "|---|---|---|---|---|---|---|\n"
        "| loss.beta=1.0 | 1 | skipped |  | 2 | 0.25 | 2.5 |\n"
        "| loss.beta=0.5 | 0.5 | skipped |  | 2 | 0.125 | 2.5 |\n"
        "| loss.beta=-1.0 | -1 | failed |  |  |  |  |\n"
        "\n"
        "Failed runs:\n"
        "- loss.beta=-1.0 (not started): loss.terms.kl.weight must be >= 0 or null, got -1.0\n"
    )
    with (tmp_path / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["status"], r["train_loss"], r["kl"]) for r in rows] == [
        ("loss.beta=1.0", "skipped", "0.25", "2.5"),
        ("loss.beta=0.5", "skipped", "0.125", "2.5"),
        ("loss.beta=-1.0", "failed", "", ""),
    ]
    assert rows[2]["message"] == "loss.terms.kl.weight must be >= 0 or null, got -1.0"
    assert rows[0]["run_dir"] == str(tmp_path / "loss.beta=1.0")


def test_markdown_escapes_pipes_and_formats_numbers(tmp_path):
    run = SweepRun("a", tmp_path, {"k": "x|y"}, "done", 0, 3, 0.123456, {"m": 1.0})
    assert format_markdown([run]).splitlines()[2] == "| a | x\\|y | done | 0 | 3 | 0.1235 | 1 |"
    write_summary([run], tmp_path / "new")
    assert (tmp_path / "new" / "summary.csv").is_file()


@pytest.mark.integration
def test_cli_sweep_resumes_and_reports_a_failure_in_parallel(tmp_path, capsys):
    """Real subprocesses, two at once: an interrupted run (checkpoint after epoch 1 of 2)
    resumes, a folder run without data_dir fails in its child without stopping it; then a dry
    run of the same sweep has nothing left to train but the failed run."""
    out = tmp_path / "sweep"
    sets = ["data.dataset=digits,folder", "epochs=2", "model.channels=[8,16]"]
    sets += ["train.tensorboard=false", "train.threads=1"]
    good, bad = out / "data.dataset=digits", out / "data.dataset=folder"
    job = sweep_jobs(RunConfig(), parse_grid(sets, {"epochs": "train.epochs"}))[0]
    assert job.name == good.name
    good.mkdir(parents=True)
    save_yaml(job.config, good / REQUEST)
    job.config.train.epochs = 1
    train(job.config, good)  # in-process: as if the sweep had been killed after epoch 1
    capsys.readouterr()

    argv = ["sweep", "--out", str(out), "--jobs", "2"] + [a for s in sets for a in ("--set", s)]
    assert main(argv) == 1
    stdout = capsys.readouterr().out
    events = [line.split("]")[1].split(":")[0].strip() for line in stdout.splitlines()[:4]]
    assert events[:2] == ["resume", "start"]  # both children run before either finishes
    assert sorted(events[2:]) == ["failed", "resumed"]
    ends = stdout.splitlines()[2:4]  # each end says how far the sweep is
    assert "-- 1/2 ended, 1 running, 0 queued;" in ends[0]
    assert "-- 2/2 ended, 0 running, 0 queued;" in ends[1]
    assert "| data.dataset=digits | digits | resumed | 0 | 2 |" in stdout
    assert "| data.dataset=folder | folder | failed | 2 |  |" in stdout
    assert "- data.dataset=folder (exit 2): cvae: error: dataset 'folder' needs data_dir" in stdout
    log = (good / "train.log").read_text()
    assert log.startswith(f"$ {sys.executable} -m cvae train --resume {good} --epochs 2")
    assert "epoch 2/2" in log and "epoch 1/2" not in log  # epoch 1 was not trained again
    assert len(read_metrics(good / "metrics.csv")) == 2
    assert "needs data_dir" in (bad / "train.log").read_text().splitlines()[-1]
    summary = (out / "summary.md").read_text()
    assert summary in stdout and "| data.dataset=digits | digits | resumed |" in summary

    assert main([*argv, "--dry-run"]) == 0
    stdout = capsys.readouterr().out
    assert "| data.dataset=digits | digits | skip |" in stdout
    assert "| data.dataset=folder | folder | start |" in stdout
    (good / CHECKPOINT).unlink()  # outputs lost: the run starts again
    assert main([*argv, "--dry-run"]) == 0
    assert "| data.dataset=digits | digits | start |" in capsys.readouterr().out


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.integration
def test_killing_the_sweep_stops_its_children_keeping_checkpoints(tmp_path):
    """SIGINT is ignored, as in a script's background job (CI runs us so): the children inherit
    that, and still stop when the sweep is killed."""
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "cvae", "sweep", "--out", str(out), "--jobs", "2"]
    for s in ("train.seed=0,1", "epochs=500", "model.channels=[8,16]", "train.tensorboard=false"):
        argv += ["--set", s]
    env = dict(os.environ, PYTHONPATH=str(Path(cvae.__file__).resolve().parents[1]))
    sweep = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509 (no threads here)
    )
    try:
        logs = [out / f"train.seed={seed}" / "train.log" for seed in (0, 1)]
        while not all(p.is_file() and "epoch 2/500" in p.read_text() for p in logs):
            assert sweep.poll() is None, sweep.communicate()
            time.sleep(0.5)
        sweep.send_signal(signal.SIGINT)  # ignored
        sweep.send_signal(signal.SIGTERM)
        _, err = sweep.communicate(timeout=60)
    finally:
        sweep.kill()
    assert sweep.returncode == 130 and "re-run the same command" in err.decode()
    for log in logs:
        assert log.read_text().splitlines()[-1].startswith("cvae: interrupted")
        assert (log.parent / CHECKPOINT).is_file()
    assert (out / "summary.md").read_text().count("| interrupted | 130 |") == 2


def test_cli_sweep_input_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "s")]
    assert main(["sweep", "vae-mnist-paper", "--preset", "vae-mnist-paper", *out]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["sweep", *out, "--set", "train.nope=1"]) == 2
    assert "unknown config key 'train.nope'" in capsys.readouterr().err
    assert main(["sweep", *out, "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    # a bad key on a varying axis fails every run, none of them started
    assert main(["sweep", *out, "--set", "train.nope=1,2"]) == 1
    stdout = capsys.readouterr().out
    assert stdout.count("(not started): unknown config key 'train.nope'") == 2
    assert not (tmp_path / "s" / "train.nope=1").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"train: {lr: [1", "invalid YAML"),
        (b"- a list\n", "expected a mapping"),
        (b"\xff\xfe: 1", "not a UTF-8 text file"),
    ],
)
def test_cli_sweep_refuses_a_corrupt_sweep_yaml(tmp_path, capsys, content, needle):
    """A run directory whose sweep.yaml cannot be read: one line, exit 2, nothing touched."""
    out = tmp_path / "s"
    (out / "run").mkdir(parents=True)
    (out / "run" / REQUEST).write_bytes(content)
    argv = ["sweep", "--out", str(out), "--set", "data.dataset=digits"]
    line = expect_refusal(capsys, argv, code=2, needle=needle, root=tmp_path)
    assert str(out / "run" / REQUEST) in line and "use another --out or delete that run" in line
    assert not (out / "summary.md").exists()


def test_progress_line_counts_runs_and_extrapolates_the_time_left():
    assert progress_line(0, 2, 3, 5.0) == "0/5 ended, 2 running, 3 queued; 0m05s elapsed"
    # 2 ended in 200 s: the 3 left take ~300 s
    assert progress_line(2, 1, 2, 200.0) == (
        "2/5 ended, 1 running, 2 queued; 3m20s elapsed, ~5m00s left"
    )
    assert progress_line(5, 0, 0, 7300.0) == "5/5 ended, 0 running, 0 queued; 2h01m elapsed"
