"""MNIST (LeCun et al. 1998): 28x28 handwritten digits, IDX files (see :mod:`cvae.data.idx`)."""

from __future__ import annotations

from pathlib import Path

from cvae.data.base import Loaded
from cvae.data.download import Remote
from cvae.data.idx import IdxSource, load_idx

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
# file stem -> (md5 of the official .gz, md5 of the uncompressed IDX bytes)
CHECKSUMS: dict[str, tuple[str, str | None]] = {
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


def source() -> IdxSource:
    """MNIST's files, checksums, mirrors and classes."""
    return IdxSource("MNIST", "mnist", SPLITS, CHECKSUMS, CLASSES, MIRRORS)


def remotes() -> list[Remote]:
    """The four official ``.gz`` files and their mirrors."""
    return source().remotes()


def load_mnist(root: Path | None, *, download: bool = False) -> Loaded:
    """MNIST train (60000) and test (10000) as uint8 ``[N, 1, 28, 28]``, labels 0..9.

    ``root`` is the folder holding the four IDX files or a data root holding ``mnist/``; ``None``
    means ``default_data_root() / "mnist"``. Missing files are downloaded there with ``download``.
    """
    return load_idx(source(), root, download=download)
