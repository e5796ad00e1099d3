"""Atomic checkpoint files, loaded with ``weights_only=True``.

A checkpoint holds everything an exact resume needs: model/method and optimizer state, the
position in training (completed epochs, step within the epoch), the running epoch sums, the
augmentation/noise generator state and the global torch RNG states.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, NoReturn

import torch

from cvae.errors import CvaeError, TrainingDiverged, one_line
from cvae.interrupts import held_signals

CHECKPOINT = Path("checkpoints") / "last.pt"
"""A run's checkpoint, relative to its directory."""

BEST = Path("checkpoints") / "best.pt"
"""The run's checkpoint at its lowest validation loss (``best_epoch``, ``best_val_loss``)."""

CHECKPOINTS = {"last": CHECKPOINT, "best": BEST}
"""Checkpoint choices (``cvae export --checkpoint``) -> path relative to a run directory."""


def save_checkpoint(payload: dict[str, Any], path: Path) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file in the same folder, fsync, rename).

    A write error (a full disk) leaves the previous file and raises a CvaeError naming ``path``.
    Ctrl-C or SIGTERM during the write is delivered once the new file is in place (torch's writer
    calls back into Python, and an exception raised there breaks it instead of stopping it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with held_signals():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            Path(tmp).unlink(missing_ok=True)
            raise CvaeError(
                f"{path}: cannot write checkpoint ({err.strerror or err}); the previous one is kept"
            ) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def temp_files(folder: Path, name: str) -> list[Path]:
    """Leftovers of interrupted atomic writes of ``folder/name`` (by this module or RunLog)."""
    if not folder.is_dir():
        return []
    return sorted([*folder.glob(f".{name}.*"), *folder.glob(f"{name}.tmp")])


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); a bad file raises one-line CvaeError."""
    if not path.is_file():
        raise CvaeError(f"{path}: checkpoint not found")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt/unsafe files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if reason.startswith("Weights only load failed"):  # torch's advice is unsafe: not shown
            reason = "it holds Python objects other than tensors, not loaded for safety"
        raise CvaeError(f"{path}: unreadable checkpoint ({reason})") from None
    return ckpt


def load_run_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`load_checkpoint` of a run's checkpoint, with every entry a resume needs."""
    return check_checkpoint(load_checkpoint(path, map_location), path)


RUN_KEYS: dict[str, type | tuple[type, ...]] = {
    "method": dict,
    "optimizer": dict,
    "scheduler": (dict, type(None)),
    "epoch": int,
    "step": int,
    "sums": dict,
    "generator": (torch.Tensor, type(None)),
    "rng": dict,
    "config": dict,
    "image_shape": list,
}
"""Entries of a run checkpoint and their types."""


def check_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    """``ckpt`` if it has every entry of a run checkpoint, else a one-line CvaeError."""
    if not isinstance(ckpt, dict):
        raise CvaeError(f"{path}: not a cvae checkpoint (a {type(ckpt).__name__}, not a dict)")
    missing = [k for k in RUN_KEYS if k not in ckpt]
    wrong = [k for k, t in RUN_KEYS.items() if k in ckpt and not isinstance(ckpt[k], t)]
    if missing or wrong:
        what = f"missing {', '.join(missing)}" if missing else f"bad {', '.join(wrong)}"
        raise CvaeError(f"{path}: not a cvae run checkpoint ({what})")
    return ckpt


def load_state(module: Any, state: dict[str, Any], path: Path, what: str) -> None:
    """``module.load_state_dict(state)``; a mismatch (foreign checkpoint) is a one-line error."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as err:
        raise CvaeError(f"{path}: {what} state does not fit this run ({one_line(err)})") from None


def all_finite(tensors: Any) -> bool:
    """Whether every floating-point tensor in a (nested) state dict is finite (one sync)."""
    flags = [torch.isfinite(t).all() for t in _tensors(tensors) if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Owns what an exact resume needs: the method's and optimizer's state, the LR schedule's,
    the global RNG states, the position (epoch, step), the epoch's running sums and the
    augmentation generator's state. It writes nothing non-finite: a diverged run keeps its
    last good checkpoint. It also keeps ``best.pt`` beside ``last.pt`` (:meth:`save_best`); the
    best epoch and validation loss so far travel in every checkpoint, so a resume keeps them."""

    def __init__(
        self,
        path: Path,
        method: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: Any,
        config: dict[str, Any],
        image_shape: list[int],
        writer: bool,
    ) -> None:
        self.path, self.method, self.optimizer, self.schedule = path, method, optimizer, schedule
        self.config, self.image_shape, self.writer = config, image_shape, writer
        self.best: dict[str, Any] = {}
        """``{"best_epoch", "best_val_loss"}`` once a validation loss was seen."""

    def restore(
        self, ckpt: dict[str, Any]
    ) -> tuple[int, int, dict[str, float], torch.Tensor | None]:
        """Load a (checked) run checkpoint's states; return its position: (epoch, step, the
        epoch's sums, the generator state)."""
        load_state(self.method, ckpt["method"], self.path, "model")
        load_state(self.optimizer, ckpt["optimizer"], self.path, "optimizer")
        load_state(self.schedule, ckpt["scheduler"], self.path, "scheduler")
        set_rng_state(ckpt["rng"])
        self.best = {k: ckpt[k] for k in ("best_epoch", "best_val_loss") if k in ckpt}
        return ckpt["epoch"], ckpt["step"], ckpt["sums"], ckpt["generator"]

    def check_finite(self, where: str) -> None:
        """Weights and optimizer state finite (identical on every process: all stop together)."""
        if not (all_finite(self.method.state_dict()) and all_finite(self.optimizer.state_dict())):
            self.diverged("the weights", where)

    def diverged(self, what: str, where: str) -> NoReturn:
        kept = (
            f"last good checkpoint kept at {self.path}"
            if self.path.exists()
            else "no checkpoint was written"
        )
        raise TrainingDiverged(
            f"{what} became non-finite {where}; {kept} (lower train.lr or set train.grad_clip)"
        )

    def save(
        self, epoch: int, step: int, generator: torch.Tensor | None, sums: dict[str, float]
    ) -> None:
        """Checkpoint after ``step`` steps of epoch ``epoch`` (step 0: ``epoch`` epochs done).
        Every process calls it (the finiteness check); the writer alone writes."""
        where = f"after epoch {epoch + 1} step {step}" if step else f"after epoch {epoch}"
        self.check_finite(where)
        if self.writer:
            save_checkpoint(self._payload(epoch, step, generator, sums), self.path)

    def save_best(self, epoch: int, val_loss: float) -> bool:
        """After ``epoch`` epochs (weights checked finite), write ``best.pt`` if ``val_loss`` is
        the lowest so far (the writer alone: it validated); return whether it did."""
        if not self.writer or val_loss >= self.best.get("best_val_loss", math.inf):
            return False
        self.best = {"best_epoch": epoch, "best_val_loss": val_loss}
        save_checkpoint(self._payload(epoch, 0, None, {}), self.path.with_name(BEST.name))
        return True

    def _payload(
        self, epoch: int, step: int, generator: torch.Tensor | None, sums: dict[str, float]
    ) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "epoch": epoch,
            "step": step,
            "sums": sums,
            "generator": generator,
            "rng": rng_state(),
            "config": self.config,
            "image_shape": self.image_shape,
            **self.best,
        }
