"""Datasets as uint8 images (in memory or memory-mapped), loaded through one entry point:
:func:`load_data`."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from cvae.data.base import (
    TEST_STREAM,
    DataSplits,
    ImageDataset,
    Loaded,
    from_float,
    split_train_val,
    to_float,
)
from cvae.data.download import default_data_root
from cvae.data.memmap import AUTO_BYTES, MemmapImages
from cvae.data.registry import (
    REGISTRY,
    DatasetSpec,
    Request,
    dataset_available,
    dataset_dir,
    get_dataset,
    missing_message,
)
from cvae.data.splits import SplitPlan, cache_splits
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
    test_fraction: float = 0.1,
    memmap: bool | None = None,
    cache_dir: str | Path | None = None,
    synthetic_shape: tuple[int, int, int] = (1, 28, 28),
    synthetic_size: int = 2048,
) -> DataSplits:
    """Load dataset ``name`` (one of :data:`DATASETS`) and split its official train set.

    ``data_dir``: the dataset's folder or a data root holding one folder per dataset (``None``:
    ``$CVAE_DATA`` or ``~/.cache/cvae/data``; required for ``folder``); ``download`` fetches
    missing files (md5-checked). ``image_size`` resizes every image to a square (bilinear);
    celeba (default 64, after the centre crop 148) and omniglot (default 28) decode straight to
    it. A dataset without a test split (``folder`` without ``test/``) gets a seeded held-out
    ``test_fraction`` of its images as ``test``; then a seeded ``val_fraction`` of the train set
    becomes ``val``, unless the dataset has its own (celeba's official valid partition, a
    folder's ``val/``). Each such fallback of a ``folder`` is said once on stderr; every split's
    origin is in ``info["data_splits"]``. ``stl10-unlabeled`` trains on the 100k unlabeled
    images (labels ``None``). ``synthetic`` draws ``synthetic_size`` train and
    ``synthetic_size // 4`` test images of ``synthetic_shape``.

    ``memmap``: the splits' images are views of a uint8 ``.npy`` cache under ``cache_dir``
    (default: the data root above), read batch by batch (:class:`~cvae.data.memmap.MemmapImages`);
    ``None`` (auto): for a ``folder`` of more than 2 GiB of uint8 images. Other datasets are
    loaded in memory first and written to the cache when ``memmap`` is true.
    """
    spec = get_dataset(name)
    for key, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"{key} must be in [0, 1), got {fraction}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size}")
    root = None if data_dir is None else Path(data_dir).expanduser()
    cache_root = default_data_root() if cache_dir is None else Path(cache_dir).expanduser()
    request = Request(root, download, image_size, synthetic_shape, synthetic_size, cache_root)
    loaded = spec.load(request)

    train, val, test = loaded.train, loaded.val, loaded.test
    if image_size is not None:
        train = _resize(train, image_size)
        val, test = (None if d is None else _resize(d, image_size) for d in (val, test))
    plan = SplitPlan(loaded, val_fraction, test_fraction, split_seed)
    if test is None and round(len(train) * test_fraction) > 0:
        train, test = split_train_val(train, test_fraction, split_seed + TEST_STREAM)
    official_val = val is not None
    if val is None:
        train, val = split_train_val(train, val_fraction, split_seed)
    splits = DataSplits(name, train, val, test)
    for line in plan.fallbacks(splits):
        print(f"cvae: data: {line}", file=sys.stderr, flush=True)
    splits, cache = _storage(splits, memmap, cache_root)
    sizes = {"train": len(train), "val": len(val), "test": None if test is None else len(test)}
    splits.info = {
        "dataset": name,
        **loaded.info,
        "split_seed": split_seed,
        "val_fraction": None if official_val else val_fraction,
        "image_shape": list(train.shape),
        "sizes": sizes,
        "data_splits": plan.record(splits),
        "memmap": cache,
    }
    return splits


def _storage(
    splits: DataSplits, memmap: bool | None, cache_root: Path
) -> tuple[DataSplits, str | None]:
    """The splits in memory or as views of a cache file (its path is returned, else ``None``)."""
    parts = [s for s in (splits.train, splits.val, splits.test) if s is not None]
    mapped = [s.images for s in parts if isinstance(s.images, MemmapImages)]
    if memmap is None:
        nbytes = sum(len(s) * math.prod(s.shape) for s in parts)
        memmap = len(mapped) == len(parts) and nbytes > AUTO_BYTES
    if not memmap:
        return splits.in_memory(), None
    if len(mapped) == len(parts):
        return splits, str(mapped[0].file.path)
    return cache_splits(splits, cache_root / "memmap")
