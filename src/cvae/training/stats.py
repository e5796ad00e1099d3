"""Image-weighted sums of the loss terms over an epoch, summed over processes when read."""

from __future__ import annotations

import torch

from cvae.training.distributed import Context


class EpochStats:
    """Running sums of each loss term times its batch size, and the number of images.

    ``saved`` are the global totals a mid-epoch checkpoint holds (:meth:`totals`, the count under
    ``"n"``); under data-parallel training only the main process passes them, so that they are
    counted once when the processes' sums are added.
    """

    def __init__(self, ctx: Context, device: torch.device, saved: dict[str, float]) -> None:
        saved = saved if ctx.main else dict.fromkeys(saved, 0.0)
        self.ctx = ctx
        self.count = saved.get("n", 0.0)
        self.sums = {k: torch.tensor(v, device=device) for k, v in saved.items() if k != "n"}

    def add(self, terms: dict[str, torch.Tensor], images: int) -> None:
        for key, value in terms.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float() * images
        self.count += images

    def loss_finite(self) -> bool:
        """Whether the summed loss of every step so far is finite (the same on every process)."""
        return bool(torch.isfinite(self.ctx.sum({"loss": self.sums["loss"]})["loss"]))

    def totals(self) -> dict[str, float]:
        """Global sums and ``"n"``, the image count (a collective: every process calls it)."""
        return {k: float(v) for k, v in self.ctx.sum({**self.sums, "n": self.count}).items()}

    def means(self) -> dict[str, float]:
        """Global mean of each term over the epoch's images (a collective)."""
        totals = self.totals()
        count = totals.pop("n")
        return {k: v / count for k, v in totals.items()}
