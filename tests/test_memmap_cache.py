"""The uint8 .npy cache and its memory-mapped views: gathering, the load_data switch, and
training that is the same from memory and from the memmap."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cvae
from cvae.api import dataset_sha256
from cvae.config import RunConfig, from_dict, from_plain
from cvae.data import load_data
from cvae.data.memmap import MemmapImages, read_cache, write_cache


def _cache(tmp_path: Path, n: int = 10, shape: tuple[int, int, int] = (1, 2, 3)) -> np.ndarray:
    """A cache of ``n`` random images at ``tmp_path/c.npy``; returns the images written."""
    x = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    write_cache(tmp_path / "c.npy", shape, n, iter(x), {"count": n})
    return x


def test_gather_returns_the_rows_asked_for(tmp_path: Path) -> None:
    x = _cache(tmp_path)
    found = read_cache(tmp_path / "c.npy")
    assert found is not None
    images, meta = found
    assert meta == {"count": 10} and images.shape == (10, 1, 2, 3) and len(images) == 10
    index = torch.tensor([7, 2, 9, 2, 0])  # unsorted, repeated
    assert torch.equal(images[index], torch.from_numpy(x[index.numpy()]))
    assert torch.equal(images[3], torch.from_numpy(x[3]))
    assert images[np.int64(-1)].shape == (1, 2, 3)
    assert torch.equal(images[2:5], torch.from_numpy(x[2:5]))
    view = images.take(torch.tensor([8, 1, 4]))  # lazy: rows of rows
    assert len(view) == 3 and torch.equal(view[torch.tensor([2, 0])], torch.from_numpy(x[[4, 8]]))
    assert torch.equal(torch.cat(list(view.split(2))), view.load())
    rgb = view.expand_to(3)
    assert rgb.shape == (3, 3, 2, 3) and torch.equal(rgb[0][2], torch.from_numpy(x[8, 0]))
    assert view.to("cpu")[0].device == torch.device("cpu")
    copied = pickle.loads(pickle.dumps(view))  # reopens the file by its path
    assert copied.file is not view.file and torch.equal(copied.load(), view.load())
    with pytest.raises(TypeError, match="1-D index"):
        images[torch.tensor([[0, 1]])]


def test_incomplete_or_foreign_caches_are_not_trusted(tmp_path: Path) -> None:
    _cache(tmp_path)
    meta = tmp_path / "c.json"
    meta.write_text('{"count": 11}')  # does not describe the array
    assert read_cache(tmp_path / "c.npy") is None
    meta.unlink()  # the JSON is written last: without it the cache is incomplete
    assert read_cache(tmp_path / "c.npy") is None
    _cache(tmp_path)
    with open(tmp_path / "c.npy", "r+b") as f:  # cut short
        f.truncate(f.seek(0, 2) - 1)
    assert read_cache(tmp_path / "c.npy") is None
    np.save(tmp_path / "f.npy", np.zeros((2, 3), np.float32))
    (tmp_path / "f.json").write_text('{"count": 2}')
    assert read_cache(tmp_path / "f.npy") is None
    assert not list(tmp_path.glob(".*part"))


def _folder(root: Path, n: int = 24) -> Path:
    """``n`` 8x8 RGB images in two class folders, each image its own colour."""
    for i in range(n):
        path = root / ("ab"[i % 2]) / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 10, 255 - i * 10, i)).save(path)
    return root


def _splits_equal(a: cvae.data.DataSplits, b: cvae.data.DataSplits) -> bool:
    pairs = [(a.train, b.train), (a.val, b.val), (a.test, b.test)]
    return all(
        torch.equal(x.in_memory().images, y.in_memory().images) and torch.equal(x.labels, y.labels)
        for x, y in pairs
    )


def test_load_data_maps_or_loads_the_same_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _folder(tmp_path / "pets")
    options = {"cache_dir": tmp_path / "cache", "val_fraction": 0.25}
    mapped = load_data("folder", root, memmap=True, **options)
    loaded = load_data("folder", root, memmap=False, **options)
    auto = load_data("folder", root, **options)  # small: in memory
    assert isinstance(mapped.train.images, MemmapImages) and mapped.info["memmap"].endswith(".npy")
    assert isinstance(loaded.train.images, torch.Tensor) and loaded.info["memmap"] is None
    assert isinstance(auto.train.images, torch.Tensor) and _splits_equal(mapped, loaded)
    monkeypatch.setattr("cvae.data.AUTO_BYTES", 0)  # every dataset is "large"
    assert isinstance(load_data("folder", root, **options).val.images, MemmapImages)
    assert len(list((tmp_path / "cache" / "folders").glob("*.npy"))) == 1  # decoded once


def test_datasets_loaded_in_memory_can_be_cached_too(tmp_path: Path) -> None:
    mapped = load_data("digits", memmap=True, cache_dir=tmp_path)
    assert isinstance(mapped.test.images, MemmapImages)
    assert _splits_equal(mapped, load_data("digits"))
    assert dataset_sha256(mapped.train) == dataset_sha256(mapped.train.in_memory())
    (path,) = (tmp_path / "memmap").glob("digits-*.npy")
    stamp = path.stat().st_mtime_ns
    assert load_data("digits", memmap=True, cache_dir=tmp_path).info["memmap"] == str(path)
    assert path.stat().st_mtime_ns == stamp  # the same content: the file is reused


def test_old_configs_load_and_memmap_is_a_switch() -> None:
    cfg = from_plain({"data": {"dataset": "folder", "val_fraction": 0.2}})  # a run saved before
    assert (cfg.data.memmap, cfg.data.test_fraction, cfg.data.cache_dir) == (None, 0.0, None)
    assert from_dict({"data": {"dataset": "folder"}}).data.test_fraction == 0.1  # a new config
    assert from_plain(RunConfig().to_dict()).data.test_fraction == 0.1
    assert from_plain({"data": {"memmap": True}}).data.memmap is True


def _losses(run: Path) -> list[str]:
    with open(run / "metrics.csv") as f:
        return [row["train_loss"] + row["val_loss"] for row in csv.DictReader(f)]


@pytest.mark.integration
def test_training_from_the_memmap_is_training_from_memory(tmp_path: Path) -> None:
    root = _folder(tmp_path / "pets")
    runs = []
    for use in (False, True):
        cfg = RunConfig(method="cvae")
        cfg.data.dataset, cfg.data.data_dir = "folder", str(root)
        cfg.data.memmap, cfg.data.cache_dir = use, str(tmp_path / "cache")
        cfg.model.channels = [4, 8]
        cfg.train.batch_size, cfg.train.epochs, cfg.train.threads = 6, 2, 1
        cfg.train.progress, cfg.train.tensorboard = False, False
        runs.append(tmp_path / f"run-{use}")
        cvae.train(cfg, runs[-1])
    assert _losses(runs[0]) == _losses(runs[1]) and len(_losses(runs[0])) == 2
