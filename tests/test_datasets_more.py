"""Fashion-MNIST, EMNIST, STL-10, CelebA and Omniglot loaders on small files in the official
on-disk formats, their one-line errors, a download, and the data-root catalog."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_data import server  # noqa: F401  (local http.server fixture)

from cvae.cli import main
from cvae.config import RunConfig
from cvae.data import (
    celeba,
    dataset_available,
    dataset_dir,
    emnist,
    fashion,
    load_data,
    missing_message,
    omniglot,
    stl10,
)
from cvae.errors import ConfigError, DataError
from cvae.methods import check_config


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def idx_images(pixels: np.ndarray) -> bytes:
    return struct.pack(">iiii", 2051, *pixels.shape) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def marked(n: int, size: int = 28) -> np.ndarray:
    """``n`` black images with one bright pixel at (row 1, col size - 2): top right."""
    pixels = np.zeros((n, size, size), np.uint8)
    pixels[:, 1, size - 2] = 255
    return pixels


# --- Fashion-MNIST (IDX .gz, MNIST reader) ------------------------------------------------


def write_fashion(folder: Path) -> dict[str, bytes]:
    """Official-named .gz IDX files (train 6, test 4); returns each file's gz bytes."""
    raw = {
        "train-images-idx3-ubyte": idx_images(marked(6)),
        "train-labels-idx1-ubyte": idx_labels(np.array([9, 0, 1, 2, 3, 4])),
        "t10k-images-idx3-ubyte": idx_images(marked(4)),
        "t10k-labels-idx1-ubyte": idx_labels(np.array([5, 6, 7, 8])),
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = {stem: gzip.compress(data, mtime=0) for stem, data in raw.items()}
    for stem, data in files.items():
        (folder / f"{stem}.gz").write_bytes(data)
    return files


def patch_fashion(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
    checksums = {stem: (md5(data), None) for stem, data in files.items()}
    monkeypatch.setattr(fashion, "CHECKSUMS", checksums)


def test_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_fashion(tmp_path / "fashion-mnist")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: checksum mismatch"):
        load_data("fashion-mnist", tmp_path)
    patch_fashion(monkeypatch, files)
    splits = load_data("fashion-mnist", tmp_path, val_fraction=0.5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 3, 4)
    assert splits.test.images.shape == (4, 1, 28, 28) and splits.test.images.dtype == torch.uint8
    assert splits.test.labels.tolist() == [5, 6, 7, 8] and splits.info["md5_verified"]
    assert splits.test.classes[0] == "T-shirt/top" and splits.test.classes[9] == "Ankle boot"
    assert int(splits.test.images[0, 0, 1, 26]) == 255 and int(splits.test.images.sum()) == 4 * 255
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (tmp_path / "fashion-mnist" / "t10k-labels-idx1-ubyte").write_bytes(b"unverifiable")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: checksum mismatch.*official"):
        load_data("fashion-mnist", tmp_path)


def test_fashion_download(
    server: tuple[str, Path],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, served = server
    files = write_fashion(served / "fashion")
    monkeypatch.setattr(fashion, "MIRRORS", [f"{base}/absent/", f"{base}/fashion/"])
    dest = tmp_path / "data"
    with pytest.raises(DataError) as err:  # the official checksums reject the served files
        load_data("fashion-mnist", dest, download=True)
    message = str(err.value)
    assert message.startswith("could not download train-images-idx3-ubyte.gz: ")
    assert "absent/train-images-idx3-ubyte.gz: HTTP 404" in message and "md5 " in message
    assert "\n" not in message and not list((dest / "fashion-mnist").iterdir())
    patch_fashion(monkeypatch, files)
    loaded = fashion.load_fashion_mnist(dest, download=True)
    train, test, info = loaded.train, loaded.test, loaded.info
    assert (len(train), len(test)) == (6, 4) and len(info["downloaded"]) == 4
    assert dataset_available(dest, "fashion-mnist")


# --- EMNIST-balanced (IDX .gz inside gzip.zip, transposed) --------------------------------


def write_emnist_zip(path: Path) -> None:
    """gzip.zip as published: gzip/emnist-balanced-*.gz, images stored transposed."""
    stored = marked(5).transpose(0, 2, 1)  # EMNIST stores images transposed
    contents = {
        "train-images-idx3-ubyte": idx_images(stored[:3]),
        "train-labels-idx1-ubyte": idx_labels(np.array([0, 10, 46])),
        "test-images-idx3-ubyte": idx_images(stored[3:]),
        "test-labels-idx1-ubyte": idx_labels(np.array([36, 45])),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("gzip/emnist-mnist-train-images-idx3-ubyte.gz", b"other splits are ignored")
        for name, data in contents.items():
            split, rest = name.split("-", 1)
            zf.writestr(f"gzip/emnist-balanced-{split}-{rest}.gz", gzip.compress(data))


def test_emnist_from_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "emnist" / "gzip.zip"
    write_emnist_zip(archive)
    with pytest.raises(DataError, match=r"gzip\.zip: checksum mismatch"):
        load_data("emnist", tmp_path)
    monkeypatch.setattr(emnist, "ARCHIVE_MD5", md5(archive.read_bytes()))
    splits = load_data("emnist", tmp_path, val_fraction=0.0)
    train, test = splits.train, splits.test
    assert train.images.shape == (3, 1, 28, 28) and train.images.dtype == torch.uint8
    assert sorted(train.labels.tolist()) == [0, 10, 46] and test.labels.tolist() == [36, 45]
    assert len(train.classes) == 47 and train.classes[10] == "A" and train.classes[46] == "t"
    assert train.classes[36] == "a" and test.classes[45] == "r"
    # orientation: the bright pixel is back at the top right, as in MNIST
    assert int(test.images[0, 0, 1, 26]) == 255 and int(test.images[0, 0, 26, 1]) == 0
    assert splits.info["md5_verified"] and splits.info["source"] == str(archive.resolve())


def test_emnist_extracted_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = r"EMNIST files missing in .*emnist: gzip\.zip \(or emnist-balanced-\*\.gz\)"
    with pytest.raises(DataError, match=missing + ".*--download"):
        load_data("emnist", tmp_path)
    archive = tmp_path / "src.zip"
    write_emnist_zip(archive)
    folder = tmp_path / "emnist"
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if "balanced" in name:
                (folder / Path(name).name).parent.mkdir(exist_ok=True)
                (folder / Path(name).name).write_bytes(zf.read(name))
    loaded = emnist.load_emnist(folder)  # the dataset folder itself
    test, info = loaded.test, loaded.info
    assert int(test.images[1, 0, 1, 26]) == 255 and not info["md5_verified"]
    broken = tmp_path / "broken" / "gzip.zip"
    broken.parent.mkdir()
    broken.write_bytes(archive.read_bytes()[:-100])
    monkeypatch.setattr(emnist, "ARCHIVE_MD5", md5(broken.read_bytes()))
    with pytest.raises(DataError, match=r"broken/gzip\.zip: cannot read EMNIST"):
        emnist.load_emnist(broken.parent)


# --- STL-10 (column-major binary) ----------------------------------------------------------


def stl_images(n: int) -> np.ndarray:
    """[n, 3, 96, 96] (channel, row, col) with channel c bright at (row 2, col 70 + c)."""
    images = np.zeros((n, 3, 96, 96), np.uint8)
    for c in range(3):
        images[:, c, 2, 70 + c] = 100 + c
    return images


def write_stl(folder: Path) -> dict[str, bytes]:
    column_major = {  # each channel stored column by column
        "train_X.bin": stl_images(2).transpose(0, 1, 3, 2).tobytes(),
        "test_X.bin": stl_images(3).transpose(0, 1, 3, 2).tobytes(),
        "unlabeled_X.bin": stl_images(4).transpose(0, 1, 3, 2).tobytes(),
    }
    files = {**column_major, "train_y.bin": bytes([1, 10]), "test_y.bin": bytes([3, 2, 1])}
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_stl10_labeled_and_unlabeled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_stl(tmp_path / "stl10" / "stl10_binary")
    with pytest.raises(DataError, match=r"train_X\.bin: checksum mismatch"):
        load_data("stl10", tmp_path)
    monkeypatch.setattr(stl10, "CHECKSUMS", {name: md5(data) for name, data in files.items()})
    loaded = stl10.load_stl10(tmp_path)
    train, test, info = loaded.train, loaded.test, loaded.info
    assert train.images.shape == (2, 3, 96, 96) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 9] and test.labels.tolist() == [2, 1, 0]
    assert train.classes[9] == "truck" and "unlabeled_X.bin" not in info["files"]
    assert torch.equal(test.images, torch.from_numpy(stl_images(3)))  # orientation restored
    assert int(test.images[0, 1, 2, 71]) == 101 and int(test.images[0, 1, 71, 2]) == 0
    splits = load_data("stl10-unlabeled", tmp_path, val_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (3, 1, 3)
    assert splits.train.labels is None and splits.test.labels is not None
    assert torch.equal(splits.val.images[0], torch.from_numpy(stl_images(1)[0]))
    (tmp_path / "stl10" / "stl10_binary" / "unlabeled_X.bin").write_bytes(b"\x00" * 1000)
    monkeypatch.setitem(stl10.CHECKSUMS, "unlabeled_X.bin", md5(b"\x00" * 1000))
    with pytest.raises(DataError, match=r"unlabeled_X\.bin: 1000 bytes is not a whole number"):
        load_data("stl10-unlabeled", tmp_path)


def test_stl10_archive_and_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        DataError, match=r"STL-10 files missing in .*stl10_binary\.tar\.gz \(or stl10_binary/ with"
    ):
        load_data("stl10", tmp_path)
    files = write_stl(tmp_path / "src" / "stl10_binary")
    archive = tmp_path / "data" / "stl10" / "stl10_binary.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "stl10_binary", arcname="stl10_binary")
    monkeypatch.setattr(stl10, "CHECKSUMS", {name: md5(data) for name, data in files.items()})
    with pytest.raises(DataError, match=r"stl10_binary\.tar\.gz: checksum mismatch"):
        load_data("stl10", tmp_path / "data")
    monkeypatch.setattr(stl10, "ARCHIVE_MD5", md5(archive.read_bytes()))
    loaded = stl10.load_stl10(tmp_path / "data")
    train, test = loaded.train, loaded.test
    assert (len(train), len(test)) == (2, 3)
    extracted = sorted(p.name for p in (archive.parent / "stl10_binary").iterdir())
    assert extracted == ["test_X.bin", "test_y.bin", "train_X.bin", "train_y.bin"]


# --- CelebA (JPEGs + partition file, crop 148 -> 64, cached) ------------------------------


def face(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """178x218 (W x H) image: red outside the central 148x148 crop (rows 35..182, cols 15..162);
    inside, ``top`` colour on its upper half and ``bottom`` on its lower half."""
    pixels = np.zeros((218, 178, 3), np.uint8)
    pixels[:] = (255, 0, 0)
    pixels[35:109, 15:163] = top
    pixels[109:183, 15:163] = bottom
    return Image.fromarray(pixels)


GREEN, BLUE = (0, 255, 0), (0, 0, 255)
PARTITION = "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n"


def write_celeba(folder: Path, as_zip: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "list_eval_partition.txt").write_text(PARTITION)
    images = {}
    for i in range(1, 5):
        buf = io.BytesIO()
        face(GREEN, BLUE).save(buf, "JPEG", quality=100, subsampling=0)
        images[f"{i:06d}.jpg"] = buf.getvalue()
    if as_zip:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w") as zf:
            for name, data in images.items():
                zf.writestr(f"img_align_celeba/{name}", data)
    else:
        (folder / "img_align_celeba").mkdir()
        for name, data in images.items():
            (folder / "img_align_celeba" / name).write_bytes(data)


def patch_celeba(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    checksums = {}
    for name, (drive_id, _) in celeba.FILES.items():
        path = folder / name
        checksums[name] = (drive_id, md5(path.read_bytes()) if path.is_file() else "0" * 32)
    monkeypatch.setattr(celeba, "FILES", checksums)


def test_celeba_zip_crop_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "cache"))
    write_celeba(tmp_path / "celeba", as_zip=True)
    with pytest.raises(DataError, match=r"list_eval_partition\.txt: checksum mismatch"):
        load_data("celeba", tmp_path)
    patch_celeba(monkeypatch, tmp_path / "celeba")
    splits = load_data("celeba", tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2, 1, 1)
    assert splits.train.images.shape == (2, 3, 64, 64) and splits.train.labels is None
    with zipfile.ZipFile(tmp_path / "celeba" / "img_align_celeba.zip") as zf:
        decoded = Image.open(io.BytesIO(zf.read("img_align_celeba/000004.jpg"))).convert("RGB")
    expected = decoded.crop((15, 35, 163, 183)).resize((64, 64), Image.Resampling.BILINEAR)
    assert torch.equal(
        splits.test.images[0], torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1)
    )
    image = splits.test.images[0].float()  # [3, 64, 64]
    assert image[0].max() < 40  # no red border: the crop is exactly the central 148x148
    assert image[1, :28].mean() > 230 and image[2, :28].mean() < 20  # green top half
    assert image[2, 36:].mean() > 230 and image[1, 36:].mean() < 20  # blue bottom half
    assert splits.info["md5_verified"] and not splits.info["cache_hit"]

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(celeba, "_decode_all", no_decoding)
    again = load_data("celeba", tmp_path)
    assert again.info["cache_hit"] and torch.equal(again.test.images, splits.test.images)
    with pytest.raises(AssertionError, match="decoded again"):  # another size: another cache
        load_data("celeba", tmp_path, image_size=32)


def test_celeba_folder_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError) as err:
        celeba.load_celeba(tmp_path)
    message = str(err.value)
    assert "CelebA files missing in" in message and "img_align_celeba.zip" in message
    assert "Google Drive" in message and "drive.google.com" in message and "\n" not in message
    folder = tmp_path / "celeba"
    write_celeba(folder, as_zip=False)
    patch_celeba(monkeypatch, folder)
    loaded = celeba.load_celeba(folder, size=32, cache_root=tmp_path / "c")
    train, valid, test, info = loaded.train, loaded.val, loaded.test, loaded.info
    assert train.images.shape == (2, 3, 32, 32) and (len(valid), len(test)) == (1, 1)
    assert not info["md5_verified"]
    (folder / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"000003\.jpg: unreadable image"):
        celeba.load_celeba(folder, size=16, cache_root=tmp_path / "c")
    (folder / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    patch_celeba(monkeypatch, folder)
    with pytest.raises(DataError, match=r"list_eval_partition\.txt:1: expected"):
        celeba.load_celeba(folder, cache_root=tmp_path / "c")


# --- Omniglot (zips of 105x105 PNGs -> 28x28) ---------------------------------------------


def glyph() -> bytes:
    """105x105 bilevel PNG: white paper, a black stroke filling the top-left quadrant."""
    pixels = np.full((105, 105), 255, np.uint8)
    pixels[:40, :40] = 0
    buf = io.BytesIO()
    Image.fromarray(pixels).convert("1").save(buf, "PNG")
    return buf.getvalue()


def write_omniglot(folder: Path) -> dict[str, str]:
    layout = {
        "images_background": ["Latin/character02", "Greek/character01", "Latin/character01"],
        "images_evaluation": ["Runic/character01"],
    }
    folder.mkdir(parents=True, exist_ok=True)
    checksums = {}
    for stem, characters in layout.items():
        with zipfile.ZipFile(folder / f"{stem}.zip", "w") as zf:
            for character in characters:
                for k in (1, 2):
                    zf.writestr(f"{stem}/{character}/0001_{k:02d}.png", glyph())
        checksums[f"{stem}.zip"] = md5((folder / f"{stem}.zip").read_bytes())
    return checksums


def test_omniglot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"Omniglot files missing in .*images_background\.zip"):
        load_data("omniglot", tmp_path)
    checksums = write_omniglot(tmp_path / "omniglot")
    with pytest.raises(DataError, match=r"images_background\.zip: checksum mismatch"):
        load_data("omniglot", tmp_path)
    monkeypatch.setattr(omniglot, "CHECKSUMS", checksums)
    splits = load_data("omniglot", tmp_path, val_fraction=0.0)
    train, test = splits.train, splits.test
    assert train.images.shape == (6, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.classes == [
        "Greek/character01", "Latin/character01", "Latin/character02", "Runic/character01"
    ]  # fmt: skip
    assert sorted(train.labels.tolist()) == [0, 0, 1, 1, 2, 2] and test.labels.tolist() == [3, 3]
    image = test.images[0, 0].float()  # inverted: the stroke is bright, the paper black
    assert image[:8, :8].min() == 255 and image[14:, 14:].max() == 0
    assert not splits.info["cache_hit"] and load_data("omniglot", tmp_path).info["cache_hit"]
    assert load_data("omniglot", tmp_path, image_size=14).test.images.shape == (2, 1, 14, 14)


# --- data-root catalog, config and CLI -----------------------------------------------------


def test_catalog(tmp_path: Path) -> None:
    assert dataset_dir(tmp_path, "fashion-mnist") == tmp_path / "fashion-mnist"
    assert dataset_dir(tmp_path, "stl10-unlabeled") == tmp_path / "stl10"
    assert not dataset_available(tmp_path, "celeba")
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    assert not dataset_available(tmp_path, "celeba")  # the partition file is missing
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("")
    assert dataset_available(tmp_path, "celeba")
    (tmp_path / "stl10" / "stl10_binary").mkdir(parents=True)
    for name in ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"):
        (tmp_path / "stl10" / "stl10_binary" / name).write_bytes(b"")
    assert dataset_available(tmp_path, "stl10")
    assert not dataset_available(tmp_path, "stl10-unlabeled")
    message = missing_message("omniglot", tmp_path)
    assert message == (
        f"omniglot: not found in {tmp_path / 'omniglot'}; download images_background.zip and "
        f"images_evaluation.zip from {omniglot.URL_PREFIX} into {tmp_path / 'omniglot'}"
    )
    assert "Google Drive" in missing_message("celeba", tmp_path)
    with pytest.raises(ConfigError, match="'digits' has no folder under a data root"):
        dataset_dir(tmp_path, "digits")


def test_config_and_cli_accept_new_names(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = RunConfig()
    cfg.data.dataset = "fashion-mnist"
    assert check_config(cfg) is cfg
    cfg.data.dataset = "fashion_mnist"
    with pytest.raises(ConfigError, match="unknown dataset 'fashion_mnist'; choose from digits"):
        check_config(cfg)
    code = main(["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"Fashion-MNIST files missing in {tmp_path / 'fashion-mnist'}" in err
