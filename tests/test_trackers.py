"""Experiment tracking (cvae.tracking): the MLflow and W&B backends for real (integration: a tiny
training on digits, `cvae eval` into the same tracking run, read back through MLflow's client
and W&B's offline run files), the helpers and the refusals (default tier)."""

from __future__ import annotations

import json
import struct
import sys
import time
from pathlib import Path
from typing import Any, get_args

import pytest
from badinput import TINY_TRAIN, expect_refusal

from cvae.cli import build_parser, main
from cvae.config.schema import Logger
from cvae.errors import CvaeError
from cvae.tracking import (
    BACKENDS,
    RECORD,
    check_recorded,
    evaluation_metrics,
    flatten,
    metric_name,
    read_record,
)
from cvae.tracking.mlflow_tracker import tracking_uri
from cvae.tracking.wandb_tracker import mode

FAST_EVAL = ["--iwae-k", "0", "--fid-n", "0", "--no-linear", "--threads", "1"]
FAST_EVAL += ["--embedding", "none"]


def test_backends_are_the_config_choices() -> None:
    assert tuple(BACKENDS) == get_args(Logger)


def test_flatten_and_metric_names() -> None:
    tree = {"method": "vae", "train": {"lr": 1e-4, "stages": []}, "model": {"channels": [8]}}
    assert flatten(tree) == {
        "method": "vae",
        "train.lr": 1e-4,
        "train.stages": [],
        "model.channels": [8],
    }
    names = ["train_loss", "val_kl", "lr", "images_per_sec", "training_x"]
    assert [metric_name(n) for n in names] == [
        "train/loss",
        "val/kl",
        "lr",
        "images_per_sec",
        "training_x",
    ]
    result = {"metrics": {"knn": {"value": 0.5}, "fid": {"value": None}, "au": {"value": 3}}}
    assert evaluation_metrics(result) == {"eval/knn": 0.5, "eval/au": 3.0}


def test_default_mlflow_store_is_an_absolute_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "store")
    assert tracking_uri() == str(tmp_path.resolve() / "store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://localhost:5000")
    assert tracking_uri() == "http://localhost:5000"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, "offline"), ({"WANDB_API_KEY": "k"}, "online"), ({"WANDB_MODE": "disabled"}, "disabled")],
)
def test_wandb_is_offline_without_a_key(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert mode() == expected


def test_logger_flag_adds_to_the_config_once() -> None:
    from cvae.cli import _train_config

    args = build_parser().parse_args(["train", "--logger", "wandb", "--logger", "wandb"])
    args.set = ["train.loggers=[mlflow]"]
    assert _train_config(args).train.loggers == ["mlflow", "wandb"]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_missing_package_is_one_line(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, BACKENDS[name].package, None)  # import fails
    argv = ["train", *TINY_TRAIN, "--logger", name, "--out", str(tmp_path / "run")]
    line = expect_refusal(capsys, argv, code=2, needle=f"pip install 'cvae[{name}]'", root=tmp_path)
    assert f"the {name} logger" in line
    assert not (tmp_path / "run").exists()


def test_tracked_run_needs_its_backend_for_eval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / RECORD).write_text(json.dumps({"mlflow": {"run_id": "x", "tracking_uri": "y"}}))
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(CvaeError, match=r"pip install 'cvae\[mlflow\]'"):
        check_recorded(tmp_path)


@pytest.mark.parametrize("text", ["{", '{"neptune": {}}', '{"mlflow": 3}', "[]"])
def test_malformed_record_is_refused(text: str, tmp_path: Path) -> None:
    (tmp_path / RECORD).write_text(text)
    with pytest.raises(CvaeError, match=RECORD):
        read_record(tmp_path)


def _train(*flags: str) -> None:
    assert main(["train", *TINY_TRAIN, "--set", "train.batch_size=256", *flags]) == 0


