"""Data handed to ``cvae.train(data=...)`` keeps its provenance: the run records the fact and a
content hash, never claims a dataset it did not train on, and evaluation refuses other data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from badinput import expect_refusal

import cvae
from cvae.api import dataset_sha256, handed_over
from cvae.data import DataSplits, ImageDataset
from cvae.evaluation.evaluate import evaluate

FAST = {"embedding": "none", "iwae_k": 0, "fid_n": 0, "linear_epochs": 0, "run_linear_sgd": False}


def _config() -> cvae.RunConfig:
    cfg = cvae.RunConfig()
    cfg.data.dataset = "digits"
    cfg.model.channels = [8, 16]
    cfg.train.epochs, cfg.train.threads = 1, 1
    cfg.train.progress = cfg.train.tensorboard = False
    return cfg


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return cvae.load_data("digits")


def _custom(digits: DataSplits, n: int = 300) -> DataSplits:
    """Splits built by hand (no loader info): inverted digits."""
    train = ImageDataset(255 - digits.train.images[:n], digits.train.labels[:n])
    return DataSplits("my-digits", train, digits.val, digits.test)


def _run_files(run: Path) -> tuple[dict, dict]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    return config, json.loads((run / "data.json").read_text())


def test_handed_over_marks_data_not_made_by_the_loader(digits):
    cfg = _config()
    same_cfg, same = handed_over(cfg, digits)
    assert same_cfg.data.dataset == "digits" and same.info["dataset"] == "digits"
    assert same.info["handed_to_api"] is True
    assert same.info["sha256"]["train"] == dataset_sha256(digits.train)
    sub = DataSplits(digits.name, digits.train.subset(torch.arange(100)), digits.val, digits.test)
    sub.info = dict(digits.info)  # the loader's info copied onto a subset
    for data in (_custom(digits), sub):
        new_cfg, marked = handed_over(cfg, data)
        assert new_cfg.data.dataset == "in-memory" and cfg.data.dataset == "digits"
        assert marked.info["dataset"] == "in-memory" and "Python API" in marked.info["source"]
        assert marked.info["sizes"]["train"] == len(data.train)
        assert marked.info["sha256"]["train"] == dataset_sha256(data.train)


def test_dataset_sha256_sees_pixels_and_labels(digits):
    base = digits.test
    flipped = ImageDataset(base.images.clone(), base.labels.clone())
    flipped.images[0, 0, 0, 0] ^= 1
    relabelled = ImageDataset(base.images, (base.labels + 1) % 10)
    digests = {dataset_sha256(d) for d in (base, flipped, relabelled)}
    assert len(digests) == 3 and dataset_sha256(base) == dataset_sha256(
        base.subset(torch.arange(len(base)))
    )


def test_custom_data_run_needs_its_data_to_be_evaluated(capsys, tmp_path, digits):
    run = tmp_path / "run"
    custom = _custom(digits)
    cvae.train(_config(), run, data=custom)
    config, info = _run_files(run)
    assert config["data"]["dataset"] == "in-memory" and info["dataset"] == "in-memory"
    assert info["handed_to_api"] is True and info["name"] == "my-digits"
    assert info["sha256"]["train"] == dataset_sha256(custom.train)
    assert cvae.load(run).dataset_name == "my-digits"  # labels e.g. the FID classifier's cache

    expect_refusal(capsys, ["eval", str(run)], code=2, needle="data=", root=run)
    result = evaluate(run, data=custom, **FAST)
    assert result["dataset"] == "in-memory"
    assert result["data"]["train_sha256"] == info["sha256"]["train"]
    assert result["data"]["train_sha256_matches_training"] is True
    assert "evaluate(data=...)" in result["data"]["source"]
    other = evaluate(run, data=digits, **FAST)
    assert other["data"]["train_sha256_matches_training"] is False
    assert any("differs from the run's training data" in n for n in other["notes"])


def test_loader_data_keeps_dataset_and_is_checked_at_eval(capsys, tmp_path, digits):
    good, bad = tmp_path / "good", tmp_path / "bad"
    cvae.train(_config(), good, data=digits)
    config, info = _run_files(good)
    assert config["data"]["dataset"] == "digits" and info["handed_to_api"] is True
    result = evaluate(good, **FAST)  # from the config: the same splits, hash checked
    assert result["data"]["train_sha256_matches_training"] is True

    edited = DataSplits(
        digits.name,
        ImageDataset(255 - digits.train.images, digits.train.labels),
        digits.val,
        digits.test,
        digits.info,  # still claims to be the loader's digits
    )
    cvae.train(_config(), bad, data=edited)
    assert _run_files(bad)[0]["data"]["dataset"] == "digits"
    expect_refusal(capsys, ["eval", str(bad)], code=2, needle="other data", root=bad)
