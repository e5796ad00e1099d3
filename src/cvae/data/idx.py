"""IDX files (the MNIST format), read in bounded memory, and the datasets stored in them.

A ``.gz`` is decompressed in chunks straight into an array of the size its IDX header
announces, and reading stops at the first byte beyond it, so a decompression bomb costs at
most that size (itself capped by ``limit``), never the bomb's.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import md5
from io import BufferedIOBase
from math import prod
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from cvae.data.base import ImageDataset, Loaded
from cvae.data.download import Remote, dataset_folder, fetch_missing, md5_file
from cvae.errors import DataError

Kind = Literal["images", "labels"]
MAX_BYTES = 1 << 30
"""Largest IDX payload read (EMNIST-byclass train images, the largest published, are 547 MB)."""
_FORMATS: dict[Kind, tuple[int, int, str]] = {
    "images": (2051, 3, "pixels"),  # magic number, dimensions, what the payload holds
    "labels": (2049, 1, "labels"),
}
_CHUNK = 1 << 20


@contextmanager
def open_idx(path: Path) -> Iterator[BufferedIOBase]:
    """``path`` opened for reading its IDX bytes: decompressed on the fly if it is a ``.gz``."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        yield f


def _fill(stream: BufferedIOBase, out: np.ndarray) -> int:
    """Read into ``out`` chunk by chunk until it is full or the stream ends; bytes read."""
    view, filled = out.data, 0
    while filled < len(view):
        n = stream.readinto(view[filled : filled + _CHUNK])
        if not n:
            break
        filled += n
    return filled


def read_idx(
    stream: BufferedIOBase, path: Path, kind: Kind, *, limit: int = MAX_BYTES
) -> tuple[torch.Tensor, str]:
    """One IDX stream -> (images uint8 ``[N, 1, H, W]`` or labels int64 ``[N]``, md5 of its bytes).

    A payload announced over ``limit`` bytes is refused before anything is allocated; reading
    stops at the first byte after the announced payload. Errors are one-line
    :class:`DataError` naming ``path``.
    """
    magic, ndim, what = _FORMATS[kind]
    try:
        head = stream.read(4 * (1 + ndim))
        found = int.from_bytes(head[:4], "big")
        if len(head) >= 4 and found != magic:
            raise DataError(f"{path}: bad magic number {found}, expected {magic}")
        if len(head) < 4 * (1 + ndim):
            raise DataError(f"{path}: truncated: {len(head)} bytes, shorter than the IDX header")
        dims = np.frombuffer(head, dtype=">i4", count=ndim, offset=4).tolist()
        if any(d < 0 for d in dims) or any(d == 0 for d in dims[1:]):
            raise DataError(f"{path}: invalid dimensions {dims}")
        count = prod(dims)
        if count > limit:
            raise DataError(
                f"{path}: its header announces {count} bytes of {what}, over the limit of {limit}"
            )
        payload = np.empty(count, dtype=np.uint8)
        got = _fill(stream, payload)
        if got < count:
            raise DataError(f"{path}: truncated: expected {count} bytes of {what}, found {got}")
        if stream.read(1):
            raise DataError(f"{path}: unexpected bytes after the {count} bytes of {what}")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from err
    digest = md5(head)
    digest.update(payload.data)
    if kind == "labels":
        return torch.from_numpy(payload.astype(np.int64)), digest.hexdigest()
    return torch.from_numpy(payload).reshape(dims[0], 1, dims[1], dims[2]), digest.hexdigest()


def read_idx_images(path: Path, *, limit: int = MAX_BYTES) -> torch.Tensor:
    """IDX image file (magic 2051, ``.gz`` or not) -> uint8 ``[N, 1, H, W]``."""
    path = Path(path)
    with open_idx(path) as f:
        return read_idx(f, path, "images", limit=limit)[0]


def read_idx_labels(path: Path, *, limit: int = MAX_BYTES) -> torch.Tensor:
    """IDX label file (magic 2049, ``.gz`` or not) -> int64 ``[N]``."""
    path = Path(path)
    with open_idx(path) as f:
        return read_idx(f, path, "labels", limit=limit)[0]


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

    def remotes(self) -> list[Remote]:
        """The official ``.gz`` files, each accepted by either of its md5s."""
        return [
            Remote(
                f"{stem}.gz",
                frozenset(m for m in md5s if m is not None),
                tuple(f"{url}{stem}.gz" for url in self.mirrors),
            )
            for stem, md5s in self.checksums.items()
        ]


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_verified(
    path: Path, stem: str, kind: Kind, source: IdxSource
) -> tuple[torch.Tensor, str]:
    """Parse ``path`` if it is the official .gz or its uncompressed bytes match; (data, md5).

    The file's own md5 is checked before anything is decompressed, so a foreign file is only
    decompressed (bounded, see :func:`read_idx`) when an uncompressed md5 is published.
    """
    gz_md5, raw_md5 = source.checksums[stem]
    if path.suffix == ".gz" and md5_file(path) == gz_md5:
        with open_idx(path) as f:
            return read_idx(f, path, kind)[0], gz_md5
    if raw_md5 is None:
        raise DataError(
            f"{path}: checksum mismatch: md5 {md5_file(path)}, expected the official {stem}.gz "
            f"({gz_md5}); delete it and download {stem}.gz again"
        )
    with open_idx(path) as f:
        data, got = read_idx(f, path, kind)
    if got != raw_md5:
        raise DataError(
            f"{path}: checksum mismatch: uncompressed md5 {got}, expected {raw_md5} "
            f"(or official .gz md5 {gz_md5}); delete it and download again"
        )
    return data, raw_md5


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


def load_idx(source: IdxSource, root: Path | None, *, download: bool = False) -> Loaded:
    """Load the train and test splits of an IDX dataset, verifying every file's md5.

    ``root`` is the folder holding the IDX files (``.gz`` or uncompressed) or a data root holding
    ``source.folder``; ``None`` means ``default_data_root() / source.folder``. Missing files are
    downloaded there from ``source.mirrors`` with ``download``.
    """
    stems = list(source.checksums)
    markers = [name for stem in stems for name in (f"{stem}.gz", stem)]
    folder = dataset_folder(root, source.folder, markers)
    absent = [r for r in source.remotes() if _find(folder, r.name.removesuffix(".gz")) is None]
    downloaded = fetch_missing(folder, absent, download=download, title=source.title)

    files: dict[str, str] = {}

    def read(stem: str, kind: Kind) -> torch.Tensor:
        path = _find(folder, stem)
        assert path is not None  # present or fetched above
        data, files[path.name] = _read_verified(path, stem, kind, source)
        return data

    train, test = (
        build_split(read(images, "images"), read(labels, "labels"), source, f"{folder}: {split}")
        for split, (images, labels) in source.splits.items()
    )
    return Loaded(train, test, str(folder.resolve()), files, True, downloaded)
