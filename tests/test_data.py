"""Data layer: real MNIST, IDX/CIFAR/folder parsing errors, splits, caching and downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import struct
import tarfile
import threading
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cvae.data import DATASETS, ImageDataset, cifar, folder, load_data, mnist
from cvae.data.base import split_train_val
from cvae.data.digits import load_digits
from cvae.data.download import download, md5_file
from cvae.data.idx import read_idx_images, read_idx_labels
from cvae.data.mnist import load_mnist
from cvae.errors import ConfigError, DataError

STEMS = list(mnist.CHECKSUMS)


def idx_images(pixels: np.ndarray, magic: int = 2051) -> bytes:
    n, h, w = pixels.shape
    return struct.pack(">iiii", magic, n, h, w) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist(dest: Path, gz: bool = True) -> dict[str, bytes]:
    """Small valid MNIST-named IDX files in ``dest``; returns the uncompressed bytes per stem."""
    rng = np.random.default_rng(0)
    contents = {}
    for prefix, n in (("train", 12), ("t10k", 6)):
        contents[f"{prefix}-images-idx3-ubyte"] = idx_images(rng.integers(0, 256, (n, 28, 28)))
        contents[f"{prefix}-labels-idx1-ubyte"] = idx_labels(np.arange(n) % 10)
    dest.mkdir(parents=True, exist_ok=True)
    for stem, raw in contents.items():
        if gz:
            (dest / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (dest / stem).write_bytes(raw)
    return contents


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# --- real MNIST -------------------------------------------------------------------------------


def test_real_mnist_folder_layout(mnist_dir: Path) -> None:
    loaded = load_mnist(mnist_dir)
    train, test, info = loaded.train, loaded.test, loaded.info
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert int(train.labels[0]) == 5 and int(test.labels[0]) == 7
    assert train.classes == [str(i) for i in range(10)]
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.sum() == 60000 and counts.min() > 5000 and counts.max() < 7000
    assert torch.bincount(test.labels, minlength=10).min() > 850
    assert 30 < train.images.float().mean() < 36  # MNIST mean pixel is ~33.3
    assert info["md5_verified"] and len(info["files"]) == 4


def test_real_mnist_root_layout_and_split(mnist_dir: Path) -> None:
    splits = load_data("mnist", mnist_dir.parent, val_fraction=0.1, split_seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54000, 6000, 10000)
    assert splits.info["source"] == str(mnist_dir.resolve())
    assert splits.info["sizes"] == {"train": 54000, "val": 6000, "test": 10000}
    assert splits.info["split_seed"] == 0 and splits.info["md5_verified"]
    assert torch.bincount(splits.val.labels, minlength=10).min() > 450
    json.dumps(splits.info)  # provenance goes into run directories as JSON


# --- splits --------------------------------------------------------------------------------


def test_split_is_seeded_and_disjoint() -> None:
    data = ImageDataset(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100))
    train, val = split_train_val(data, 0.2, seed=1)
    again_train, again_val = split_train_val(data, 0.2, seed=1)
    other_train, _ = split_train_val(data, 0.2, seed=2)
    assert torch.equal(train.labels, again_train.labels)
    assert torch.equal(val.labels, again_val.labels)
    assert not torch.equal(train.labels, other_train.labels)
    assert len(val) == 20 and set(train.labels.tolist()).isdisjoint(val.labels.tolist())
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(100))


def test_load_data_split_reproducible() -> None:
    a = load_data("synthetic", synthetic_size=200, split_seed=3)
    b = load_data("synthetic", synthetic_size=200, split_seed=3)
    c = load_data("synthetic", synthetic_size=200, split_seed=4)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.val.images, c.val.images)
    assert (len(a.train), len(a.val), len(a.test)) == (180, 20, 50)


# --- IDX parsing and MNIST errors ----------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    contents = write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx_images(tmp_path / f"train-images-idx3-ubyte{suffix}")
    labels = read_idx_labels(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    expected = np.frombuffer(contents["train-images-idx3-ubyte"], np.uint8, offset=16)
    assert images.shape == (12, 1, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(images.flatten(), torch.from_numpy(expected.copy()))
    assert labels.tolist() == [i % 10 for i in range(12)]


def test_idx_truncated(tmp_path: Path) -> None:
    path = tmp_path / "imgs-idx3-ubyte"
    path.write_bytes(idx_images(np.zeros((5, 2, 2)))[:-5])
    expected = r"imgs-idx3-ubyte: truncated: expected 20 bytes of pixels, found 15"
    with pytest.raises(DataError, match=expected):
        read_idx_images(path)
    labels = tmp_path / "labels.gz"
    labels.write_bytes(gzip.compress(idx_labels(np.arange(4))[:-1]))
    expected = r"labels\.gz: truncated: expected 4 bytes of labels, found 3"
    with pytest.raises(DataError, match=expected):
        read_idx_labels(labels)
    header = tmp_path / "short"
    header.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="short: truncated"):
        read_idx_images(header)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "labels-as-images"
    path.write_bytes(idx_labels(np.arange(3)))
    with pytest.raises(DataError, match="labels-as-images: bad magic number 2049, expected 2051"):
        read_idx_images(path)


def test_idx_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_images(np.zeros((3, 4, 4))))[:-12])
    with pytest.raises(DataError, match=r"broken\.gz: corrupt gzip"):
        read_idx_images(path)
    path.write_bytes(b"definitely not gzip")
    with pytest.raises(DataError, match=r"broken\.gz: corrupt gzip"):
        read_idx_images(path)


# --- decompression bombs: refused in bounded memory ----------------------------------------

BOMB = 64 << 20  # zero bytes behind the header: ~64 KB compressed


def gzip_bomb(path: Path, header: bytes, zeros: int = BOMB) -> Path:
    """``header`` then ``zeros`` zero bytes, gzip-compressed a chunk at a time."""
    chunk = bytes(1 << 20)
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(header)
        for _ in range(zeros // len(chunk)):
            f.write(chunk)
    assert path.stat().st_size < zeros // 500
    return path


def refusal_and_peak(call: Callable[[], object]) -> tuple[str, int]:
    """The one-line DataError ``call`` raises and the peak of Python/numpy memory meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(err.value)
    return str(err.value), peak


