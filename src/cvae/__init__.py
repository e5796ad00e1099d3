"""cvae: variational autoencoders regularised with self-supervised objectives.

Python API::

    import cvae
    cfg = cvae.load_preset("cvae-mnist-paper")      # or cvae.RunConfig(...)
    cvae.train(cfg, "runs/cvae")                    # same loop as `cvae train`
    run = cvae.load("runs/cvae")
    mu, logvar = run.encode(images)                 # uint8 or float images
    x = run.sample(16)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cvae.api import Run, load, train
    from cvae.config import RunConfig, load_preset
    from cvae.data import load_data

__version__ = "0.1.0"

__all__ = ["Run", "RunConfig", "__version__", "load", "load_data", "load_preset", "train"]

# imported on first use, so that `cvae --help` and Ctrl-C at start-up need no torch import
_LAZY = {
    "Run": "cvae.api",
    "load": "cvae.api",
    "RunConfig": "cvae.config",
    "load_preset": "cvae.config",
    "load_data": "cvae.data",
    "train": "cvae.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cvae' has no attribute {name!r}")
