"""Datasets as in-memory uint8 tensors, loaded through one entry point: :func:`load_data`."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cvae.data import celeba, omniglot
from cvae.data.base import DataSplits, ImageDataset, from_float, split_train_val, to_float
from cvae.data.catalog import dataset_available, dataset_dir, missing_message
from cvae.data.celeba import load_celeba
from cvae.data.cifar import load_cifar10
from cvae.data.digits import TEST_FRACTION, TEST_SEED, load_digits
from cvae.data.emnist import load_emnist
from cvae.data.fashion import load_fashion_mnist
from cvae.data.folder import load_folder
from cvae.data.mnist import load_mnist
from cvae.data.omniglot import load_omniglot
from cvae.data.stl10 import load_stl10
from cvae.data.synthetic import synthetic
from cvae.errors import ConfigError

DATASETS = (
    "digits", "mnist", "fashion-mnist", "emnist", "cifar10", "stl10", "stl10-unlabeled",
    "celeba", "omniglot", "folder", "synthetic",
)  # fmt: skip

__all__ = [
    "DATASETS",
    "DataSplits",
    "ImageDataset",
    "dataset_available",
    "dataset_dir",
    "from_float",
    "load_data",
    "missing_message",
    "to_float",
]

_RESIZE_CHUNK = 4096


def _resize(data: ImageDataset | None, size: int) -> ImageDataset | None:
    """Bilinear (antialiased) resize to ``size`` x ``size``; a no-op when already that size."""
    if data is None or data.images.shape[-2:] == (size, size):
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
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive integer, got {image_size}")
    root = None if data_dir is None else Path(data_dir).expanduser()

    val = None
    if name == "mnist":
        train, test, info = load_mnist(root, download=download)
    elif name == "fashion-mnist":
        train, test, info = load_fashion_mnist(root, download=download)
    elif name == "emnist":
        train, test, info = load_emnist(root, download=download)
    elif name in ("stl10", "stl10-unlabeled"):
        unlabeled = name == "stl10-unlabeled"
        train, test, info = load_stl10(root, unlabeled=unlabeled, download=download)
    elif name == "celeba":
        size = image_size or celeba.SIZE
        train, val, test, info = load_celeba(root, download=download, size=size)
    elif name == "omniglot":
        size = image_size or omniglot.SIZE
        train, test, info = load_omniglot(root, download=download, size=size)
    elif name == "cifar10":
        train, test, info = load_cifar10(root, download=download)
    elif name == "folder":
        if root is None:
            raise ConfigError("dataset 'folder' needs data_dir (the folder of images)")
        train, info = load_folder(root, image_size=image_size)
        test = None
    elif name == "digits":
        train, test = load_digits()
        info = {
            "source": "sklearn.datasets.load_digits",
            "test_split": f"random {TEST_FRACTION:.0%}, seed {TEST_SEED}",
        }
    else:
        train, test = synthetic(synthetic_shape, synthetic_size, synthetic_size // 4)
        info = {"source": "synthetic", "shape": list(synthetic_shape), "seed": 0}

    if image_size is not None:
        train, test = _resize(train, image_size), _resize(test, image_size)
    if val is None:
        train, val = split_train_val(train, val_fraction, split_seed)
    sizes = {"train": len(train), "val": len(val), "test": None if test is None else len(test)}
    info = {
        "dataset": name,
        "md5_verified": False,
        **info,
        "split_seed": split_seed,
        "val_fraction": val_fraction if name != "celeba" else None,
        "image_shape": list(train.shape),
        "sizes": sizes,
    }
    return DataSplits(name, train, val, test, info)