def test_gzip_bomb_stops_after_the_announced_bytes(tmp_path: Path) -> None:
    bomb = gzip_bomb(tmp_path / "train-labels-idx1-ubyte.gz", struct.pack(">ii", 2049, 10))
    message, peak = refusal_and_peak(lambda: read_idx_labels(bomb))
    assert message.startswith(f"{bomb}: unexpected bytes after the 10 bytes of labels")
    assert peak < BOMB // 4  # read in chunks: the zeros were never all in memory
    message, peak = refusal_and_peak(lambda: md5_file(bomb, decompress_gz=True, limit=1 << 20))
    assert message == f"{bomb}: decompresses to more than {1 << 20} bytes" and peak < BOMB // 4


def test_idx_header_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    huge = struct.pack(">ii", 2049, 2**31 - 1)  # 2 GiB of labels announced
    bomb = gzip_bomb(tmp_path / "labels.gz", huge)
    message, peak = refusal_and_peak(lambda: read_idx_labels(bomb))
    assert (
        message
        == f"{bomb}: its header announces {2**31 - 1} bytes of labels, over the limit of {1 << 30}"
    )
    assert peak < 1 << 20
    images = tmp_path / "images"
    images.write_bytes(idx_images(np.zeros((3, 4, 4))))
    assert read_idx_images(images, limit=48).shape == (3, 1, 4, 4)
    with pytest.raises(DataError, match="images: its header announces 48 bytes of pixels, over"):
        read_idx_images(images, limit=47)


