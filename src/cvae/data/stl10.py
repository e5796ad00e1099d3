"""STL-10 (Coates et al. 2011) from the official binary release ``stl10_binary``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvae.data.base import ImageDataset, Loaded
from cvae.data.download import Remote, dataset_folder, from_archive, verify_md5
from cvae.errors import DataError

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
ARCHIVE = "stl10_binary.tar.gz"
ARCHIVE_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
BINARY_DIR = "stl10_binary"
# md5 of each extracted file, as published with the archive (and used by torchvision).
CHECKSUMS = {
    "train_X.bin": "918c2871b30a85fa023e0c44e0bee87f",
    "train_y.bin": "5a34089d4802c674881badbb80307741",
    "test_X.bin": "7f263ba9f9e0b06b93213547f721ac82",
    "test_y.bin": "36f9794fa4beb8a2c72628de14fa638e",
    "unlabeled_X.bin": "5242ba1fed5e4be9e1e742405eb56ca4",
}
LABELED = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
UNLABELED = "unlabeled_X.bin"
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
SIZE = 96
_PIXELS = 3 * SIZE * SIZE


def read_images(path: Path) -> torch.Tensor:
    """``*_X.bin`` -> uint8 ``[N, 3, 96, 96]``.

    Each image is 27648 bytes: the three channels in turn, each 96x96 in column-major order,
    so the array is read as ``[N, 3, W, H]`` and its last two axes swapped.
    """
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % _PIXELS:
        raise DataError(f"{path}: {data.size} bytes is not a whole number of 3x96x96 images")
    images = data.reshape(-1, 3, SIZE, SIZE).transpose(0, 1, 3, 2)
    return torch.from_numpy(np.ascontiguousarray(images))


def read_labels(path: Path) -> torch.Tensor:
    """``*_y.bin`` (one byte per image, classes 1..10) -> int64 ``[N]`` in 0..9."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > len(CLASSES)):
        raise DataError(f"{path}: labels outside 1..{len(CLASSES)}")
    return torch.from_numpy(labels - 1)


def _labeled(folder: Path, split: str) -> ImageDataset:
    images = read_images(folder / f"{split}_X.bin")
    labels = read_labels(folder / f"{split}_y.bin")
    if len(images) != len(labels):
        raise DataError(f"{folder}: {split} has {len(images)} images but {len(labels)} labels")
    return ImageDataset(images, labels, CLASSES)


def remotes() -> list[Remote]:
    """The official binary release."""
    return [Remote(ARCHIVE, ARCHIVE_MD5, (URL,))]


def load_stl10(root: Path | None, *, unlabeled: bool = False, download: bool = False) -> Loaded:
    """STL-10 as uint8 ``[N, 3, 96, 96]``.

    train is the labeled 5000 (labels 0..9), or with ``unlabeled`` the 100000 unlabeled images
    (labels ``None``); test is always the labeled 8000. ``root``: a folder holding
    ``stl10_binary/`` or ``stl10_binary.tar.gz`` (extracted beside itself), or a data root
    holding ``stl10/`` (``None``: the default data root); ``download`` fetches a missing archive.
    Every file used is md5-checked.
    """
    base = dataset_folder(root, "stl10", [BINARY_DIR, ARCHIVE])
    needed = [*LABELED, UNLABELED] if unlabeled else LABELED
    downloaded = from_archive(
        base, remotes()[0], BINARY_DIR, needed, download=download, title="STL-10"
    )
    folder = base / BINARY_DIR
    for name in needed:
        verify_md5(folder / name, CHECKSUMS[name])
    test = _labeled(folder, "test")
    train = (
        ImageDataset(read_images(folder / UNLABELED)) if unlabeled else _labeled(folder, "train")
    )
    files = {name: CHECKSUMS[name] for name in needed}
    extra = {"train_split": "unlabeled" if unlabeled else "train"}
    return Loaded(train, test, str(folder.resolve()), files, True, downloaded, extra=extra)
