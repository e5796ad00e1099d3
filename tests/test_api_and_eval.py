"""Python API (the README snippet) and `cvae eval` on real MNIST and on digits."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

import cvae
from cvae.cli import main
from cvae.evaluation.evaluate import evaluate

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    """The README's Python API block runs as written (in a temp dir)."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no python block"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    run = namespace["run"]
    assert isinstance(run, cvae.Run)
    assert namespace["mu"].shape[1] == run.model.latent_dim


def test_api_operations_shapes_and_ranges(tmp_path):
    cfg = cvae.RunConfig(method="vae")
    cfg.data.dataset = "synthetic"
    cfg.data.synthetic_shape = [3, 16, 16]
    cfg.data.synthetic_size = 256
    cfg.model.channels = [8, 16]
    cfg.train.epochs = 1
    cfg.train.progress = cfg.train.tensorboard = False
    cvae.train(cfg, tmp_path / "run")
    run = cvae.load(tmp_path / "run")
    assert run.value_range == "pm1" and run.image_shape == (3, 16, 16)
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    mu, logvar = run.encode(images)
    assert mu.shape == logvar.shape == (5, 10)
    x = run.reconstruct(images)
    assert x.shape == images.shape and x.min() >= -1 and x.max() <= 1
    unit = run.to_unit(run.sample(4, seed=1))
    assert unit.min() >= 0 and unit.max() <= 1
    assert torch.equal(run.sample(4, seed=1), run.sample(4, seed=1))
    path = run.interpolate(images[:2], images[2:4], steps=6)
    assert path.shape == (2, 6, 3, 16, 16)
    torch.testing.assert_close(path[:, 0], run.decode(mu[:2]))
    with pytest.raises(cvae.errors.CvaeError, match="expected images of shape"):
        run.encode(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_eval_on_digits_writes_metrics_with_protocols(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--method",
                "cvae",
                "--dataset",
                "digits",
                "--epochs",
                "15",
                "--lr",
                "1e-3",
                "--batch-size",
                "64",
                "--set",
                "model.channels=[32,64]",
                "--no-progress",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert main(["eval", str(run), "--embedding", "tsne"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    m = metrics["metrics"]
    probes = {"logreg_paper", "logreg_standard", "knn_weighted_cosine", "knn_uniform_euclidean"}
    probes |= {"perceptron_probe"}
    probes |= {"linear_adam"}  # linear_sgd runs only for the AAVAE family by default
    collapse = {"kl", "mutual_information_batch", "mutual_information_full", "marginal_kl"}
    collapse |= {"active_units", "recon_nll", "nll_iwae"}
    others = {"fid_domain", "fid_inception", "view_cosine_within", "view_cosine_between"}
    assert set(m) == probes | collapse | others
    assert m["fid_domain"]["value"] > 0 and m["fid_domain"]["protocol"]["n_fake"] == 359
    assert m["fid_inception"]["value"] is None
    assert "cvae[fid]" in m["fid_inception"]["unavailable"]
    assert m["view_cosine_within"]["value"] > m["view_cosine_between"]["value"]
    assert 0 < m["mutual_information_batch"]["value"] <= math.log(256) + 0.1
    assert m["marginal_kl"]["value"] == pytest.approx(
        m["kl"]["value"] - m["mutual_information_batch"]["value"]
    )
    assert m["nll_iwae"]["protocol"]["k"] == 100 and m["nll_iwae"]["bits_per_dim"] > 0
    assert all(m[name]["seconds"] >= 0 for name in probes)
    assert 0 < m["active_units"]["value"] <= 10 and m["kl"]["value"] > 0
    assert m["logreg_paper"]["protocol"]["random_state"] == 42
    assert m["knn_weighted_cosine"]["protocol"]["k"] <= 200
    assert m["knn_weighted_cosine"]["protocol"]["temperature"] == 0.1
    assert all(0.5 < m[p]["value"] <= 1.0 for p in probes)  # trained digits latents separate
    figures = ("reconstructions.png", "samples.png", "tsne.png", "curves.png", "kl_per_dim.png")
    for fig in (*figures, "interpolations.png", "view_similarity.png"):
        assert (run / "figures" / fig).stat().st_size > 1000
    assert "logreg_paper" in capsys.readouterr().out


def test_mnist_short_training_beats_untrained_probe(tmp_path, mnist_dir):
    """One epoch of the paper's MNIST CVAE (lr raised to 1e-3) on real MNIST beats an untrained
    encoder (same architecture, one step at lr 1e-12) on the standard logistic probe."""
    cfg = cvae.load_preset("cvae-mnist-paper")
    cfg.data.data_dir = str(mnist_dir)
    cfg.train.epochs = 1
    cfg.train.lr = 1e-3
    cfg.train.threads = 2
    cfg.train.progress = cfg.train.tensorboard = False
    untrained = tmp_path / "untrained"
    trained = tmp_path / "trained"
    data = cvae.training.trainer.data_from_config(cfg)
    cvae.train(cfg, trained, data=data)
    few = cvae.data.DataSplits(data.name, data.train.subset(torch.arange(128)), data.val, data.test)
    cfg_u = cvae.load_preset("cvae-mnist-paper")
    cfg_u.data.data_dir, cfg_u.train.epochs = str(mnist_dir), 1
    cfg_u.train.progress = cfg_u.train.tensorboard = False
    cfg_u.train.lr = 1e-12
    cvae.train(cfg_u, untrained, data=few)
    acc = {}
    for name, run in (("trained", trained), ("untrained", untrained)):
        res = evaluate(run, embedding="none", data=data, iwae_k=0, linear_epochs=0, fid_n=0)
        acc[name] = res["metrics"]["logreg_standard"]["value"]
        assert res["metrics"]["logreg_standard"]["protocol"]["n_train"] == len(data.train)
    # measured: ~0.70 trained vs ~0.38 untrained
    assert acc["trained"] > 0.6 and acc["trained"] > acc["untrained"] + 0.15, acc
