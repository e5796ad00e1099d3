"""TensorBoard: the per-epoch scalars in ``RUN_DIR/tensorboard`` (the config and the figures
are files of the run directory already)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class TensorBoardTracker:
    """Scalars only; a resumed run purges the events after its checkpoint (``purge_step``)."""

    def __init__(self, run_dir: Path, purge_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)
        self.record: dict[str, Any] = {}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_artifacts(self, paths: Sequence[Path], folder: str) -> None:
        """Nothing: TensorBoard keeps scalars."""

    def close(self, failed: bool = False) -> None:
        self.writer.close()
