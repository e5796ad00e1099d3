"""uint8 image datasets (in memory or memory-mapped), seeded splits and the uint8 -> float
conversion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from cvae.data.memmap import MemmapImages
from cvae.errors import DataError

ValueRange = Literal["01", "pm1"]
IN_MEMORY = "in-memory"  # the dataset of a run trained on splits handed to the Python API


@dataclass
class ImageDataset:
    """A whole dataset.

    images: uint8 ``[N, C, H, W]``, a tensor or a :class:`MemmapImages` (rows of a cache file,
    read when indexed); labels: int64 ``[N]`` or ``None`` for unlabeled data.
    """

    images: torch.Tensor | MemmapImages
    labels: torch.Tensor | None = None
    classes: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(
                "images must be uint8 [N, C, H, W], "
                f"got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(f"{len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, index: torch.Tensor) -> ImageDataset:
        labels = None if self.labels is None else self.labels[index]
        images = self.images
        return ImageDataset(
            images.take(index) if isinstance(images, MemmapImages) else images[index],
            labels,
            self.classes,
        )

    @property
    def tensor(self) -> torch.Tensor:
        """The images as one tensor (a cache's rows are read into memory)."""
        return self.images if isinstance(self.images, torch.Tensor) else self.images[:]

    def in_memory(self) -> ImageDataset:
        """The same dataset with its images read into one tensor (itself if already)."""
        if not isinstance(self.images, MemmapImages):
            return self
        return ImageDataset(self.images.load(), self.labels, self.classes)

    def to(self, device: torch.device | str) -> ImageDataset:
        labels = None if self.labels is None else self.labels.to(device)
        return ImageDataset(self.images.to(device), labels, self.classes)

    def with_channels(self, channels: int) -> ImageDataset:
        """Grey images replicated to ``channels`` (e.g. MNIST through an RGB network)."""
        have = self.images.shape[1]
        if have == channels:
            return self
        if have != 1:
            raise DataError(f"cannot turn {have}-channel images into {channels} channels")
        images = self.images
        if isinstance(images, MemmapImages):
            return ImageDataset(images.expand_to(channels), self.labels, self.classes)
        return ImageDataset(
            images.expand(-1, channels, -1, -1).contiguous(), self.labels, self.classes
        )


@dataclass
class Loaded:
    """What every dataset loader returns: the official splits and one schema of provenance.

    ``files``: each file checked -> its md5; ``downloaded``: the names fetched by this call;
    ``val``: an official validation split (else ``load_data`` carves one out of ``train``);
    ``extra``: the loader's own provenance (transform, cache, ...).
    """

    train: ImageDataset
    test: ImageDataset | None
    source: str
    files: dict[str, str] = field(default_factory=dict)
    md5_verified: bool = False
    downloaded: list[str] = field(default_factory=list)
    val: ImageDataset | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def info(self) -> dict[str, Any]:
        """Provenance as a JSON-able dict: source, files, md5_verified, downloaded, extras."""
        return {
            "source": self.source,
            "files": dict(self.files),
            "md5_verified": self.md5_verified,
            "downloaded": list(self.downloaded),
            **self.extra,
        }


@dataclass
class DataSplits:
    """Train/val split of the official training set, plus the official test split (if any).

    ``info`` records provenance (source files, checksums, split seed) for run directories.
    """

    name: str
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    info: dict = field(default_factory=dict)

    def with_channels(self, channels: int) -> DataSplits:
        test = None if self.test is None else self.test.with_channels(channels)
        info = {**self.info, "channels_replicated_to": channels}
        return DataSplits(
            self.name,
            self.train.with_channels(channels),
            self.val.with_channels(channels),
            test,
            info,
        )

    def in_memory(self) -> DataSplits:
        """Every split's images in memory (see :meth:`ImageDataset.in_memory`)."""
        test = None if self.test is None else self.test.in_memory()
        return DataSplits(self.name, self.train.in_memory(), self.val.in_memory(), test, self.info)


TEST_STREAM = 1_000_003
"""Added to the split seed for the held-out test split, so it is drawn apart from ``val``."""


def split_train_val(
    data: ImageDataset, val_fraction: float = 0.1, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """Seeded random split (the papers use an unseeded 90/10 ``random_split``); also carves the
    held-out test split (with ``seed + TEST_STREAM``)."""
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(len(data) * val_fraction))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(perm[n_val:]), data.subset(perm[:n_val])


def to_float(images: torch.Tensor, value_range: ValueRange = "01") -> torch.Tensor:
    """uint8 -> float32 in [0, 1] (``/255``, as ToTensor) or [-1, 1] (Normalize 0.5/0.5)."""
    x = images.float().div_(255.0)
    return x if value_range == "01" else x.mul_(2.0).sub_(1.0)


def from_float(x: torch.Tensor, value_range: ValueRange = "01") -> torch.Tensor:
    """Inverse of :func:`to_float` onto [0, 1] (clamped), for plotting and FID."""
    x = x if value_range == "01" else (x + 1.0) / 2.0
    return x.clamp(0.0, 1.0)
