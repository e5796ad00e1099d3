"""Fashion-MNIST (Xiao et al. 2017): MNIST's IDX format and sizes, 10 clothing classes."""

from __future__ import annotations

from pathlib import Path

from cvae.data.base import Loaded
from cvae.data.download import Remote
from cvae.data.idx import IdxSource, load_idx
from cvae.data.mnist import SPLITS

MIRRORS = [
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
]
# md5 of the official .gz files (as in torchvision's FashionMNIST); the uncompressed files' md5s
# are not published, so only the .gz files are accepted.
CHECKSUMS: dict[str, tuple[str, str | None]] = {
    "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", None),
    "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe", None),
    "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79", None),
    "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310", None),
}
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def source() -> IdxSource:
    """Fashion-MNIST's files, checksums, mirrors and classes."""
    return IdxSource("Fashion-MNIST", "fashion-mnist", SPLITS, CHECKSUMS, CLASSES, MIRRORS)


def remotes() -> list[Remote]:
    """The four official ``.gz`` files and their mirrors."""
    return source().remotes()


def load_fashion_mnist(root: Path | None, *, download: bool = False) -> Loaded:
    """Fashion-MNIST train (60000) and test (10000) as uint8 ``[N, 1, 28, 28]``, labels 0..9.

    ``root``: the folder with the four official ``.gz`` files or a data root holding
    ``fashion-mnist/`` (``None``: the default data root); ``download`` fetches missing files.
    """
    return load_idx(source(), root, download=download)
