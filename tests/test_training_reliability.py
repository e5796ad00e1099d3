"""The named pieces of the training loop: LR schedule and epoch statistics."""

from __future__ import annotations

import pytest
import torch

from cvae.config import TrainConfig
from cvae.training.distributed import Context
from cvae.training.schedule import LRSchedule
from cvae.training.stats import EpochStats


def _lrs(kind: str, steps: int, epochs: int, losses: list[float] | None = None) -> list[float]:
    tc = TrainConfig(lr=1.0, scheduler=kind, lr_gamma=0.5, warmup_epochs=1.0,
                     plateau_factor=0.5, plateau_patience=0)  # fmt: skip
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=tc.lr)
    schedule = LRSchedule(tc, optimizer, steps)
    seen = []
    for epoch in range(epochs):
        for _ in range(steps):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.on_step()
        schedule.on_epoch((losses or [1.0] * epochs)[epoch])
    return seen


def test_lr_schedules():
    assert _lrs("none", 2, 2) == [1.0] * 4
    assert _lrs("exponential", 2, 3) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert _lrs("warmup", 4, 2) == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert _lrs("plateau", 1, 3, losses=[1.0, 1.0, 0.1]) == [1.0, 1.0, 0.5]


def test_lr_schedule_state_round_trips():
    tc = TrainConfig(lr=1.0, scheduler="warmup", warmup_epochs=1.0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=tc.lr)
    first = LRSchedule(tc, optimizer, 4)
    optimizer.step()
    first.on_step()
    again = LRSchedule(tc, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 4)
    again.load_state_dict(first.state_dict())
    assert again.state_dict() == first.state_dict()
    assert LRSchedule(TrainConfig(), optimizer, 4).state_dict() is None


def test_epoch_stats_weight_by_batch_and_resume_from_totals():
    stats = EpochStats(Context(), torch.device("cpu"), {})
    stats.add({"loss": torch.tensor(1.0), "kl": torch.tensor(2.0)}, 3)
    stats.add({"loss": torch.tensor(3.0), "kl": torch.tensor(2.0)}, 1)
    assert stats.loss_finite()
    assert stats.totals() == {"kl": 8.0, "loss": 6.0, "n": 4.0}
    resumed = EpochStats(Context(), torch.device("cpu"), stats.totals())
    resumed.add({"loss": torch.tensor(0.0), "kl": torch.tensor(0.0)}, 4)
    assert resumed.means() == pytest.approx({"kl": 1.0, "loss": 0.75})
    resumed.add({"loss": torch.tensor(float("nan")), "kl": torch.tensor(0.0)}, 1)
    assert not resumed.loss_finite()
    # a second process counts the saved totals once: it starts from zeros
    other = EpochStats(Context(rank=1, world=2), torch.device("cpu"), stats.totals())
    assert other.count == 0.0 and all(float(v) == 0.0 for v in other.sums.values())