@pytest.mark.integration
def test_mlflow_run_holds_config_epochs_eval_and_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)  # the default store: ./mlruns.db
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run = tmp_path / "run"
    _train("--logger", "mlflow", "--out", str(run))
    resume = ["train", "--resume", str(run), "--epochs", "2", "--no-progress", "--threads", "1"]
    assert main(resume) == 0  # the same tracking run goes on
    capsys.readouterr()

    with monkeypatch.context() as hidden:  # eval of a tracked run without its backend
        hidden.setitem(sys.modules, "mlflow", None)
        expect_refusal(capsys, ["eval", str(run), *FAST_EVAL], code=2, needle="cvae[mlflow]",
                       root=run)  # fmt: skip
    assert main(["eval", str(run), *FAST_EVAL]) == 0

    record = read_record(run)["mlflow"]
    assert record["tracking_uri"] == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    client = mlflow.MlflowClient(record["tracking_uri"])
    got = client.get_run(record["run_id"])
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "run"
    params = got.data.params
    assert params["data.dataset"] == "digits"
    assert params["model.channels"] == "[8, 16]"
    assert params["train.epochs"] == "1"  # logged when the tracking run started
    history = client.get_metric_history(record["run_id"], "val/loss")
    csv_rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert sorted(m.step for m in history) == [1, 2] and len(csv_rows) == 2
    evaluated = json.loads((run / "metrics.json").read_text())
    expected = evaluation_metrics(evaluated)
    assert expected
    assert {k: got.data.metrics[k] for k in expected} == pytest.approx(expected)
    eval_files = {a.path for a in client.list_artifacts(record["run_id"], "eval")}
    assert {"eval/metrics.json", "eval/reconstructions.png"} <= eval_files
    run_files = {a.path for a in client.list_artifacts(record["run_id"], "run")}
    assert run_files == {"run/config.yaml", "run/data.json", "run/metrics.csv"}
    local = client.download_artifacts(record["run_id"], "eval/metrics.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == evaluated


def wandb_records(path: Path) -> list[Any]:
    """The records of a W&B offline run file (``run-<id>.wandb``: a LevelDB-style log of 32 KiB
    blocks, 7-byte chunk headers, records split FIRST/MIDDLE/LAST), as protobuf ``Record``s."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        room = block - pos % block
        if room < 7:  # the block's tail is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += room
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _logged(record: Any) -> dict[str, Any]:
    """The numbers of one W&B history record (one ``run.log`` call)."""
    return {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}


@pytest.mark.integration
def test_wandb_offline_run_holds_config_epochs_eval_and_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    for key in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):  # nothing in ~
        monkeypatch.setenv(key, str(tmp_path / key.lower()))
    run = tmp_path / "run"
    _train("--epochs", "2", "--logger", "wandb", "--out", str(run))
    assert main(["eval", str(run), *FAST_EVAL]) == 0

    record = read_record(run)["wandb"]
    assert record["dir"] == str(run.resolve()) and record["project"] == "cvae"
    files = sorted(run.glob(f"wandb/offline-run-*-{record['run_id']}/run-{record['run_id']}.wandb"))
    assert len(files) == 2  # the training, then the evaluation resuming it
    train_records, eval_records = (wandb_records(f) for f in files)

    def of(records: list[Any], kind: str) -> list[Any]:
        return [r for r in records if r.WhichOneof("record_type") == kind]

    (started,) = (r.run for r in of(train_records, "run"))
    config = {u.key: json.loads(u.value_json) for u in started.config.update}
    assert config["data.dataset"] == "digits" and config["train.epochs"] == 2
    epochs = [_logged(h) for h in of(train_records, "history")]
    assert [e["_step"] for e in epochs] == [1, 2]
    csv_rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert all("val/loss" in e for e in epochs) and len(csv_rows) == 2
    assert {a.artifact.type for a in of(train_records, "artifact")} == {"run"}

    expected = evaluation_metrics(json.loads((run / "metrics.json").read_text()))
    logged: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while True:  # in-process, W&B's service may still be writing the file after finish()
        for h in of(eval_records, "history"):
            logged |= _logged(h)
        if set(expected) <= set(logged) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
        eval_records = wandb_records(files[1])
    assert expected and {k: logged[k] for k in expected} == pytest.approx(expected)
    (artifact,) = (r.artifact for r in of(eval_records, "artifact"))
    names = {entry.path for entry in artifact.manifest.contents}
    assert artifact.type == "eval" and {"metrics.json", "reconstructions.png"} <= names
