"""The run directory's guard: a new run never takes over a folder that is not a run, and one
process at a time trains into a run (an exclusive ``flock`` on ``RUN/.cvae.lock``, released
when the process ends however it ends). The lock file also marks the folder as a cvae run."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cvae.errors import CvaeError
from cvae.training.checkpoint import CHECKPOINT, temp_files
from cvae.training.runlog import METRICS

LOCK = ".cvae.lock"
PREPARED = frozenset({"sweep.yaml", "train.log"})
"""Files a sweep writes into a run directory before the run starts (training never writes
them, so a folder holding only these is free for a new run)."""


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def check_new(self) -> None:
        """Refuse a folder that holds a run, or files that are not a cvae run's."""
        if (self.path / CHECKPOINT).exists():
            raise CvaeError(f"{self.path} already holds a run; use --resume or another --out")
        if self.path.exists() and not self.path.is_dir():
            raise CvaeError(f"{self.path} is a file, not a run directory; choose another --out")
        foreign = self.path.is_dir() and {p.name for p in self.path.iterdir()} - PREPARED
        if foreign and not (self.path / LOCK).exists():
            raise CvaeError(
                f"{self.path} is not empty and is not a cvae run; choose another --out "
                "(nothing was written)"
            )

    def lock(self) -> None:
        """Take the run's lock (creating the folder), then remove leftovers of writes that an
        earlier, killed process left; a second process is refused with a one-line error."""
        if self._fd is not None:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CvaeError(
                f"{self.path} is in use by another cvae train; wait for it to finish or stop it"
            ) from None
        self._fd = fd
        for tmp in [*temp_files(self.path / CHECKPOINT.parent, CHECKPOINT.name),
                    *temp_files(self.path, METRICS)]:  # fmt: skip
            tmp.unlink(missing_ok=True)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
