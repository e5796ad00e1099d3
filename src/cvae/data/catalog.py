"""Where each file-based dataset lives under a data root, and what to download when it is not
there (for ``cvae reproduce --data-dir ROOT``: one folder per dataset)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cvae.data import celeba, cifar, emnist, fashion, mnist, omniglot, stl10
from cvae.errors import ConfigError


@dataclass(frozen=True)
class Source:
    """``folder`` under the data root; the dataset is present when every path of any one of
    ``layouts`` exists there (presence only: the loaders verify the checksums); ``fetch`` says
    what to download from where."""

    folder: str
    layouts: tuple[tuple[str, ...], ...]
    fetch: str


def _idx_files(stems: list[str]) -> tuple[str, ...]:
    return tuple(f"{stem}.gz" for stem in stems)


_STL_LABELED = tuple(f"{stl10.BINARY_DIR}/{name}" for name in stl10.LABELED)
SOURCES = {
    "mnist": Source(
        "mnist",
        (_idx_files(list(mnist.CHECKSUMS)), tuple(mnist.CHECKSUMS)),
        f"the four *-ubyte.gz files from {mnist.MIRRORS[0]}",
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        (_idx_files(list(fashion.CHECKSUMS)),),
        f"the four *-ubyte.gz files from {fashion.MIRRORS[0]}",
    ),
    "emnist": Source(
        "emnist",
        ((emnist.ARCHIVE,), _idx_files([s for pair in emnist.SPLITS.values() for s in pair])),
        f"{emnist.ARCHIVE} from {emnist.URLS[0]}",
    ),
    "cifar10": Source(
        "cifar10",
        ((cifar.ARCHIVE,), tuple(f"{cifar.BATCH_DIR}/{name}" for name in cifar.CHECKSUMS)),
        f"{cifar.ARCHIVE} from {cifar.URL}",
    ),
    "stl10": Source("stl10", ((stl10.ARCHIVE,), _STL_LABELED), f"{stl10.ARCHIVE} from {stl10.URL}"),
    "stl10-unlabeled": Source(
        "stl10",
        ((stl10.ARCHIVE,), (*_STL_LABELED, f"{stl10.BINARY_DIR}/{stl10.UNLABELED}")),
        f"{stl10.ARCHIVE} from {stl10.URL}",
    ),
    "celeba": Source(
        "celeba",
        ((celeba.PARTITION, celeba.ARCHIVE), (celeba.PARTITION, celeba.IMAGE_DIR)),
        f"{celeba.ARCHIVE} and {celeba.PARTITION} from Google Drive (links on {celeba.HOMEPAGE}; "
        "usually by hand)",
    ),
    "omniglot": Source(
        "omniglot",
        (tuple(omniglot.CHECKSUMS),),
        f"{' and '.join(omniglot.CHECKSUMS)} from {omniglot.URL_PREFIX}",
    ),
}


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ConfigError(
            f"dataset {name!r} has no folder under a data root; "
            f"file-based datasets: {', '.join(SOURCES)}"
        )
    return SOURCES[name]


def dataset_dir(root: Path, name: str) -> Path:
    """The folder of dataset ``name`` under the data root ``root`` (e.g. ``root/fashion-mnist``)."""
    return Path(root).expanduser() / _source(name).folder


def dataset_available(root: Path, name: str) -> bool:
    """Whether ``dataset_dir(root, name)`` holds one complete layout of the dataset's files.

    Checks presence only; checksums are verified when the dataset is loaded.
    """
    folder = dataset_dir(root, name)
    return any(all((folder / path).exists() for path in layout) for layout in _source(name).layouts)


def missing_message(name: str, root: Path) -> str:
    """One line saying what to download for ``name`` and where to put it under ``root``."""
    source, folder = _source(name), dataset_dir(root, name)
    return f"{name}: not found in {folder}; download {source.fetch} into {folder}"
