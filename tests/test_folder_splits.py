"""Image folders as ImageFolder: train/ val/ test/ split folders, else seeded val and test
parts, each fallback said once on stderr and recorded in ``info["data_splits"]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from badinput import TINY_TRAIN, expect_refusal
from PIL import Image

import cvae
from cvae.config import RunConfig
from cvae.data import load_data
from cvae.errors import DataError
from cvae.evaluation.evaluate import evaluate

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train"


def _images(folder: Path, classes: dict[str, int], start: int = 0, fmt: str = "png") -> int:
    """``classes[name]`` 4x4 images in ``folder/name/``, each with its own grey level (from
    ``start``): the pixel value names the image. Returns the next free level."""
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for _ in range(count):
            Image.new("L", (4, 4), start).save(folder / name / f"{start:03d}.{fmt}")
            start += 1
    return start


def _ids(split: cvae.data.ImageDataset) -> list[int]:
    return split.in_memory().images[:, 0, 0, 0].tolist()


def _load(root: Path, tmp_path: Path, **options: object) -> cvae.data.DataSplits:
    return load_data("folder", root, cache_dir=tmp_path / "cache", **options)


def test_split_folders_are_the_splits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "pets"
    end = _images(root / "train", {"cat": 3, "dog": 2})
    end = _images(root / "val", {"cat": 1, "dog": 1}, end, fmt="jpg")
    _images(root / "test", {"cat": 2, "dog": 1}, end)
    splits = _load(root, tmp_path)
    assert _ids(splits.train) == [0, 1, 2, 3, 4] and splits.train.labels.tolist() == [0, 0, 0, 1, 1]
    assert splits.val.labels.tolist() == [0, 1] and len(splits.val) == 2
    assert _ids(splits.test) == [7, 8, 9] and splits.test.labels.tolist() == [0, 0, 1]
    assert splits.train.classes == splits.test.classes == ["cat", "dog"]
    record = splits.info["data_splits"]
    assert record == {"train": "train/", "val": "val/ folder", "test": "test/ folder",
                      "fallbacks": []}  # fmt: skip
    assert splits.info["split_folders"] == ["train", "val", "test"]
    assert capsys.readouterr().err == ""  # nothing to say


def test_missing_val_folder_is_a_seeded_part_of_train(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "pets"
    end = _images(root / "train", {"cat": 6, "dog": 4})
    _images(root / "test", {"cat": 1, "dog": 1}, end)
    splits = _load(root, tmp_path, val_fraction=0.2, split_seed=3)
    assert _ids(splits.test) == [10, 11] and len(splits.val) == 2 and len(splits.train) == 8
    assert sorted(_ids(splits.train) + _ids(splits.val)) == list(range(10))
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"cvae: data: {root} has no val/ folder: val = 2 images of the rest")
    assert "val_fraction 0.2, split_seed 3" in line
    record = splits.info["data_splits"]
    assert record["val"] == "seeded 0.2 of the rest of train/ (split_seed 3)"
    assert record["fallbacks"] == [line.removeprefix("cvae: data: ")]


def test_class_folders_get_seeded_val_and_test(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "pets"
    _images(root, {"cat": 10, "dog": 10})
    splits = _load(root, tmp_path, val_fraction=0.25, test_fraction=0.2)
    train, val, test = _ids(splits.train), _ids(splits.val), _ids(splits.test)
    assert (len(train), len(val), len(test)) == (12, 4, 4)
    assert sorted(train + val + test) == list(range(20))  # disjoint, nothing lost
    assert splits.test.labels.tolist() == [i // 10 for i in test]  # labels follow the images
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "has no test/ folder: test = 4 images held out" in lines[0]
    assert "has no val/ folder: val = 4 images" in lines[1]
    record = splits.info["data_splits"]
    assert record["test"].startswith("seeded 0.2 of the folder's images held out (split_seed 0")
    assert record["train"] == "the folder's images, less the seeded parts"
    again = _load(root, tmp_path, val_fraction=0.25, test_fraction=0.2)
    assert _ids(again.test) == test and _ids(again.val) == val  # seeded
    other = _load(root, tmp_path, val_fraction=0.25, test_fraction=0.2, split_seed=1)
    assert _ids(other.test) != test


def test_registry_datasets_record_their_splits_silently(capsys: pytest.CaptureFixture) -> None:
    record = load_data("digits").info["data_splits"]
    assert record["test"] == "official test split" and record["fallbacks"] == []
    assert record["val"] == "seeded 0.1 of the rest of the official train set (split_seed 0)"
    assert capsys.readouterr().err == ""


def test_split_folders_must_agree(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _images(root / "train", {"cat": 1, "dog": 1})
    _images(root / "test", {"cat": 1, "cow": 1})
    with pytest.raises(DataError, match=r"test: classes not in train/: cow; lacks train/'s class"):
        _load(root, tmp_path)
    _images(root / "test", {"dog": 1})
    _images(root / "extra", {"cat": 1})
    with pytest.raises(DataError, match=r"has a train/ folder and also 'extra'"):
        _load(root, tmp_path)


def test_cli_refuses_mismatched_split_folders_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "pets"
    _images(root / "train", {"cat": 1, "dog": 1})
    Image.new("L", (4, 4)).save(root / "train.png")  # not a class folder of train/
    (root / "val").mkdir()
    Image.new("L", (4, 4)).save(root / "val" / "flat.png")
    cache = f"data.cache_dir={tmp_path / 'c'}"
    argv = ["train", *TINY_TRAIN, "--dataset", "folder", "--data-dir", str(root),
            "--out", str(tmp_path / "run"), "--set", cache]  # fmt: skip
    expect_refusal(capsys, argv, code=2, needle="has a train/ folder and also 'train.png'",
                   root=tmp_path)  # fmt: skip
    (root / "train.png").unlink()
    expect_refusal(capsys, argv, code=2, needle="val: has no class folders (flat images), unlike",
                   root=tmp_path)  # fmt: skip


def _tiny_folder_run(root: Path, tmp_path: Path) -> Path:
    cfg = RunConfig(method="cvae")
    cfg.data.dataset, cfg.data.data_dir = "folder", str(root)
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.model.channels = [4, 8]
    cfg.train.batch_size, cfg.train.epochs, cfg.train.threads = 8, 1, 1
    cfg.train.progress, cfg.train.tensorboard = False, False
    cvae.train(cfg, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.integration
def test_eval_records_where_the_test_split_comes_from(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _images(root, {"cat": 20, "dog": 20})
    run = _tiny_folder_run(root, tmp_path)
    assert json.loads((run / "data.json").read_text())["sizes"] == {
        "train": 32, "val": 4, "test": 4}  # fmt: skip
    metrics = evaluate(run, embedding="none", iwae_k=0, linear_epochs=0, fid_n=0)
    assert metrics["eval_split"] == {"name": "test", "n": 4}
    record = metrics["data"]["data_splits"]
    assert record["test"].startswith("seeded 0.1 of the folder's images held out")
    assert len(record["fallbacks"]) == 2
    assert not any("no test split" in note for note in metrics["notes"])
    no_test = _load(root, tmp_path, test_fraction=0.0)  # as a folder run before test_fraction
    metrics = evaluate(run, data=no_test, embedding="none", iwae_k=0, linear_epochs=0, fid_n=0)
    assert metrics["eval_split"] == {"name": "val", "n": 4}
    assert any(note.startswith("no test split: the evaluation split is val (4 images)")
               for note in metrics["notes"])  # fmt: skip


@pytest.mark.integration
@pytest.mark.skipif(not CIFAR.is_dir(), reason=f"{CIFAR} not found")
def test_cifar10_train_folder_holds_out_a_seeded_test_split(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The CIFAR-10 JPEG folders hold the official train set only: the test split is the seeded
    held-out 10% (5000 images), not the official test set."""
    splits = _load(CIFAR, tmp_path)
    sizes = splits.info["sizes"]
    assert sizes == {"train": 40500, "val": 4500, "test": 5000}
    assert splits.train.shape == (3, 32, 32) and len(splits.train.classes) == 10
    assert splits.info["split_folders"] == [] and not splits.info["cache_hit"]
    counts = torch.bincount(splits.test.labels, minlength=10)
    assert int(counts.sum()) == 5000 and int(counts.min()) > 400  # a random draw of all classes
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and "test = 5000 images held out" in lines[0]
    assert _load(CIFAR, tmp_path).info["cache_hit"]
