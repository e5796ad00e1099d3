"""Weights & Biases: a run of project ``$WANDB_PROJECT`` (default ``cvae``) written under the
run directory (``RUN_DIR/wandb``, or ``$WANDB_DIR``). Offline unless ``$WANDB_MODE`` says
otherwise or ``$WANDB_API_KEY`` is set: an offline run is uploaded later by ``wandb sync``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cvae.errors import CvaeError
from cvae.tracking.base import recorded, require

DEFAULT_PROJECT = "cvae"


def mode() -> str:
    """``$WANDB_MODE``, else online with an API key in ``$WANDB_API_KEY``, else offline (never
    a login prompt, never a network call without a key)."""
    keyed = bool(os.environ.get("WANDB_API_KEY"))
    return os.environ.get("WANDB_MODE") or ("online" if keyed else "offline")


class WandbTracker:
    """Logs into the W&B run ``run`` (one ``wandb.init``)."""

    def __init__(self, run: Any, record: dict[str, Any]) -> None:
        self.run, self.record = run, record

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.run.log(dict(metrics), step=step)

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        import wandb

        files = [path for path in paths if path.is_file()]
        if not files:
            return
        name = re.sub(r"[^\w.-]", "-", f"{self.run.name}-{folder}")
        artifact = wandb.Artifact(name, type=folder)
        for path in files:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def open_tracker(
    run_dir: Path, record: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> WandbTracker:
    """A new W&B run named after ``run_dir`` with ``params`` as its config (``record`` None),
    or the run ``record`` names, resumed."""
    wandb = require("wandb")
    settings = wandb.Settings(console="off", silent=True)
    chosen = mode()
    if record is None:
        project = os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
        folder = os.environ.get("WANDB_DIR") or str(run_dir.resolve())
        start: dict[str, Any] = {"config": dict(params)}
    else:
        project, folder = recorded(record, "project", "wandb"), recorded(record, "dir", "wandb")
        start = {"id": recorded(record, "run_id", "wandb"), "resume": "allow"}
    try:
        run = wandb.init(project=project, name=run_dir.name, dir=folder, mode=chosen,
                         settings=settings, **start)  # fmt: skip
    except wandb.Error as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CvaeError(f"wandb ({chosen} mode): {first}") from None
    return WandbTracker(run, {"run_id": run.id, "project": project, "dir": folder})