def test_loaders_refuse_a_bomb_in_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contents = write_mnist(tmp_path / "mnist")
    checksums = {stem: ("0" * 32, md5(raw)) for stem, raw in contents.items()}
    monkeypatch.setattr(mnist, "CHECKSUMS", checksums)
    header = contents["train-labels-idx1-ubyte"][:8]  # the honest header: 12 labels
    bomb = gzip_bomb(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", header)
    message, peak = refusal_and_peak(lambda: load_data("mnist", tmp_path))
    assert message.startswith(f"{bomb}: unexpected bytes after the 12 bytes of labels")
    assert peak < BOMB // 4
    # Fashion-MNIST publishes no uncompressed md5: a foreign .gz is never decompressed
    fashion_dir = tmp_path / "fashion-mnist"
    fashion_dir.mkdir()
    for stem in contents:
        gzip_bomb(fashion_dir / f"{stem}.gz", header, zeros=1 << 20)
    message, _ = refusal_and_peak(lambda: load_data("fashion-mnist", tmp_path))
    assert "train-images-idx3-ubyte.gz: checksum mismatch" in message


def test_mnist_missing_files(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path, download=False)
    message = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "train-images" not in message
    assert "--download" in message and str(tmp_path) in message and "\n" not in message
    empty_root = tmp_path / "empty-root"
    with pytest.raises(DataError, match=f"missing in {empty_root / 'mnist'}: train-images"):
        load_mnist(empty_root)


def test_mnist_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = write_mnist(tmp_path / "mnist", gz=False)
    with pytest.raises(DataError, match="train-images-idx3-ubyte: checksum mismatch"):
        load_mnist(tmp_path)
    checksums = {stem: ("0" * 32, md5(raw)) for stem, raw in contents.items()}
    monkeypatch.setattr(mnist, "CHECKSUMS", checksums)
    loaded = load_mnist(tmp_path)  # data root holding mnist/, uncompressed files
    train, test, info = loaded.train, loaded.test, loaded.info
    assert (len(train), len(test)) == (12, 6) and info["md5_verified"]
    assert info["files"]["train-images-idx3-ubyte"] == md5(contents["train-images-idx3-ubyte"])


# --- CIFAR-10 ------------------------------------------------------------------------------


def write_cifar(dest: Path, n: int = 3) -> dict[str, bytes]:
    """Fake canonical CIFAR batches (bytes keys, uint8 [n, 3072]); returns each file's bytes."""
    rng = np.random.default_rng(0)
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    for name in [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        files[name] = pickle.dumps(batch, protocol=2)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    files[cifar.META] = pickle.dumps({b"label_names": names, b"num_vis": 3072})
    for name, raw in files.items():
        (dest / name).write_bytes(raw)
    return files


def patch_cifar_md5(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
    monkeypatch.setattr(cifar, "CHECKSUMS", {name: md5(raw) for name, raw in files.items()})


def test_cifar_from_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_cifar(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match="data_batch_1: checksum mismatch"):
        load_data("cifar10", tmp_path)
    patch_cifar_md5(monkeypatch, files)
    splits = load_data("cifar10", tmp_path, val_fraction=0.2)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 3, 3)
    assert splits.train.images.shape[1:] == (3, 32, 32)
    assert splits.train.classes[0] == "airplane" and splits.train.classes[-1] == "truck"
    test = pickle.loads(files["test_batch"])
    assert torch.equal(splits.test.images.reshape(3, -1), torch.from_numpy(test[b"data"]))
    assert splits.test.labels.tolist() == test[b"labels"]


def test_cifar_from_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("cifar-10-batches-py/../../escaped")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: checksum mismatch"):
        load_data("cifar10", tmp_path / "data")
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", md5_file(archive))
    patch_cifar_md5(monkeypatch, files)
    loaded = cifar.load_cifar10(tmp_path / "data")
    train, test, info = loaded.train, loaded.test, loaded.info
    assert (len(train), len(test)) == (15, 3) and train.images.dtype == torch.uint8
    assert (archive.parent / "cifar-10-batches-py" / "data_batch_5").is_file()
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "data" / "escaped").exists()
    assert info["archive"] == str(archive.resolve())


def test_cifar_archive_rejects_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", md5_file(archive))
    with pytest.raises(DataError, match="data_batch_1 is not a regular file"):
        cifar.load_cifar10(tmp_path)


def test_cifar_missing(tmp_path: Path) -> None:
    missing = r"CIFAR-10 files missing in .*cifar-10-python\.tar\.gz \(or cifar-10-batches-py/ "
    with pytest.raises(DataError, match=missing + r"with data_batch_1, .*--download"):
        load_data("cifar10", tmp_path)


class _Exploit:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return os.mkdir, (str(self.target),)


def test_restricted_unpickler_rejects_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}))
    with pytest.raises(DataError, match="data_batch_1: .*refusing to load global"):
        cifar.safe_unpickle(path)
    assert not marker.exists()
    arrays = {b"data": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    for protocol in (2, 4, 5):  # numpy arrays still load, whatever the protocol
        path.write_bytes(pickle.dumps(arrays, protocol=protocol))
        assert np.array_equal(cifar.safe_unpickle(path)[b"data"], arrays[b"data"])


# --- image folders -------------------------------------------------------------------------


def save_image(path: Path, size: tuple[int, int], mode: str = "L", value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 0, 255 - value)
    Image.new(mode, size, color).save(path)


def test_folder_labeled_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pets"
    save_image(root / "dog" / "b.png", (6, 5), value=200)
    save_image(root / "cat" / "a.png", (6, 5), value=10)
    save_image(root / "cat" / "nested" / "c.jpg", (6, 5), value=50)
    (root / "cat" / "notes.txt").write_text("ignored")
    cache_root = tmp_path / "cache"
    loaded = folder.load_folder(root, cache_root=cache_root)
    data, info = loaded.train.in_memory(), loaded.info
    assert data.images.shape == (3, 1, 5, 6) and data.classes == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 1] and int(data.images[2].float().mean()) == 200
    assert not info["cache_hit"] and Path(info["cache"]).is_file()
    assert Path(info["cache"]).parent == cache_root / "folders"

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(folder, "_decode", no_decoding)
    monkeypatch.setattr(folder, "_probe", no_decoding)
    loaded = folder.load_folder(root, cache_root=cache_root)
    again, info = loaded.train.in_memory(), loaded.info
    assert info["cache_hit"] and torch.equal(again.images, data.images)
    assert torch.equal(again.labels, data.labels) and again.classes == ["cat", "dog"]
    save_image(root / "dog" / "d.png", (6, 5))  # a new file invalidates the cache
    with pytest.raises(AssertionError, match="decoded again"):
        folder.load_folder(root, cache_root=cache_root)


