"""Configs written before the per-term sub-configs: old ``config.yaml`` files (fixtures written
by that code: resolved presets, and the config of a one-epoch crvae run on digits) load under the
new names, build, evaluate and resume. No weights are committed: the old run's checkpoint is
rebuilt in the test in the old format (old-format config inside, no buffers added since)."""

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import cvae
from cvae import config as C
from cvae.cli import main
from cvae.methods import build_method, resolve
from cvae.training.checkpoint import load_checkpoint
from cvae.training.trainer import CHECKPOINT

FIXTURES = Path(__file__).parent / "fixtures"
OLD_CONFIGS = sorted((FIXTURES / "old_configs").glob("*.yaml"))
OLD_RUN_CONFIG = FIXTURES / "old_run_crvae_digits" / "config.yaml"
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
ADDED_SINCE = (
    "loss.terms.ntxent.features",
    "loss.terms.mmd.",
    "loss.terms.infomax.",
    "loss.terms.infonce.epoch_momentum",
    "model.module",
    "train.loggers",
    "data.test_fraction",
    "data.memmap",
    "data.cache_dir",
)
"""Keys of terms and options added after the fixtures were written (their defaults apply)."""


def _without_added(cfg: C.RunConfig) -> dict:
    return {k: v for k, v in C.flatten(cfg.to_dict()).items() if not k.startswith(ADDED_SINCE)}


def _shape(cfg: C.RunConfig) -> tuple[int, int, int]:
    if cfg.data.image_size:  # btvae-mnist: 64x64, replicated to 3 channels
        return (cfg.data.channels or 1, cfg.data.image_size, cfg.data.image_size)
    return SHAPES[cfg.data.dataset]


def _old_flat(path: Path) -> dict:
    """The old format's keys: ``section.field`` (its sections were one level deep)."""
    flat = {}
    for name, value in yaml.safe_load(path.read_text()).items():
        if isinstance(value, dict):
            flat.update({f"{name}.{k}": v for k, v in value.items()})
        else:
            flat[name] = value
    return flat


def test_fixtures_are_in_the_old_format():
    assert len(OLD_CONFIGS) == 5
    for path in [*OLD_CONFIGS, OLD_RUN_CONFIG]:
        assert set(C.OLD_KEYS) <= set(_old_flat(path)), path.name


@pytest.mark.parametrize("path", OLD_CONFIGS, ids=lambda p: p.stem)
def test_old_config_loads_with_the_same_values_under_the_new_names(path):
    old = _old_flat(path)
    cfg = C.from_dict(C.load_yaml(path))
    new = _without_added(cfg)
    for key, value in old.items():
        assert new[C.OLD_KEYS.get(key, key)] == value, key
    assert set(new) == {C.OLD_KEYS.get(k, k) for k in old}  # nothing lost, nothing new
    shape = _shape(cfg)
    cfg = resolve(cfg, shape)  # it was resolved: resolving changes only the added keys
    assert _without_added(cfg) == new
    # today's preset resolves to the same config the old code wrote
    assert resolve(C.load_preset(path.stem), shape) == cfg
    method = build_method(cfg, shape)
    assert set(method.terms) == {t for t in C.TERM_NAMES if cfg.loss.terms[t].weight}


def test_load_yaml_migrates_for_readers_of_the_raw_mapping():
    data = C.load_yaml(OLD_CONFIGS[0])
    assert "beta" not in data["loss"] and "weight" in data["loss"]["terms"]["kl"]


ADDED_BUFFERS = ("epoch_steps",)
"""State-dict entries added after the old format (their loaders default them)."""


def old_run(run: Path) -> Path:
    """A one-epoch run as the old code left it: trained from the old config, then its
    ``config.yaml`` and the checkpoint's config replaced by the old format and the buffers added
    since removed from the checkpoint."""
    argv = ["train", "--config", str(OLD_RUN_CONFIG), "--epochs", "1", "--threads", "1"]
    assert main([*argv, "--out", str(run)]) == 0
    ckpt = load_checkpoint(run / CHECKPOINT)
    ckpt["config"] = yaml.safe_load(OLD_RUN_CONFIG.read_text())
    ckpt["method"] = {k: v for k, v in ckpt["method"].items() if not k.endswith(ADDED_BUFFERS)}
    torch.save(ckpt, run / CHECKPOINT)
    shutil.copy(OLD_RUN_CONFIG, run / "config.yaml")
    return run


def test_old_run_directory_loads_evaluates_and_resumes(tmp_path):
    run = old_run(tmp_path / "old")
    stored = load_checkpoint(run / CHECKPOINT)["config"]
    assert "beta" in stored["loss"]  # the checkpoint's own copy is in the old format too
    loaded = cvae.load(run)
    assert loaded.config.loss.terms.kl.weight == stored["loss"]["beta"] == 0.5
    assert loaded.config.loss.terms.infonce.queue_size == 64
    images = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert loaded.encode(images)[0].shape == (4, 4)

    flags = ["--embedding", "none", "--linear-epochs", "1", "--fid-n", "0", "--knn-k", "5"]
    assert main(["eval", str(run), *flags]) == 0
    assert json.loads((run / "metrics.json").read_text())["metrics"]

    assert main(["train", "--resume", str(run), "--epochs", "2", "--threads", "1"]) == 0
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 2
    assert "terms" in yaml.safe_load((run / "config.yaml").read_text())["loss"]

    # the resumed run equals one trained for two epochs from the start by today's code
    fresh = tmp_path / "fresh"
    assert main(["train", "--config", str(OLD_RUN_CONFIG), "--epochs", "2",
                 "--threads", "1", "--out", str(fresh)]) == 0  # fmt: skip
    a = load_checkpoint(run / CHECKPOINT)["method"]
    b = load_checkpoint(fresh / CHECKPOINT)["method"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
