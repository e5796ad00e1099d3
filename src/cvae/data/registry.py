"""Every dataset in one table, :data:`REGISTRY`: its name, loader, whether its train images are
labelled, the image shape it loads by default and, for file-based datasets, where its files live
under a data root and what to download from where. Adding a dataset is one module with a loader
returning :class:`~cvae.data.base.Loaded`, plus one row here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cvae.data import celeba, cifar, digits, emnist, fashion, folder, mnist, omniglot, stl10
from cvae.data.base import Loaded
from cvae.data.download import Remote, describe
from cvae.data.synthetic import synthetic
from cvae.errors import ConfigError


@dataclass(frozen=True)
class Request:
    """What :func:`cvae.data.load_data` asks a loader for (each loader reads what it needs)."""

    root: Path | None
    download: bool = False
    image_size: int | None = None
    synthetic_shape: tuple[int, int, int] = (1, 28, 28)
    synthetic_size: int = 2048
    cache_root: Path | None = None


@dataclass(frozen=True)
class Files:
    """A file-based dataset: its ``folder`` under a data root; the layouts that count as present
    (every path of any one, relative to the folder: presence only, the loaders verify checksums);
    the published files to download (``remotes``, read from the dataset's module when called) and
    a ``note`` on how."""

    folder: str
    layouts: tuple[tuple[str, ...], ...]
    remotes: Callable[[], list[Remote]]
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """One row of the registry. ``labelled``: the train images carry labels (``None``: depends
    on the files); ``shape``: ``(C, H, W)`` as loaded without ``image_size`` (``None``: set by the
    files or the options); ``files``: ``None`` for datasets made in memory."""

    name: str
    load: Callable[[Request], Loaded]
    labelled: bool | None
    shape: tuple[int, int, int] | None
    files: Files | None = None


def _load_folder(r: Request) -> Loaded:
    if r.root is None:
        raise ConfigError("dataset 'folder' needs data_dir (the folder of images)")
    return folder.load_folder(r.root, image_size=r.image_size, cache_root=r.cache_root)


def _gz(stems: list[str]) -> tuple[str, ...]:
    return tuple(f"{stem}.gz" for stem in stems)


_STL_LABELED = tuple(f"{stl10.BINARY_DIR}/{name}" for name in stl10.LABELED)
_STL_UNLABELED = (*_STL_LABELED, f"{stl10.BINARY_DIR}/{stl10.UNLABELED}")
_EMNIST_FILES = _gz([stem for pair in emnist.SPLITS.values() for stem in pair])
_CIFAR_BATCHES = tuple(f"{cifar.BATCH_DIR}/{name}" for name in cifar.CHECKSUMS)
_DRIVE_NOTE = (
    f"Google Drive often refuses scripted downloads: fetch them by hand ({celeba.HOMEPAGE})"
)

_SPECS = (
    DatasetSpec("digits", lambda r: digits.load_digits(), True, (1, 8, 8)),
    DatasetSpec(
        "mnist",
        lambda r: mnist.load_mnist(r.root, download=r.download),
        True,
        (1, 28, 28),
        Files("mnist", (_gz(list(mnist.CHECKSUMS)), tuple(mnist.CHECKSUMS)), mnist.remotes),
    ),
    DatasetSpec(
        "fashion-mnist",
        lambda r: fashion.load_fashion_mnist(r.root, download=r.download),
        True,
        (1, 28, 28),
        Files("fashion-mnist", (_gz(list(fashion.CHECKSUMS)),), fashion.remotes),
    ),
    DatasetSpec(
        "emnist",
        lambda r: emnist.load_emnist(r.root, download=r.download),
        True,
        (1, 28, 28),
        Files("emnist", ((emnist.ARCHIVE,), _EMNIST_FILES), emnist.remotes),
    ),
    DatasetSpec(
        "cifar10",
        lambda r: cifar.load_cifar10(r.root, download=r.download),
        True,
        (3, 32, 32),
        Files("cifar10", ((cifar.ARCHIVE,), _CIFAR_BATCHES), cifar.remotes),
    ),
    DatasetSpec(
        "stl10",
        lambda r: stl10.load_stl10(r.root, download=r.download),
        True,
        (3, stl10.SIZE, stl10.SIZE),
        Files("stl10", ((stl10.ARCHIVE,), _STL_LABELED), stl10.remotes),
    ),
    DatasetSpec(
        "stl10-unlabeled",
        lambda r: stl10.load_stl10(r.root, unlabeled=True, download=r.download),
        False,
        (3, stl10.SIZE, stl10.SIZE),
        Files("stl10", ((stl10.ARCHIVE,), _STL_UNLABELED), stl10.remotes),
    ),
    DatasetSpec(
        "celeba",
        lambda r: celeba.load_celeba(r.root, download=r.download, size=r.image_size or celeba.SIZE),
        False,
        (3, celeba.SIZE, celeba.SIZE),
        Files(
            "celeba",
            ((celeba.PARTITION, celeba.ARCHIVE), (celeba.PARTITION, celeba.IMAGE_DIR)),
            celeba.remotes,
            _DRIVE_NOTE,
        ),
    ),
    DatasetSpec(
        "omniglot",
        lambda r: omniglot.load_omniglot(
            r.root, download=r.download, size=r.image_size or omniglot.SIZE
        ),
        True,
        (1, omniglot.SIZE, omniglot.SIZE),
        Files("omniglot", (tuple(omniglot.CHECKSUMS),), omniglot.remotes),
    ),
    DatasetSpec("folder", _load_folder, None, None),
    DatasetSpec(
        "synthetic",
        lambda r: synthetic(r.synthetic_shape, r.synthetic_size, r.synthetic_size // 4),
        True,
        None,
    ),
)
REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
"""Dataset name -> :class:`DatasetSpec`; the only list of dataset names."""


def get_dataset(name: str) -> DatasetSpec:
    """The registry row of ``name``; an unknown name is a one-line :class:`ConfigError`."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown dataset {name!r}; valid names: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _files(name: str) -> Files:
    files = get_dataset(name).files
    if files is None:
        file_based = [n for n, spec in REGISTRY.items() if spec.files is not None]
        raise ConfigError(
            f"dataset {name!r} has no folder under a data root; "
            f"file-based datasets: {', '.join(file_based)}"
        )
    return files


def dataset_dir(root: Path, name: str) -> Path:
    """The folder of dataset ``name`` under the data root ``root`` (e.g. ``root/fashion-mnist``)."""
    return Path(root).expanduser() / _files(name).folder


def dataset_available(root: Path, name: str) -> bool:
    """Whether ``dataset_dir(root, name)`` holds one complete layout of the dataset's files.

    Checks presence only; checksums are verified when the dataset is loaded.
    """
    where = dataset_dir(root, name)
    return any(all((where / path).exists() for path in layout) for layout in _files(name).layouts)


def missing_message(name: str, root: Path) -> str:
    """One line saying what to download for ``name`` and where to put it under ``root``."""
    files, where = _files(name), dataset_dir(root, name)
    note = f"; {files.note}" if files.note else ""
    return f"{name}: not found in {where}; download {describe(files.remotes())} into {where}{note}"
