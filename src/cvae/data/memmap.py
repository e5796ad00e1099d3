"""A uint8 image cache on disk (``.npy``) and :class:`MemmapImages`, a lazy view of its rows.

The cache is one ``<key>.npy`` of uint8 ``[N, C, H, W]`` written row by row (never whole in
RAM), plus ``<key>.json`` (labels, classes, split ranges), written last, so a cache without its
JSON is incomplete and rebuilt. A :class:`MemmapImages` is what training reads batches from:
indexing it gathers only the rows asked for (in file order, then put back in the order asked),
and the pages read are handed back to the kernel every :data:`RELEASE_BYTES`, so the resident
memory stays bounded whatever the size of the file.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvae.errors import DataError

CACHE_VERSION = 1
RELEASE_BYTES = 256 << 20
"""Bytes gathered from one mapping between two hand-backs of its pages (``MADV_DONTNEED``)."""
AUTO_BYTES = 2 << 30
"""``data.memmap: auto`` maps a dataset whose uint8 images exceed this size (2 GiB)."""


def cache_key(parts: object) -> str:
    """sha1 of the JSON of ``parts`` (file list, sizes, mtimes, options ...)."""
    text = json.dumps([CACHE_VERSION, parts], separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()


class _Mapping:
    """One read-only mapping of a ``.npy`` file: its array and the hand-back of read pages."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(f)
            offset = f.tell()
            if dtype != np.uint8 or fortran or len(shape) != 4:
                raise DataError(f"{path}: not a uint8 [N, C, H, W] cache")
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.path = path
        self.array: np.ndarray = np.ndarray(shape, np.uint8, buffer=self.map, offset=offset)
        self.read = 0

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order) as a new array, read in file order."""
        order = np.argsort(rows, kind="stable")
        out = np.empty((len(rows), *self.array.shape[1:]), np.uint8)
        out[order] = self.array[rows[order]]
        self.read += out.nbytes
        if self.read >= RELEASE_BYTES and hasattr(self.map, "madvise"):
            self.map.madvise(mmap.MADV_DONTNEED)  # clean file pages: dropped, re-read on need
            self.read = 0
        return out


@dataclass(eq=False)
class MemmapImages:
    """uint8 ``[N, C, H, W]`` rows ``rows`` of a cache file, read on indexing.

    Supports what training needs of an image tensor: ``len``, ``shape``, ``dtype``, ``ndim``,
    ``device``, ``to(device)`` (where the gathered batches go) and indexing by an int, a slice
    or a 1-D index tensor/array, which returns a tensor. ``expand_to`` replicates one channel.
    """

    mapping: _Mapping
    rows: np.ndarray
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels: int | None = None

    dtype = torch.uint8
    ndim = 4

    @classmethod
    def open(cls, path: Path) -> MemmapImages:
        mapping = _Mapping(path)
        return cls(mapping, np.arange(len(mapping.array), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        c, h, w = self.mapping.array.shape[1:]
        return torch.Size((len(self.rows), self.channels or c, h, w))

    def __getitem__(self, key: int | slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        if isinstance(key, int):
            return self[np.array([key])][0]
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        rows = self.rows[key]
        if rows.ndim != 1:
            raise TypeError(f"index MemmapImages by an int, a slice or a 1-D index, not {key!r}")
        x = torch.from_numpy(self.mapping.gather(rows))
        if self.channels is not None:
            x = x.expand(-1, self.channels, -1, -1).contiguous()
        return x.to(self.device)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of ``size`` rows, as ``torch.Tensor.split``."""
        return (self[start : start + size] for start in range(0, len(self), size))

    def take(self, index: torch.Tensor | np.ndarray) -> MemmapImages:
        """The lazy view of rows ``index`` of this view (no image is read)."""
        index = index.cpu().numpy() if isinstance(index, torch.Tensor) else index
        return MemmapImages(self.mapping, self.rows[index], self.device, self.channels)

    def to(self, device: torch.device | str) -> MemmapImages:
        return MemmapImages(self.mapping, self.rows, torch.device(device), self.channels)

    def expand_to(self, channels: int) -> MemmapImages:
        return MemmapImages(self.mapping, self.rows, self.device, channels)

    def load(self) -> torch.Tensor:
        """Every row of the view as one in-memory tensor."""
        return self[:]


def write_cache(
    path: Path,
    shape: tuple[int, int, int],
    count: int,
    rows: Iterator[np.ndarray],
    meta: dict[str, Any],
) -> None:
    """Write ``count`` images of ``shape`` (``[C, H, W]`` uint8 each, from ``rows``) to
    ``path`` (``.npy``) and ``meta`` to its ``.json``, both atomically (``.part`` + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        out = np.lib.format.open_memmap(part, "w+", np.uint8, (count, *shape))
        written = 0
        for row in rows:
            out[written] = row
            written += 1
        if written != count:
            raise DataError(f"{path}: {written} images written, {count} expected")
        out.flush()
        del out
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    write_json(path.with_suffix(".json"), meta)


def write_json(path: Path, obj: dict[str, Any]) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(json.dumps(obj))
    os.replace(part, path)


def read_cache(path: Path) -> tuple[MemmapImages, dict[str, Any]] | None:
    """The cache's images (a lazy view) and its JSON, or ``None`` when absent, incomplete or
    unreadable (then rebuilt, never trusted)."""
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    try:
        images, meta = MemmapImages.open(path), json.loads(meta_path.read_text())
    except (OSError, ValueError, DataError):
        return None
    return (images, meta) if meta.get("count") == len(images) else None
