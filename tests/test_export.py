"""`cvae export` (portable weights with a model card) and `best.pt` kept by validation loss."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from badinput import expect_refusal, train_tiny

import cvae
from cvae.cli import main
from cvae.training.checkpoint import Checkpointer, load_checkpoint

THREE_EPOCHS = ("--epochs", "3")


@pytest.fixture(scope="module")
def run3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-epoch tiny digits run (read-only for the tests)."""
    return train_tiny(tmp_path_factory.mktemp("run3"), *THREE_EPOCHS)


def _val_losses(run: Path) -> list[float]:
    with (run / "metrics.csv").open() as f:
        return [float(row["val_loss"]) for row in csv.DictReader(f)]


def test_export_round_trip(run3: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(run3), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.yaml", "meta.json", "model.safetensors"
    ]  # fmt: skip
    a, b = cvae.load(run3), cvae.load(out)
    assert b.epoch == a.epoch == 3 and b.image_shape == a.image_shape
    assert b.config.to_dict() == a.config.to_dict()
    images = torch.randint(0, 256, (16, *a.image_shape), dtype=torch.uint8)
    for x, y in zip(a.encode(images), b.encode(images), strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a.sample(4, seed=1), b.sample(4, seed=1))
    assert b.dataset_name == "digits"
    meta = json.loads((out / "meta.json").read_text())
    assert meta["image_shape"] == [1, 8, 8] and meta["cvae_version"] == cvae.__version__
    assert meta["data"]["dataset"] == "digits"


def test_model_card_front_matter(run3: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(run3), "--out", str(out), "--checkpoint", "best"]) == 0
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    method = cvae.load(run3).config.method
    assert front["library_name"] == "cvae"
    assert method in front["tags"] and front["datasets"] == ["digits"]
    assert front["license"] == "mit"
    assert f"# {method} on digits" in text
    assert f"cvae export {run3} --out EXPORT_DIR --checkpoint best" in text
    assert json.loads((out / "meta.json").read_text())["checkpoint"] == "best"


def test_model_card_lists_metrics_with_protocols(run3: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(run3, tmp_path / "run", ignore=lambda *_: ["metrics.json"]))
    protocol = {"name": "knn", "definition": "k-NN accuracy | cosine", "k": 5}
    metrics = {"checkpoint_epoch": 3, "metrics": {"knn": {"value": 0.5, "protocol": protocol}}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert main(["export", str(run), "--out", str(tmp_path / "export")]) == 0
    text = (tmp_path / "export" / "README.md").read_text()
    assert "| knn | 0.5 | definition: k-NN accuracy \\| cosine; k: 5 |" in text
    assert f"cvae eval {run}" in text


def test_export_refusals(run3: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("keep")
    expect_refusal(capsys, ["export", str(run3), "--out", str(full)], code=2,
                   needle="not empty", root=tmp_path)  # fmt: skip
    empty_run = tmp_path / "norun"
    empty_run.mkdir()
    expect_refusal(capsys, ["export", str(empty_run), "--out", str(tmp_path / "o")], code=2,
                   needle="checkpoint not found", root=tmp_path)  # fmt: skip
    assert not (tmp_path / "o").exists()
    bad = Path(shutil.copytree(run3, tmp_path / "nan"))
    ckpt = load_checkpoint(bad / "checkpoints" / "last.pt")
    first = next(k for k, v in ckpt["method"].items() if v.is_floating_point())
    ckpt["method"][first].fill_(float("nan"))
    torch.save(ckpt, bad / "checkpoints" / "last.pt")
    expect_refusal(capsys, ["export", str(bad), "--out", str(tmp_path / "o")], code=2,
                   needle="NaN", root=tmp_path)  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_best_is_the_lowest_validation_loss(run3: Path) -> None:
    losses = _val_losses(run3)
    assert len(losses) == 3
    best = load_checkpoint(run3 / "checkpoints" / "best.pt")
    last = load_checkpoint(run3 / "checkpoints" / "last.pt")
    lowest = min(range(3), key=losses.__getitem__)
    assert best["best_epoch"] == best["epoch"] == lowest + 1
    assert best["best_val_loss"] == pytest.approx(losses[lowest], rel=1e-12)
    assert last["best_epoch"] == best["best_epoch"]  # carried for an exact resume
    run = cvae.load(run3, checkpoint="best")
    assert run.epoch == lowest + 1


def test_save_best_keeps_the_lowest(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    saver = Checkpointer(tmp_path / "last.pt", net, opt, sched, {}, [1, 2, 2], writer=True)
    assert [saver.save_best(e, v) for e, v in [(1, 0.5), (2, 0.7), (3, 0.4), (4, 0.4)]] == [
        True, False, True, False
    ]  # fmt: skip
    best = load_checkpoint(tmp_path / "best.pt")
    assert (best["epoch"], best["best_epoch"], best["best_val_loss"]) == (3, 3, 0.4)
    saver.save(4, 0, None, {})
    resumed = Checkpointer(tmp_path / "last.pt", net, opt, sched, {}, [1, 2, 2], writer=True)
    resumed.restore(load_checkpoint(tmp_path / "last.pt"))
    assert not resumed.save_best(5, 0.45)  # the best so far survives the resume
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3


def test_resumed_run_has_the_same_best(run3: Path, tmp_path: Path) -> None:
    part = train_tiny(tmp_path / "a", "--epochs", "2")
    assert main(["train", "--resume", str(part), "--epochs", "3", "--no-progress"]) == 0
    a = load_checkpoint(run3 / "checkpoints" / "best.pt")
    b = load_checkpoint(part / "checkpoints" / "best.pt")
    assert (a["best_epoch"], a["best_val_loss"]) == (b["best_epoch"], b["best_val_loss"])
    assert a["method"].keys() == b["method"].keys()
    assert all(torch.equal(a["method"][k], b["method"][k]) for k in a["method"])
