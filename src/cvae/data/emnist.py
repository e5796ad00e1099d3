"""EMNIST-balanced (Cohen et al. 2017): 47 classes of 28x28 handwritten characters, read from
the IDX files inside the official ``gzip.zip`` (or the four files extracted from it)."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from io import BufferedIOBase
from pathlib import Path

from cvae.data.base import ImageDataset, Loaded
from cvae.data.download import Remote, dataset_folder, ensure_archive
from cvae.data.idx import IdxSource, build_split, open_idx, read_idx
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
Opener = Callable[[str], AbstractContextManager[BufferedIOBase]]


def remotes() -> list[Remote]:
    """The official ``gzip.zip`` (all EMNIST splits; only ``balanced`` is read)."""
    return [Remote(ARCHIVE, ARCHIVE_MD5, tuple(URLS))]


def _names() -> list[str]:
    return [f"{stem}.gz" for pair in SPLITS.values() for stem in pair]


def _read_splits(open_file: Opener, base: Path) -> list[ImageDataset]:
    """Parse train and test from ``open_file(file name)``; ``base / name`` names files in errors."""
    splits = []
    for split, (images_stem, labels_stem) in SPLITS.items():
        with open_file(f"{images_stem}.gz") as f:
            images, _ = read_idx(f, base / f"{images_stem}.gz", "images")
        with open_file(f"{labels_stem}.gz") as f:
            labels, _ = read_idx(f, base / f"{labels_stem}.gz", "labels")
        splits.append(build_split(images, labels, SOURCE, f"{base}: {split}"))
    return splits


def _from_zip(archive: Path) -> list[ImageDataset]:
    try:
        with zipfile.ZipFile(archive) as zf:

            @contextmanager
            def member(name: str) -> Iterator[BufferedIOBase]:
                with zf.open(f"{MEMBER_DIR}/{name}") as raw, gzip.GzipFile(fileobj=raw) as f:
                    yield f

            return _read_splits(member, archive / MEMBER_DIR)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: cannot read EMNIST-balanced from it ({err})") from err


def load_emnist(root: Path | None, *, download: bool = False) -> Loaded:
    """EMNIST-balanced train (112800) and test (18800) as uint8 ``[N, 1, 28, 28]``, labels 0..46.

    Reads ``gzip.zip`` (md5-verified; the IDX files are read from it without extracting) or, if
    present, the four ``emnist-balanced-*.gz`` files extracted from it (no per-file md5 is
    published, so those are not verified). Images are transposed back to MNIST's orientation.
    ``root``: that folder or a data root holding ``emnist/``; ``download`` fetches ``gzip.zip``.
    """
    folder = dataset_folder(root, "emnist", [ARCHIVE, *_names()])
    if all((folder / name).is_file() for name in _names()):
        train, test = _read_splits(lambda name: open_idx(folder / name), folder)
        return Loaded(train, test, str(folder.resolve()))
    (archive_remote,) = remotes()
    downloaded = ensure_archive(
        folder, archive_remote, download=download, title="EMNIST", instead="emnist-balanced-*.gz"
    )
    archive = folder / ARCHIVE
    train, test = _from_zip(archive)
    return Loaded(train, test, str(archive.resolve()), {ARCHIVE: ARCHIVE_MD5}, True, downloaded)
