"""A uint8 image cache on disk (``.npy``) and :class:`MemmapImages`, a lazy view of its rows.

The cache is one ``<key>.npy`` of uint8 ``[N, C, H, W]`` written row by row (never whole in
RAM), plus ``<key>.json`` (labels, classes, split ranges), written last, so a cache without its
JSON is incomplete and rebuilt. A :class:`MemmapImages` is what training reads batches from:
indexing it reads only the rows asked for, in file order, each straight into its place in the
batch (``preadv``). The file is not mapped into the process: a mapping's pages count in its
resident memory, and the kernel maps a file's large page-cache folios 2 MiB at a time, so one
batch of random rows would map most of a small file (measured: 160 MiB of a 234 MiB file after
one batch of 256). Read this way, the process holds only its batches; the file's pages stay
in the kernel's page cache, which is reclaimed under memory pressure.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvae.errors import DataError

CACHE_VERSION = 1
AUTO_BYTES = 2 << 30
"""``data.memmap: auto`` maps a dataset whose uint8 images exceed this size (2 GiB)."""


def cache_key(parts: object) -> str:
    """sha1 of the JSON of ``parts`` (file list, sizes, mtimes, options ...)."""
    text = json.dumps([CACHE_VERSION, parts], separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()


class _CacheFile:
    """One open ``.npy`` cache file: its shape and the reading of rows into a buffer."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                version, np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if dtype != np.uint8 or fortran or len(shape) != 4:
            raise DataError(f"{path}: not a uint8 [N, C, H, W] cache")
        self.path, self.shape = path, tuple(int(d) for d in shape)
        self.row_bytes = int(np.prod(self.shape[1:]))
        if path.stat().st_size < self.offset + self.shape[0] * self.row_bytes:
            raise DataError(f"{path}: shorter than its header says")
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        if hasattr(self, "fd"):
            os.close(self.fd)

    def __getstate__(self) -> dict[str, Path]:  # another process opens the file itself
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Path]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order, >= 0) as a new array: one read for consecutive rows, else
        one read per row in file order, each straight into its place in the result."""
        out = np.empty((len(rows), *self.shape[1:]), np.uint8)
        if len(rows) and bool(np.all(np.diff(rows) == 1)):
            self._read(out, int(rows[0]))
        else:
            for pos in np.argsort(rows, kind="stable"):
                self._read(out[pos : pos + 1], int(rows[pos]))
        return out

    def _read(self, out: np.ndarray, row: int) -> None:
        got = os.preadv(self.fd, [out.data], self.offset + row * self.row_bytes)
        if got != out.nbytes:
            raise DataError(f"{self.path}: truncated at image {row}")


@dataclass(eq=False)
class MemmapImages:
    """uint8 ``[N, C, H, W]`` rows ``rows`` of a cache file, read when indexed (never mapped).

    Supports what training needs of an image tensor: ``len``, ``shape``, ``dtype``, ``ndim``,
    ``device``, ``to(device)`` (where the gathered batches go) and indexing by an int, a slice
    or a 1-D index tensor/array, which returns a tensor. ``expand_to`` replicates one channel.
    """

    file: _CacheFile
    rows: np.ndarray
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels: int | None = None

    dtype = torch.uint8
    ndim = 4

    @classmethod
    def open(cls, path: Path) -> MemmapImages:
        file = _CacheFile(path)
        return cls(file, np.arange(file.shape[0], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        c, h, w = self.file.shape[1:]
        return torch.Size((len(self.rows), self.channels or c, h, w))

    def __getitem__(self, key: int | slice | torch.Tensor | np.ndarray) -> torch.Tensor:
        """The rows ``key`` of the view as a uint8 tensor on ``device``."""
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        rows = self.rows[key]
        if rows.ndim == 0:  # one image
            return self[np.array([key])][0]
        if rows.ndim != 1:
            raise TypeError(f"index MemmapImages by an int, a slice or a 1-D index, not {key!r}")
        x = torch.from_numpy(self.file.gather(rows))
        if self.channels is not None:
            x = x.expand(-1, self.channels, -1, -1).contiguous()
        return x.to(self.device)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of ``size`` rows, as ``torch.Tensor.split``."""
        return (self[start : start + size] for start in range(0, len(self), size))

    def take(self, index: torch.Tensor | np.ndarray) -> MemmapImages:
        """The lazy view of rows ``index`` of this view (no image is read)."""
        index = index.cpu().numpy() if isinstance(index, torch.Tensor) else index
        return MemmapImages(self.file, self.rows[index], self.device, self.channels)

    def to(self, device: torch.device | str) -> MemmapImages:
        return MemmapImages(self.file, self.rows, torch.device(device), self.channels)

    def expand_to(self, channels: int) -> MemmapImages:
        return MemmapImages(self.file, self.rows, self.device, channels)

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
