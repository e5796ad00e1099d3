"""CIFAR-10 from the canonical python batches, unpickled without running arbitrary code."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from cvae.data.base import ImageDataset
from cvae.data.download import default_data_root, extract, verify_md5
from cvae.data.download import download as fetch
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


def _locate(root: Path) -> tuple[Path | None, Path | None]:
    """(folder holding the batches, archive) found under ``root``; either may be ``None``."""
    bases = [root, root / "cifar10"]
    folders = [p for b in bases for p in (b, b / BATCH_DIR)]
    batches = next((p for p in folders if (p / TRAIN_BATCHES[0]).is_file()), None)
    archive = next((b / ARCHIVE for b in bases if (b / ARCHIVE).is_file()), None)
    return batches, archive


def load_cifar10(
    root: Path | None, *, download: bool = False
) -> tuple[ImageDataset, ImageDataset, dict]:
    """Load CIFAR-10 train (50000) and test (10000) sets as uint8 ``[N, 3, 32, 32]``.

    Looks in ``root``, ``root/cifar10`` and ``root/cifar-10-batches-py`` for the extracted batches
    or ``cifar-10-python.tar.gz`` (extracted beside itself); ``None`` means the default data root.
    With ``download`` a missing archive is fetched into ``<root>/cifar10``.
    """
    base = default_data_root() if root is None else Path(root)
    folder, archive = _locate(base)
    downloaded = False
    if folder is None and archive is None:
        if not download:
            raise DataError(
                f"CIFAR-10 not found in {base}: no {BATCH_DIR}/ or {ARCHIVE}; "
                f"pass --download or put {ARCHIVE} in {base / 'cifar10'}"
            )
        archive = fetch([URL], base / "cifar10" / ARCHIVE, ARCHIVE_MD5)
        downloaded = True
    if folder is None:
        if not downloaded:  # download() already checked the md5
            verify_md5(archive, ARCHIVE_MD5)
        folder = extract(
            archive, [f"{BATCH_DIR}/{name}" for name in CHECKSUMS], archive.parent / BATCH_DIR
        )

    missing = [name for name in CHECKSUMS if not (folder / name).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 files missing in {folder}: {', '.join(missing)}")
    for name, expected in CHECKSUMS.items():
        verify_md5(folder / name, expected)
    classes = _read_classes(folder / META)
    train = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    test_images, test_labels = _read_batch(folder / TEST_BATCH)
    images, labels = (torch.cat(parts) for parts in zip(*train, strict=True))
    train_set = ImageDataset(images, labels, classes)
    info = {
        "source": str(folder.resolve()),
        "archive": None if archive is None else str(archive.resolve()),
        "files": dict(CHECKSUMS),
        "md5_verified": True,
        "downloaded": downloaded,
    }
    return train_set, ImageDataset(test_images, test_labels, classes), info
