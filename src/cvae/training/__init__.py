"""Training loop, checkpoints and run logs."""

from cvae.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
