"""Where each split of a loaded dataset comes from (:class:`SplitPlan`), and the uint8 cache of
splits that were loaded in memory (:func:`cache_splits`)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvae.data.base import TEST_STREAM, DataSplits, ImageDataset, Loaded
from cvae.data.memmap import cache_key, read_cache, write_cache


@dataclass
class SplitPlan:
    """The splits a loader gave and the seeded parts :func:`cvae.data.load_data` carves."""

    loaded: Loaded
    val_fraction: float
    test_fraction: float
    seed: int

    @property
    def user_folder(self) -> bool:
        """A user's image folder (its missing splits are said on the console)."""
        return "split_folders" in self.loaded.extra

    @property
    def train_source(self) -> str:
        if not self.user_folder:
            return "the official train set"
        return "train/" if "train" in self.loaded.extra["split_folders"] else "the folder's images"

    def fallbacks(self, splits: DataSplits) -> list[str]:
        """One line per split of a user folder that is not a folder of its own."""
        if not self.user_folder:
            return []
        lines, where = [], self.loaded.source
        if self.loaded.test is None and splits.test is not None:
            lines.append(
                f"{where} has no test/ folder: test = {len(splits.test)} images held out of "
                f"{self.train_source} at random (test_fraction {self.test_fraction:g}, "
                f"split_seed {self.seed})"
            )
        elif splits.test is None:
            lines.append(
                f"{where} has no test/ folder and test_fraction {self.test_fraction:g} of its "
                f"{len(self.loaded.train)} images is none: no test split"
            )
        if self.loaded.val is None:
            lines.append(
                f"{where} has no val/ folder: val = {len(splits.val)} images of the rest of "
                f"{self.train_source} at random (val_fraction {self.val_fraction:g}, "
                f"split_seed {self.seed})"
            )
        return lines

    def record(self, splits: DataSplits) -> dict[str, Any]:
        """The origin of each split, for ``data.json`` and ``metrics.json``."""
        own = "{}/ folder" if self.user_folder else "official {} split"
        carved = self.loaded.val is None or (self.loaded.test is None and splits.test is not None)
        test: str | None = None
        if self.loaded.test is not None:
            test = own.format("test")
        elif splits.test is not None:
            test = (
                f"seeded {self.test_fraction:g} of {self.train_source} held out "
                f"(split_seed {self.seed} + {TEST_STREAM})"
            )
        val = own.format("val") if self.loaded.val is not None else (
            f"seeded {self.val_fraction:g} of the rest of {self.train_source} "
            f"(split_seed {self.seed})"
        )  # fmt: skip
        train = f"{self.train_source}, less the seeded parts" if carved else self.train_source
        return {"train": train, "val": val, "test": test, "fallbacks": self.fallbacks(splits)}


def cache_splits(splits: DataSplits, folder: Path) -> tuple[DataSplits, str]:
    """``splits`` written (train, val, test rows, in order) to one uint8 cache file under
    ``folder``, keyed by the sha1 of their bytes and labels, and returned as views of it."""
    parts = {n: s for n, s in (("train", splits.train), ("val", splits.val),
                                ("test", splits.test)) if s is not None}  # fmt: skip
    digest = hashlib.sha1()
    ranges, start = {}, 0
    for name, part in parts.items():
        digest.update(part.tensor.numpy().tobytes())
        if part.labels is not None:
            digest.update(part.labels.numpy().tobytes())
        ranges[name], start = [start, start + len(part)], start + len(part)
    path = folder / f"{splits.name}-{cache_key([digest.hexdigest(), ranges])}.npy"
    if read_cache(path) is None:
        meta = {"count": start, "ranges": ranges}
        write_cache(path, splits.train.shape, start, _rows(parts.values()), meta)
    found = read_cache(path)
    assert found is not None, path
    images = found[0]
    views = {
        name: ImageDataset(images.take(torch.arange(*ranges[name])), part.labels, part.classes)
        for name, part in parts.items()
    }
    mapped = DataSplits(splits.name, views["train"], views["val"], views.get("test"), splits.info)
    return mapped, str(path)


def _rows(parts: Iterable[ImageDataset]) -> Iterator[np.ndarray]:
    for part in parts:
        yield from part.tensor.numpy()
