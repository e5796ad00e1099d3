"""Datasets as in-memory uint8 tensors, loaded through one entry point: :func:`load_data`."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cvae.data.base import DataSplits, ImageDataset, Loaded, from_float, split_train_val, to_float
from cvae.data.registry import (
    REGISTRY,
    DatasetSpec,
    Request,
    dataset_available,
    dataset_dir,
    get_dataset,
    missing_message,
)
from cvae.errors import ConfigError

DATASETS: tuple[str, ...] = tuple(REGISTRY)
"""The dataset names, in the registry's order."""

__all__ = [
    "DATASETS",
    "REGISTRY",
    "DataSplits",
    "DatasetSpec",
    "ImageDataset",
    "Loaded",
    "dataset_available",
    "dataset_dir",
    "from_float",
    "get_dataset",
    "load_data",
    "missing_message",
    "to_float",
]

_RESIZE_CHUNK = 4096


def _resize(data: ImageDataset, size: int) -> ImageDataset:
    """Bilinear (antialiased) resize to ``size`` x ``size``; a no-op when already that size."""
    if data.images.shape[-2:] == (size, size):
        return data
    chunks = [
        F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for x in data.images.split(_RESIZE_CHUNK)
    ]
    return ImageDataset(torch.cat(chunks), data.labels, data.classes)


def load_data(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = False,
    image_size: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    synthetic_shape: tuple[int, int, int] = (1, 28, 28),
    synthetic_size: int = 2048,
) -> DataSplits:
    """Load dataset ``name`` (one of :data:`DATASETS`) and split its official train set.

    ``data_dir``: the dataset's folder or a data root holding one folder per dataset (``None``:
    ``$CVAE_DATA`` or ``~/.cache/cvae/data``; required for ``folder``); ``download`` fetches
    missing files (md5-checked). ``image_size`` resizes every image to a square (bilinear);
    celeba (default 64, after the centre crop 148) and omniglot (default 28) decode straight to
    it. A seeded ``val_fraction`` of the official train set becomes ``val``, except for celeba,
    whose official valid partition is ``val``. ``stl10-unlabeled`` trains on the 100k unlabeled
    images (labels ``None``). ``synthetic`` draws ``synthetic_size`` train and
    ``synthetic_size // 4`` test images of ``synthetic_shape``. ``info`` records the provenance
    of every split.
    """
    spec = get_dataset(name)
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size}")
    root = None if data_dir is None else Path(data_dir).expanduser()
    loaded = spec.load(Request(root, download, image_size, synthetic_shape, synthetic_size))

    train, val, test = loaded.train, loaded.val, loaded.test
    if image_size is not None:
        train = _resize(train, image_size)
        val, test = (None if d is None else _resize(d, image_size) for d in (val, test))
    official_val = val is not None
    if val is None:
        train, val = split_train_val(train, val_fraction, split_seed)
    sizes = {"train": len(train), "val": len(val), "test": None if test is None else len(test)}
    info = {
        "dataset": name,
        **loaded.info,
        "split_seed": split_seed,
        "val_fraction": None if official_val else val_fraction,
        "image_shape": list(train.shape),
        "sizes": sizes,
    }
    return DataSplits(name, train, val, test, info)
