"""cvae: variational autoencoders regularised with self-supervised objectives.

Python API::

    import cvae
    cfg = cvae.load_preset("cvae-mnist-paper")      # or cvae.RunConfig(...)
    cvae.train(cfg, "runs/cvae")                    # same loop as `cvae train`
    run = cvae.load("runs/cvae")
    mu, logvar = run.encode(images)                 # uint8 or float images
    x = run.sample(16)
"""

from cvae.api import Run, load, train
from cvae.config import RunConfig, load_preset
from cvae.data import load_data

__version__ = "0.1.0"

__all__ = ["Run", "RunConfig", "__version__", "load", "load_data", "load_preset", "train"]