def test_folder_flat_resize_and_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "cache"))
    root = tmp_path / "flat"
    save_image(root / "a.png", (10, 10))
    save_image(root / "b.bmp", (20, 12), mode="RGB")
    with pytest.raises(DataError, match=r"b\.bmp: size 20x12 differs .*image_size"):
        load_data("folder", root)
    splits = load_data("folder", root, image_size=8, val_fraction=0.5)
    assert splits.test is None and splits.train.labels is None
    assert splits.train.images.shape == (1, 3, 8, 8) and splits.info["sizes"]["test"] is None
    assert (tmp_path / "cache" / "folders").is_dir()
    json.dumps(splits.info)
    gray = folder.load_folder(root, image_size=4, channels=1).train
    assert gray.images.shape == (2, 1, 4, 4)


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "class_without_images").mkdir(parents=True)
    with pytest.raises(DataError, match="empty: no images"):
        folder.load_folder(empty, cache_root=tmp_path)
    bad = tmp_path / "bad"
    save_image(bad / "ok" / "fine.png", (4, 4))
    (bad / "ok" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        folder.load_folder(bad, cache_root=tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        folder.load_folder(tmp_path / "nowhere", cache_root=tmp_path)


# --- digits, synthetic, registry -----------------------------------------------------------


def test_digits() -> None:
    loaded = load_digits()
    train, test = loaded.train, loaded.test
    assert (len(train), len(test)) == (1438, 359) and train.images.shape[1:] == (1, 8, 8)
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    assert torch.equal(load_digits().test.labels, test.labels)
    splits = load_data("digits")
    assert len(splits.train) + len(splits.val) == 1438 and len(splits.test) == 359
    assert load_data("digits", image_size=16).train.images.shape[1:] == (1, 16, 16)


def test_synthetic_is_class_structured() -> None:
    splits = load_data("synthetic", synthetic_shape=(3, 32, 32), synthetic_size=512)
    assert splits.train.images.shape[1:] == (3, 32, 32) and splits.train.images.dtype == torch.uint8
    x, y = splits.train.images.flatten(1).float(), splits.train.labels
    centroids = torch.stack([x[y == k].mean(0) for k in range(10)])
    test_x = splits.test.images.flatten(1).float()
    accuracy = (torch.cdist(test_x, centroids).argmin(1) == splits.test.labels).float().mean()
    assert accuracy > 0.8


def test_registry_errors() -> None:
    assert DATASETS[:2] == ("digits", "mnist") and "fashion-mnist" in DATASETS
    with pytest.raises(ConfigError, match="unknown dataset 'imagenet'; valid names: digits, mnist"):
        load_data("imagenet")
    with pytest.raises(ConfigError, match="'folder' needs data_dir"):
        load_data("folder")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_data("digits", val_fraction=1.0)


# --- downloads from a local HTTP server ----------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """Serve ``tmp_path / "srv"`` on 127.0.0.1; yields (base URL, served folder)."""
    served = tmp_path / "srv"
    served.mkdir()
    handler = partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_falls_back_to_next_mirror(server: tuple[str, Path], tmp_path: Path) -> None:
    base, served = server
    payload = os.urandom(3000)
    (served / "ok").mkdir()
    (served / "ok" / "file.bin").write_bytes(payload)
    dest = tmp_path / "out" / "file.bin"
    urls = [f"{base}/missing/file.bin", f"{base}/ok/file.bin"]
    assert download(urls, dest, md5(payload)) == dest
    assert dest.read_bytes() == payload and os.listdir(dest.parent) == ["file.bin"]


def test_download_wrong_checksum(server: tuple[str, Path], tmp_path: Path) -> None:
    base, served = server
    (served / "file.bin").write_bytes(b"tampered")
    dest = tmp_path / "out" / "file.bin"
    urls = [f"{base}/missing/file.bin", f"{base}/file.bin"]
    with pytest.raises(DataError) as err:
        download(urls, dest, {"0" * 32}, timeout=5)
    message = str(err.value)
    assert message.startswith("could not download file.bin: ") and "\n" not in message
    assert "missing/file.bin: HTTP 404" in message and f"{base}/file.bin: md5 " in message
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_load_mnist_downloads(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, served = server
    contents = write_mnist(served / "mnist")
    checksums = {
        stem: (md5((served / "mnist" / f"{stem}.gz").read_bytes()), md5(raw))
        for stem, raw in contents.items()
    }
    monkeypatch.setattr(mnist, "CHECKSUMS", checksums)
    monkeypatch.setattr(mnist, "MIRRORS", [f"{base}/nothing-here/", f"{base}/mnist/"])
    monkeypatch.setenv("CVAE_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="pass --download"):
        load_mnist(None, download=False)
    loaded = load_mnist(None, download=True)
    train, test, info = loaded.train, loaded.test, loaded.info
    assert (len(train), len(test)) == (12, 6) and len(info["downloaded"]) == 4
    cached = tmp_path / "cache" / "mnist"
    assert sorted(os.listdir(cached)) == sorted(f"{stem}.gz" for stem in STEMS)
    loaded = load_mnist(None, download=False)  # now served from the cache
    again, info = loaded.train.in_memory(), loaded.info
    assert torch.equal(again.images, train.images) and info["downloaded"] == []
