"""The dataset registry: the one list of names, rows that match what each loader returns, one
provenance schema for every loader, and the file-based rows' download facts."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from test_data import patch_cifar_md5, save_image, write_cifar, write_mnist
from test_datasets_more import (
    patch_celeba,
    patch_fashion,
    write_celeba,
    write_emnist_zip,
    write_fashion,
    write_omniglot,
    write_stl,
)

from cvae.config import RunConfig, validate
from cvae.data import (
    DATASETS,
    REGISTRY,
    dataset_available,
    emnist,
    get_dataset,
    load_data,
    missing_message,
    mnist,
    omniglot,
    stl10,
)
from cvae.errors import ConfigError

Setup = Callable[[Path, pytest.MonkeyPatch], None]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _mnist(root: Path, mp: pytest.MonkeyPatch) -> None:
    contents = write_mnist(root / "mnist")
    mp.setattr(mnist, "CHECKSUMS", {s: ("0" * 32, md5(raw)) for s, raw in contents.items()})


def _fashion(root: Path, mp: pytest.MonkeyPatch) -> None:
    patch_fashion(mp, write_fashion(root / "fashion-mnist"))


def _emnist(root: Path, mp: pytest.MonkeyPatch) -> None:
    write_emnist_zip(root / "emnist" / "gzip.zip")
    mp.setattr(emnist, "ARCHIVE_MD5", md5((root / "emnist" / "gzip.zip").read_bytes()))


def _cifar(root: Path, mp: pytest.MonkeyPatch) -> None:
    patch_cifar_md5(mp, write_cifar(root / "cifar10" / "cifar-10-batches-py"))


def _stl(root: Path, mp: pytest.MonkeyPatch) -> None:
    files = write_stl(root / "stl10" / "stl10_binary")
    mp.setattr(stl10, "CHECKSUMS", {name: md5(data) for name, data in files.items()})


def _celeba(root: Path, mp: pytest.MonkeyPatch) -> None:
    write_celeba(root / "celeba", as_zip=False)
    patch_celeba(mp, root / "celeba")


def _omniglot(root: Path, mp: pytest.MonkeyPatch) -> None:
    mp.setattr(omniglot, "CHECKSUMS", write_omniglot(root / "omniglot"))


def _folder(root: Path, mp: pytest.MonkeyPatch) -> None:
    for name in ("a", "b"):
        save_image(root / "cats" / f"{name}.png", (5, 5))


def _nothing(root: Path, mp: pytest.MonkeyPatch) -> None:
    pass


SETUPS: dict[str, Setup] = {
    "digits": _nothing,
    "mnist": _mnist,
    "fashion-mnist": _fashion,
    "emnist": _emnist,
    "cifar10": _cifar,
    "stl10": _stl,
    "stl10-unlabeled": _stl,
    "celeba": _celeba,
    "omniglot": _omniglot,
    "folder": _folder,
    "synthetic": _nothing,
}


def test_the_registry_is_the_list_of_names() -> None:
    assert DATASETS == tuple(REGISTRY) == tuple(SETUPS)  # every dataset is covered below
    assert all(spec.name == name for name, spec in REGISTRY.items())
    assert get_dataset("cifar10") is REGISTRY["cifar10"]
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'; valid names: digits, mnist"):
        get_dataset("cifar")
    cfg = RunConfig()
    for name in DATASETS:  # the config accepts exactly the registry's names
        cfg.data.dataset = name
        validate(cfg)


@pytest.mark.parametrize("name", list(SETUPS))
def test_rows_match_what_the_loaders_return(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "cache"))
    SETUPS[name](tmp_path, monkeypatch)
    root = tmp_path / "cats" if name == "folder" else tmp_path
    splits = load_data(name, root, val_fraction=0.0, synthetic_size=8)
    spec = REGISTRY[name]
    if spec.shape is not None:
        assert splits.train.shape == spec.shape
    if spec.labelled is not None:
        assert (splits.train.labels is not None) == spec.labelled
    info = splits.info
    assert isinstance(info["source"], str) and isinstance(info["md5_verified"], bool)
    assert isinstance(info["downloaded"], list) and isinstance(info["files"], dict)
    assert all(isinstance(v, str) for v in info["files"].values())
    assert info["md5_verified"] == (bool(info["files"]) and name != "celeba")  # loose JPEGs


@pytest.mark.parametrize("name", [n for n, spec in REGISTRY.items() if spec.files is not None])
def test_file_based_rows_say_what_to_download(name: str, tmp_path: Path) -> None:
    files = REGISTRY[name].files
    remotes = files.remotes()
    assert remotes and all(r.md5 and r.urls for r in remotes)
    assert all(url.startswith(("https://", "http://")) for r in remotes for url in r.urls)
    message = missing_message(name, tmp_path)
    assert "\n" not in message and all(r.name in message for r in remotes)
    assert str(tmp_path / files.folder) in message and not dataset_available(tmp_path, name)
