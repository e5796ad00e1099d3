"""IDX datasets (MNIST and its look-alikes) from ``.gz`` or uncompressed files, with download."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cvae.data.base import ImageDataset
from cvae.data.download import default_data_root, resolve_folder
from cvae.data.download import download as fetch
from cvae.errors import DataError

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
# file stem -> (md5 of the official .gz, md5 of the uncompressed IDX bytes)
CHECKSUMS = {
    "train-images-idx3-ubyte": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train-labels-idx1-ubyte": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "t10k-images-idx3-ubyte": (
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "t10k-labels-idx1-ubyte": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}
CLASSES = [str(i) for i in range(10)]
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


def _decompress(raw: bytes, path: Path) -> bytes:
    """The file's IDX bytes: ``raw`` itself, or ``raw`` decompressed once if ``path`` is a .gz."""
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from err


def _header(buf: bytes, path: Path, magic: int, ndim: int) -> list[int]:
    size = 4 * (1 + ndim)
    found = int.from_bytes(buf[:4], "big")
    if len(buf) >= 4 and found != magic:
        raise DataError(f"{path}: bad magic number {found}, expected {magic}")
    if len(buf) < size:
        raise DataError(f"{path}: truncated: {len(buf)} bytes, shorter than the IDX header")
    dims = np.frombuffer(buf, dtype=">i4", count=ndim, offset=4).tolist()
    if any(d < 0 for d in dims) or any(d == 0 for d in dims[1:]):
        raise DataError(f"{path}: invalid dimensions {dims}")
    return dims


def _payload(buf: bytes, path: Path, offset: int, count: int, what: str) -> np.ndarray:
    found = len(buf) - offset
    if found < count:
        raise DataError(f"{path}: truncated: expected {count} bytes of {what}, found {found}")
    if found > count:
        raise DataError(f"{path}: {found - count} unexpected bytes after {count} bytes of {what}")
    return np.frombuffer(buf, dtype=np.uint8, offset=offset)


def _parse_images(buf: bytes, path: Path) -> torch.Tensor:
    n, rows, cols = _header(buf, path, _IMAGES_MAGIC, 3)
    pixels = _payload(buf, path, 16, n * rows * cols, "pixels")
    return torch.from_numpy(pixels.reshape(n, 1, rows, cols).copy())


def _parse_labels(buf: bytes, path: Path) -> torch.Tensor:
    (n,) = _header(buf, path, _LABELS_MAGIC, 1)
    labels = _payload(buf, path, 8, n, "labels")
    return torch.from_numpy(labels.astype(np.int64))


def read_idx_images(path: Path) -> torch.Tensor:
    """IDX image file (magic 2051) -> uint8 ``[N, 1, H, W]``."""
    path = Path(path)
    return _parse_images(_decompress(path.read_bytes(), path), path)


def read_idx_labels(path: Path) -> torch.Tensor:
    """IDX label file (magic 2049) -> int64 ``[N]``."""
    path = Path(path)
    return _parse_labels(_decompress(path.read_bytes(), path), path)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


@dataclass(frozen=True)
class IdxSource:
    """One IDX dataset: its files, official checksums, download mirrors and classes.

    ``splits`` maps ``train``/``test`` to (images stem, labels stem); ``checksums`` maps each stem
    to (md5 of the official .gz, md5 of the uncompressed bytes or ``None`` if unpublished).
    ``transpose`` swaps H and W (EMNIST stores images transposed relative to MNIST).
    """

    title: str
    folder: str
    splits: dict[str, tuple[str, str]]
    checksums: dict[str, tuple[str, str | None]]
    classes: list[str]
    mirrors: list[str]
    transpose: bool = False


def _read_verified(path: Path, stem: str, source: IdxSource) -> tuple[bytes, str]:
    """Read ``path`` and check it against the official .gz or the uncompressed md5."""
    gz_md5, raw_md5 = source.checksums[stem]
    raw = path.read_bytes()
    buf = _decompress(raw, path)
    if path.suffix == ".gz" and hashlib.md5(raw).hexdigest() == gz_md5:
        return buf, gz_md5
    if raw_md5 is None:
        raise DataError(
            f"{path}: checksum mismatch: md5 {hashlib.md5(raw).hexdigest()}, expected the "
            f"official {stem}.gz ({gz_md5}); delete it and download {stem}.gz again"
        )
    got = hashlib.md5(buf).hexdigest()
    if got != raw_md5:
        raise DataError(
            f"{path}: checksum mismatch: uncompressed md5 {got}, expected {raw_md5} "
            f"(or official .gz md5 {gz_md5}); delete it and download again"
        )
    return buf, raw_md5


def build_split(
    images: torch.Tensor, labels: torch.Tensor, source: IdxSource, where: str
) -> ImageDataset:
    """Check counts and label range, undo ``source.transpose``, and wrap as an ImageDataset."""
    if len(images) != len(labels):
        raise DataError(f"{where} has {len(images)} images but {len(labels)} labels")
    if len(labels) and int(labels.max()) >= len(source.classes):
        raise DataError(f"{where}: labels outside 0..{len(source.classes) - 1}")
    if source.transpose:
        images = images.transpose(-1, -2).contiguous()
    return ImageDataset(images, labels, source.classes)


def load_idx(
    source: IdxSource, root: Path | None, *, download: bool = False
) -> tuple[ImageDataset, ImageDataset, dict]:
    """Load the train and test splits of an IDX dataset, verifying every file's md5.

    ``root`` is the folder holding the IDX files (``.gz`` or uncompressed) or a data root holding
    ``source.folder``; ``None`` means ``default_data_root() / source.folder``. Missing files are
    downloaded there from ``source.mirrors`` with ``download``.
    """
    stems = list(source.checksums)
    if root is None:
        folder = default_data_root() / source.folder
    else:
        markers = [name for stem in stems for name in (f"{stem}.gz", stem)]
        folder = resolve_folder(Path(root), source.folder, markers)
    missing = [stem for stem in stems if _find(folder, stem) is None]
    if missing and not download:
        names = ", ".join(f"{stem}.gz" for stem in missing)
        raise DataError(
            f"{source.title} files missing in {folder}: {names}; "
            f"pass --download or put the files in {folder}"
        )
    for stem in missing:
        accepted = {md5 for md5 in source.checksums[stem] if md5 is not None}
        fetch([url + f"{stem}.gz" for url in source.mirrors], folder / f"{stem}.gz", accepted)

    files, splits = {}, []
    for split, (images_stem, labels_stem) in source.splits.items():
        parts = []
        for stem, parse in ((images_stem, _parse_images), (labels_stem, _parse_labels)):
            path = _find(folder, stem)
            buf, files[path.name] = _read_verified(path, stem, source)
            parts.append(parse(buf, path))
        splits.append(build_split(*parts, source, f"{folder}: {split}"))
    info = {
        "source": str(folder.resolve()),
        "files": files,
        "md5_verified": True,
        "downloaded": [f"{stem}.gz" for stem in missing],
    }
    return splits[0], splits[1], info


def load_mnist(
    root: Path | None, *, download: bool = False
) -> tuple[ImageDataset, ImageDataset, dict]:
    """Load MNIST train (60000) and test (10000) sets as uint8 ``[N, 1, 28, 28]``.

    ``root`` is the folder holding the four IDX files or a data root holding ``mnist/``; ``None``
    means ``default_data_root() / "mnist"``. Missing files are downloaded there with ``download``.
    """
    source = IdxSource("MNIST", "mnist", SPLITS, CHECKSUMS, CLASSES, MIRRORS)
    return load_idx(source, root, download=download)
