"""The learning-rate schedule of ``train.scheduler``, told of every step and every epoch."""

from __future__ import annotations

from typing import Any

import torch

from cvae.config import TrainConfig


class LRSchedule:
    """none | exponential: x lr_gamma per epoch (BTVAE) | plateau: ReduceLROnPlateau on the
    epoch's mean train loss (CR-VAE) | warmup: linear from 0 over warmup_epochs, per step, then
    constant (AAVAE)."""

    def __init__(
        self, tc: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
    ) -> None:
        self.kind = tc.scheduler
        sched = torch.optim.lr_scheduler
        self.scheduler: Any = None
        if self.kind == "exponential":
            self.scheduler = sched.ExponentialLR(optimizer, gamma=tc.lr_gamma)
        elif self.kind == "plateau":
            self.scheduler = sched.ReduceLROnPlateau(
                optimizer, factor=tc.plateau_factor, patience=tc.plateau_patience, min_lr=tc.min_lr
            )
        elif self.kind == "warmup":
            warmup = max(1, round(tc.warmup_epochs * steps_per_epoch))
            self.scheduler = sched.LambdaLR(optimizer, lambda step: min(1.0, step / warmup))

    def on_step(self) -> None:
        if self.kind == "warmup":
            self.scheduler.step()

    def on_epoch(self, train_loss: float) -> None:
        if self.kind == "exponential":
            self.scheduler.step()
        elif self.kind == "plateau":
            self.scheduler.step(train_loss)

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state or {})
