"""Atomic checkpoint files, loaded with ``weights_only=True``.

A checkpoint holds everything an exact resume needs: model/method and optimizer state, the
position in training (completed epochs, step within the epoch), the running epoch sums, the
augmentation/noise generator state and the global torch RNG states.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from cvae.errors import CvaeError


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a bad file raises one-line CvaeError."""
    if not path.is_file():
        raise CvaeError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CvaeError(f"{path}: unreadable checkpoint ({reason})") from None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
