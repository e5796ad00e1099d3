"""Python API (the README snippet) and `cvae eval` on digits; real MNIST trainings (integration)."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from learning import mse_ratio

import cvae
from cvae.cli import main

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


PROBES = {"logreg_paper", "logreg_standard", "knn_weighted_cosine", "knn_uniform_euclidean"}
PROBES |= {
    "knn_weighted_cosine_k20",
    "perceptron_probe",
    "linear_adam",
}  # linear_sgd runs only for the AAVAE family
COLLAPSE = {"kl", "mutual_information_batch", "mutual_information_full", "marginal_kl"}
COLLAPSE |= {"active_units", "recon_nll", "nll_iwae"}
OTHERS = {"fid_domain", "fid_inception", "view_cosine_within", "view_cosine_between"}
FIGURES = ("reconstructions.png", "samples.png", "curves.png", "kl_per_dim.png")
FIGURES += ("interpolations.png", "view_similarity.png")


def train_digits_cvae(run: Path, epochs: int, channels: str) -> None:
    argv = ["train", "--method", "cvae", "--dataset", "digits", "--epochs", str(epochs)]
    argv += ["--lr", "1e-3", "--batch-size", "64", "--set", f"model.channels={channels}"]
    assert (
        main([*argv, "--no-progress", "--set", "train.tensorboard=false", "--out", str(run)]) == 0
    )


def check_eval_metrics(run: Path, iwae_k: int, n_fake: int, figures=FIGURES) -> dict:
    """Every default metric is there with its protocol and in its range; figures are written."""
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert set(m) == PROBES | COLLAPSE | OTHERS
    assert m["fid_domain"]["value"] > 0 and m["fid_domain"]["protocol"]["n_fake"] == n_fake
    assert m["fid_inception"]["value"] is None
    assert "cvae[fid]" in m["fid_inception"]["unavailable"]
    assert m["mutual_information_batch"]["value"] <= math.log(256) + 0.1
    assert m["marginal_kl"]["value"] == pytest.approx(
        m["kl"]["value"] - m["mutual_information_batch"]["value"]
    )
    iwae = m["nll_iwae"]
    assert iwae["protocol"]["k"] == iwae_k and math.isfinite(iwae["value"])
    # a continuous (Gaussian) likelihood is a density: its NLL may be negative; bits follow nats
    assert iwae["bits_per_dim"] * iwae["value"] >= 0
    assert all(m[name]["seconds"] >= 0 for name in PROBES)
    assert all(0 <= m[name]["value"] <= 1 for name in PROBES)
    assert 0 <= m["active_units"]["value"] <= 10 and m["kl"]["value"] > 0
    assert m["logreg_paper"]["protocol"]["random_state"] == 42
    assert m["logreg_standard"]["protocol"]["n_train"] == 1294  # every digits training image
    assert m["knn_weighted_cosine"]["protocol"]["k"] <= 200
    assert m["knn_weighted_cosine"]["protocol"]["temperature"] == 0.1
    for fig in figures:
        assert (run / "figures" / fig).stat().st_size > 1000
    return m


def test_eval_on_digits_writes_metrics_with_protocols(tmp_path, capsys):
    """Every metric, protocol and figure of the default eval, at small sizes (IWAE k, linear
    epochs, FID samples; the t-SNE figure: test_plots.py): the code paths of the full default
    eval (integration)."""
    run = tmp_path / "run"
    train_digits_cvae(run, epochs=1, channels="[8,16]")
    argv = ["eval", str(run), "--embedding", "none", "--iwae-k", "5", "--iwae-n", "50"]
    assert main([*argv, "--linear-epochs", "2", "--fid-n", "100"]) == 0
    m = check_eval_metrics(run, iwae_k=5, n_fake=100)
    assert m["linear_adam"]["protocol"]["epochs"] == 2
    assert "logreg_paper" in capsys.readouterr().out


@pytest.mark.integration
def test_full_default_eval_on_digits(tmp_path, capsys):
    """15 epochs on digits, then `cvae eval` with every default (t-SNE for the embedding)."""
    run = tmp_path / "run"
    train_digits_cvae(run, epochs=15, channels="[32,64]")
    assert main(["eval", str(run), "--embedding", "tsne"]) == 0
    m = check_eval_metrics(run, iwae_k=100, n_fake=359, figures=(*FIGURES, "tsne.png"))
    # large effects of training (not quality bars): the posterior depends on the image, views of
    # one image agree more than views of two, and reconstructions beat the untrained network's
    assert m["mutual_information_batch"]["value"] > 0 and m["active_units"]["value"] > 0
    assert m["view_cosine_within"]["value"] > m["view_cosine_between"]["value"]
    assert mse_ratio(cvae.load(run), cvae.load_data("digits").test.images) < 0.5
    assert "logreg_paper" in capsys.readouterr().out


@pytest.mark.integration
def test_mnist_paper_preset_one_epoch_learns(tmp_path, mnist):
    """One epoch of the paper's MNIST CVAE (lr raised to 1e-3) on all 54k training images: the
    held-out reconstruction error is far below that of the same network built untrained
    (measured ratio 0.32)."""
    cfg = cvae.load_preset("cvae-mnist-paper")
    cfg.train.epochs, cfg.train.lr, cfg.train.threads = 1, 1e-3, 2
    cfg.train.progress = cfg.train.tensorboard = False
    few_val = cvae.data.DataSplits("mnist", mnist.train, mnist.val.subset(torch.arange(1000)), None)
    rows = cvae.train(cfg, tmp_path / "run", data=few_val).history
    assert len(rows) == 1
    ratio = mse_ratio(cvae.load(tmp_path / "run"), mnist.test.images[:2000])
    assert ratio < 0.5, ratio
