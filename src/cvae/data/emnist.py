"""EMNIST-balanced (Cohen et al. 2017): 47 classes of 28x28 handwritten characters, read from
the IDX files inside the official ``gzip.zip`` (or the four files extracted from it)."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from cvae.data.base import ImageDataset
from cvae.data.download import default_data_root, resolve_folder, verify_md5
from cvae.data.download import download as fetch
from cvae.data.mnist import (
    IdxSource,
    _decompress,
    _parse_images,
    _parse_labels,
    build_split,
)
from cvae.errors import DataError

URLS = ["https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"]
ARCHIVE = "gzip.zip"
ARCHIVE_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"  # official gzip.zip, as in torchvision's EMNIST
MEMBER_DIR = "gzip"
SPLITS = {
    split: (
        f"emnist-balanced-{split}-images-idx3-ubyte",
        f"emnist-balanced-{split}-labels-idx1-ubyte",
    )
    for split in ("train", "test")
}
# balanced: digits, upper case, and the 11 lower-case letters that differ from their capitals.
CLASSES = list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt")
SOURCE = IdxSource("EMNIST", "emnist", SPLITS, {}, CLASSES, URLS, transpose=True)


def _files(folder: Path) -> list[Path]:
    return [folder / f"{stem}.gz" for pair in SPLITS.values() for stem in pair]


def _read_splits(read: Callable[[str], bytes], base: Path) -> list[ImageDataset]:
    """Parse train and test from ``read(file name)``; ``base / name`` names files in errors."""
    splits = []
    for split, stems in SPLITS.items():
        parts = []
        for stem, parse in zip(stems, (_parse_images, _parse_labels), strict=True):
            path = base / f"{stem}.gz"
            parts.append(parse(_decompress(read(path.name), path), path))
        splits.append(build_split(*parts, SOURCE, f"{base}: {split}"))
    return splits


def _from_zip(archive: Path) -> list[ImageDataset]:
    try:
        with zipfile.ZipFile(archive) as zf:
            return _read_splits(lambda name: zf.read(f"{MEMBER_DIR}/{name}"), archive / MEMBER_DIR)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: cannot read EMNIST-balanced from it ({err})") from err


def load_emnist(
    root: Path | None, *, download: bool = False
) -> tuple[ImageDataset, ImageDataset, dict]:
    """EMNIST-balanced train (112800) and test (18800) as uint8 ``[N, 1, 28, 28]``, labels 0..46.

    Reads ``gzip.zip`` (md5-verified; the IDX files are read from it without extracting) or, if
    present, the four ``emnist-balanced-*.gz`` files extracted from it (no per-file md5 is
    published, so those are not verified). Images are transposed back to MNIST's orientation.
    ``root``: that folder or a data root holding ``emnist/``; ``download`` fetches ``gzip.zip``.
    """
    if root is None:
        folder = default_data_root() / "emnist"
    else:
        markers = [ARCHIVE, *(p.name for p in _files(Path(root)))]
        folder = resolve_folder(Path(root), "emnist", markers)
    files, archive = _files(folder), folder / ARCHIVE
    downloaded = False
    if all(f.is_file() for f in files):
        train, test = _read_splits(lambda name: (folder / name).read_bytes(), folder)
        return train, test, {"source": str(folder.resolve()), "md5_verified": False}
    if not archive.is_file():
        if not download:
            raise DataError(
                f"EMNIST not found in {folder}: no {ARCHIVE} (or emnist-balanced-*.gz); "
                f"pass --download or put {ARCHIVE} from {URLS[0]} in {folder}"
            )
        fetch(URLS, archive, ARCHIVE_MD5)
        downloaded = True
    else:
        verify_md5(archive, ARCHIVE_MD5)
    train, test = _from_zip(archive)
    info = {
        "source": str(archive.resolve()),
        "files": {ARCHIVE: ARCHIVE_MD5},
        "md5_verified": True,
        "downloaded": downloaded,
    }
    return train, test, info
