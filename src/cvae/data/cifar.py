"""CIFAR-10 from the canonical python batches, unpickled without running arbitrary code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from cvae.data.base import ImageDataset, Loaded
from cvae.data.download import Remote, dataset_folder, from_archive, verify_md5
from cvae.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
META = "batches.meta"
# md5 of each extracted file, as published with the archive (and used by torchvision).
CHECKSUMS = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

# The only globals a numpy-array pickle needs (numpy 1.x and 2.x module names; protocol 2 written
# by Python 3 stores bytes via _codecs.encode).
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction helpers; anything else fails."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> object:
    """Unpickle a CIFAR batch file; globals other than numpy array helpers raise DataError."""
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except Exception as err:  # unpickling malformed bytes can raise almost anything
        raise DataError(f"{path}: not a valid CIFAR pickle ({err})") from err


def _get(entry: object, key: str, path: Path) -> object:
    """``entry[key]``; canonical batches use bytes keys (str once re-pickled in Python 3)."""
    if isinstance(entry, dict):
        for k in (key, key.encode()):
            if k in entry:
                return entry[k]
    raise DataError(f"{path}: expected a dict with key {key!r}")


def _read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    entry = safe_unpickle(path)
    data, labels = _get(entry, "data", path), _get(entry, "labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: 'data' must be a uint8 array [N, 3072]")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' has {data.shape[1]} values per image, expected 3072")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {labels.size} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0..9")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def _read_classes(path: Path) -> list[str]:
    names = _get(safe_unpickle(path), "label_names", path)
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{path}: 'label_names' must be a list of 10 names")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def remotes() -> list[Remote]:
    """The official archive of the python batches."""
    return [Remote(ARCHIVE, ARCHIVE_MD5, (URL,))]


def load_cifar10(root: Path | None, *, download: bool = False) -> Loaded:
    """CIFAR-10 train (50000) and test (10000) as uint8 ``[N, 3, 32, 32]``, labels 0..9.

    ``root``: the folder of the extracted batches, a folder holding ``cifar-10-batches-py/`` or
    ``cifar-10-python.tar.gz`` (extracted beside itself), or a data root holding ``cifar10/``
    (``None``: the default data root); ``download`` fetches a missing archive. Every batch is
    md5-checked.
    """
    folder = dataset_folder(root, "cifar10", [BATCH_DIR, ARCHIVE, TRAIN_BATCHES[0]])
    if (folder / TRAIN_BATCHES[0]).is_file():  # the batches folder itself
        batches, downloaded = folder, []
    else:
        batches = folder / BATCH_DIR
        downloaded = from_archive(
            folder, remotes()[0], BATCH_DIR, list(CHECKSUMS), download=download, title="CIFAR-10"
        )
    missing = [name for name in CHECKSUMS if not (batches / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files missing in {batches}: {', '.join(missing)}")
    for name, expected in CHECKSUMS.items():
        verify_md5(batches / name, expected)
    classes = _read_classes(batches / META)
    train = [_read_batch(batches / name) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(batches / TEST_BATCH)
    images, labels = (torch.cat(parts) for parts in zip(*train, strict=True))
    archive = folder / ARCHIVE
    return Loaded(
        ImageDataset(images, labels, classes),
        ImageDataset(test_images, test_labels, classes),
        str(batches.resolve()),
        dict(CHECKSUMS),
        True,
        downloaded,
        extra={"archive": str(archive.resolve()) if archive.is_file() else None},
    )
