"""Past one machine: ``cvae train`` started by two torchrun agents (two "nodes" on localhost,
c10d rendezvous, gloo on CPU) trains and resumes like one process on the global batch, with
rank 0 alone writing the run; processes that name different run directories are refused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.distributed as dist
from badinput import TINY_TRAIN, expect_refusal
from test_distributed import TIMEOUT_S, tiny_config
from torch.testing import assert_close

import cvae
from cvae.config import save_yaml
from cvae.errors import CvaeError
from cvae.training import distributed
from cvae.training.checkpoint import all_finite, load_checkpoint
from cvae.training.runlog import read_metrics
from cvae.training.trainer import CHECKPOINT

NODES = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _stop(agents: list[subprocess.Popen]) -> None:
    """SIGTERM each agent still running (torchrun then stops its workers); after 30 s SIGKILL
    the agent and the workers it had (they run in their own sessions). No SIGINT: CI ignores
    it."""
    running = [a for a in agents if a.poll() is None]
    workers = {a.pid: _children(a.pid) for a in running}
    for agent in running:
        agent.terminate()
    for agent in running:
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
            for pid in workers[agent.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def two_agents(train_args: list[str], logs: Path) -> str:
    """Run ``cvae train TRAIN_ARGS`` as the job of two torchrun agents (one process each) that
    meet at a c10d rendezvous on localhost, as two machines would; return their joined output.
    Fails after TIMEOUT_S, leaving no process behind."""
    endpoint = f"127.0.0.1:{_free_port()}"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={NODES}",
           "--nproc-per-node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
           f"--rdzv-id={logs.name}", "-m", "cvae", "train", *train_args]  # fmt: skip
    logs.mkdir()
    outputs = [logs / f"node{n}.log" for n in range(NODES)]
    agents: list[subprocess.Popen] = []
    try:
        for path in outputs:
            with open(path, "wb") as out:
                agents.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_S
        for agent in agents:
            agent.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        _stop(agents)
    text = "\n".join(path.read_text() for path in outputs)
    assert [a.returncode for a in agents] == [0] * NODES, text
    return text


def _assert_same_weights(run: Path, reference: Path, epoch: int) -> None:
    a, b = load_checkpoint(reference / CHECKPOINT), load_checkpoint(run / CHECKPOINT)
    assert b["epoch"] == epoch and all_finite(b["method"])
    assert a["method"].keys() == b["method"].keys()
    for key, value in a["method"].items():
        assert_close(b["method"][key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.integration
def test_two_torchrun_agents_train_and_resume_like_one_process(tmp_path):
    """Two agents x one gloo process on digits (CVAE: NT-Xent gathered across the "nodes",
    global batch 25 split 13 + 12): the checkpoint equals the 1-process run's after epoch 1,
    and after both resume (each reading the shared run dir) to epoch 2; one process wrote and
    reported."""
    config = tmp_path / "tiny.yaml"
    save_yaml(tiny_config("cvae", epochs=1), config)
    run, one = tmp_path / "run", tmp_path / "one"

    out = two_agents(["--config", str(config), "--out", str(run)], tmp_path / "new")
    assert "device: cpu x 2 processes" in out  # one job, not two single-process runs
    assert out.count(f"trained 1 epochs -> {run}") == 1 and out.count(" run dir: ") == 1
    cvae.train(tiny_config("cvae", epochs=1), one)
    _assert_same_weights(run, one, 1)

    out = two_agents(["--resume", str(run), "--epochs", "2"], tmp_path / "resume")
    assert out.count(f"trained 2 epochs -> {run}") == 1
    cvae.train(tiny_config("cvae", epochs=2), one, resume=True)
    _assert_same_weights(run, one, 2)
    assert [r["epoch"] for r in read_metrics(run / "metrics.csv")] == [1.0, 2.0]


def test_processes_naming_different_run_dirs_are_refused(monkeypatch, tmp_path):
    """Rank 0 writes the run and every rank reads a resumed checkpoint from it: the ranks'
    paths (gathered, faked here for two ranks) must be the same."""
    gathered = [str(tmp_path / "run")]

    def fake_gather(out: list, obj: object) -> None:
        out[:] = [gathered[0], obj]

    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", fake_gather)
    distributed.check_same_run_dir(tmp_path / "run")
    with pytest.raises(CvaeError, match=r"rank 0: .*/run, rank 1: .*/other\); pass the same"):
        distributed.check_same_run_dir(tmp_path / "other")


def test_torchrun_without_out_is_refused(capsys, monkeypatch, tmp_path):
    """Under torchrun each process would name its own timestamped default run dir."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["train", "--method", "vae", "--device", "cpu", *TINY_TRAIN]
    expect_refusal(capsys, argv, code=2, needle="pass --out", root=tmp_path)
