"""MLflow: a run of experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``cvae``) in the store
``$MLFLOW_TRACKING_URI`` (default ``sqlite:///mlruns.db``, a local SQLite file in the current
folder: MLflow 3 refuses its plain-folder store unless ``MLFLOW_ALLOW_FILE_STORE=true``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.errors import CvaeError
from cvae.tracking.base import recorded, require

DEFAULT_URI = "sqlite:///mlruns.db"
DEFAULT_EXPERIMENT = "cvae"
PARAMS_PER_BATCH = 100  # MLflow's limit per log_batch


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or the default, a relative SQLite file or folder made absolute
    (``cvae eval`` may run from another folder)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    sqlite = "sqlite:///"
    if uri.startswith(sqlite) and not uri.startswith(sqlite + "/"):
        return sqlite + str(Path(uri.removeprefix(sqlite)).resolve())
    if "://" not in uri and ":" not in uri.split("/")[0]:  # a folder: MLflow's file store
        return str(Path(uri).resolve())
    return uri


class MLflowTracker:
    """Logs through an ``MlflowClient`` into the run ``run_id``."""

    def __init__(self, client: Any, run_id: str, record: dict[str, Any]) -> None:
        self.client, self.run_id, self.record = client, run_id, record

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=entries)

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        for path in paths:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), folder)

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


def open_tracker(
    run_dir: Path, record: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> MLflowTracker:
    """A new MLflow run named after ``run_dir`` with ``params`` (``record`` None), or the run
    ``record`` names, set running again."""
    mlflow = require("mlflow")
    uri = tracking_uri() if record is None else recorded(record, "tracking_uri", "mlflow")
    try:
        client = mlflow.MlflowClient(uri)
        if record is not None:
            run_id = recorded(record, "run_id", "mlflow")
            client.update_run(run_id, status="RUNNING")
            return MLflowTracker(client, run_id, dict(record))
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        experiment = client.get_experiment_by_name(name)
        exp_id = client.create_experiment(name) if experiment is None else experiment.experiment_id
        tags = {"cvae.run_dir": str(run_dir.resolve())}
        run_id = client.create_run(exp_id, run_name=run_dir.name, tags=tags).info.run_id
        _log_params(client, run_id, params)
    except mlflow.exceptions.MlflowException as err:
        first = str(err.message).strip().splitlines()[0]
        raise CvaeError(f"mlflow ({uri}): {first}") from None
    return MLflowTracker(client, run_id, {"tracking_uri": uri, "run_id": run_id})


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    entries = [
        Param(key, value if isinstance(value, str) else json.dumps(value))
        for key, value in params.items()
    ]
    for i in range(0, len(entries), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=entries[i : i + PARAMS_PER_BATCH])
