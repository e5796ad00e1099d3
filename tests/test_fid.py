"""FID: the Fréchet distance against scipy and closed forms, the torchmetrics plumbing, the domain
classifier FID on real MNIST, and the Inception FID's unavailable path."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import cvae
from cvae.data import DataSplits
from cvae.evaluation import fid
from cvae.evaluation.fid import (
    DomainFeatures,
    classifier_accuracy,
    domain_classifier,
    fid_metrics,
    frechet_distance,
    inception_unavailable,
    prior_samples_uint8,
    to_uint8,
    torchmetrics_fid,
)

N_TRAIN = 4000  # classifier training subset: 2 epochs take about a second on one core


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    """The textbook formula with scipy's general matrix square root (pytorch-fid style)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _random_spd(rng: np.random.Generator, f: int) -> np.ndarray:
    a = rng.normal(size=(f, f))
    return a @ a.T + 0.1 * np.eye(f)


def test_frechet_matches_scipy_sqrtm_on_random_gaussians():
    rng = np.random.default_rng(0)
    for f in (1, 3, 8):
        mu1, mu2 = rng.normal(size=f), rng.normal(size=f)
        s1, s2 = _random_spd(rng, f), _random_spd(rng, f)
        expected = _scipy_fid(mu1, s1, mu2, s2)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        # torch float32 inputs are promoted to float64 before any arithmetic
        got = frechet_distance(*(torch.tensor(a, dtype=torch.float32) for a in (mu1, s1, mu2, s2)))
        expected32 = _scipy_fid(
            *(a.astype(np.float32).astype(np.float64) for a in (mu1, s1, mu2, s2))
        )
        assert got == pytest.approx(expected32, rel=1e-9, abs=1e-9)


def test_frechet_closed_forms():
    # 1-D: N(0, 1) vs N(1, 4): (0 - 1)^2 + (1 - 2)^2 = 2
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)
    # diagonal: |mu1 - mu2|^2 + sum_j (sqrt(a_j) - sqrt(b_j))^2, including a singular covariance
    a, b = np.array([1.0, 0.0, 2.25, 9.0]), np.array([4.0, 9.0, 0.25, 9.0])
    mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
    expected = 1 + 4 + (1 - 2) ** 2 + (0 - 3) ** 2 + (1.5 - 0.5) ** 2  # = 16
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, abs=1e-9)
    # identical Gaussians: 0
    rng = np.random.default_rng(1)
    s = _random_spd(rng, 6)
    assert frechet_distance(np.zeros(6), s, np.zeros(6), s) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="expected mu"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))


class _Flatten(nn.Module):
    """uint8 images -> their pixel values as features, so the statistics are checkable by hand."""

    num_features = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).double()


def test_torchmetrics_fid_uses_module_features_and_both_implementations_agree():
    gen = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (300, 1, 2, 2), generator=gen, dtype=torch.uint8)
    fake = (real.double() * 0.5 + 40).to(torch.uint8)
    res = torchmetrics_fid(_Flatten(), real, fake, batch_size=64)
    r, f = real.flatten(1).double().numpy(), fake.flatten(1).double().numpy()
    expected = _scipy_fid(r.mean(0), np.cov(r.T), f.mean(0), np.cov(f.T))
    assert res["feature_dim"] == 4
    assert res["value"] == pytest.approx(expected, rel=1e-6)
    assert res["value_torchmetrics"] == pytest.approx(expected, rel=1e-4)


@pytest.fixture(scope="module")
def train_test(mnist):
    """The classifier's training subset and the MNIST test set."""
    return mnist.train.subset(torch.arange(N_TRAIN)), mnist.test


@pytest.fixture(scope="module")
def classifier(train_test, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    model, info = domain_classifier(train_test[0], dataset="mnist", cache_dir=cache)
    return model, info, cache


def test_domain_classifier_learns_and_is_cached(train_test, classifier):
    model, info, cache = classifier
    assert not info["cache_hit"] and info["train_split_n"] == N_TRAIN
    first = train_test[1].subset(torch.arange(2000))
    again, info2 = domain_classifier(train_test[0], dataset="mnist", cache_dir=cache)
    assert info2["cache_hit"] and info2["cache_file"] == info["cache_file"]
    for p, q in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q)
    other, info3 = domain_classifier(train_test[0], dataset="mnist", cache_dir=cache, epochs=0)
    assert not info3["cache_hit"] and info3["cache_file"] != info["cache_file"]
    # a large effect, not a quality bar: ~0.87 trained (8000 images) vs ~0.1 built (10 classes)
    trained, untrained = classifier_accuracy(model, first), classifier_accuracy(other, first)
    assert trained > untrained + 0.5, (trained, untrained)


def test_domain_fid_real_halves_small_noise_large(train_test, classifier):
    """Random halves of the test set (its first and last 5000 differ: writers, difficulty)."""
    model, _, _ = classifier
    gen = torch.Generator().manual_seed(0)
    test = train_test[1].images[torch.randperm(10_000, generator=gen)]
    noise = torch.randint(0, 256, (5000, 1, 28, 28), generator=gen, dtype=torch.uint8)
    feats = DomainFeatures(model)
    halves = torchmetrics_fid(feats, test[:5000], test[5000:])["value"]
    noisy = torchmetrics_fid(feats, test[:5000], noise)["value"]
    print("halves", halves, "noise", noisy)
    assert 0 < halves < 0.01 * noisy, (halves, noisy)


def test_fid_metrics_end_to_end(tmp_path, train_test, classifier):
    train, test = train_test
    _, info, cache = classifier
    cfg = cvae.load_preset("vae-mnist-code")
    cfg.train.epochs, cfg.train.lr = 1, 1e-3
    cfg.train.progress = cfg.train.tensorboard = False
    few = train.subset(torch.arange(256))
    cvae.train(cfg, tmp_path / "run", data=DataSplits("mnist", few, few, test))
    run = cvae.load(tmp_path / "run")

    fakes = prior_samples_uint8(run, 600, seed=3, batch_size=256)
    assert fakes.dtype == torch.uint8 and fakes.shape == (600, 1, 28, 28)
    assert torch.equal(fakes, to_uint8(run.to_unit(run.sample(600, seed=3))))

    real = test.subset(torch.arange(2000))
    out = fid_metrics(run, real, train, n=1000, seed=3, cache_dir=cache)
    dom, inc = out["fid_domain"], out["fid_inception"]
    p = dom["protocol"]
    assert p["name"] == "fid_domain" and p["n_real"] == p["n_fake"] == 1000
    assert p["classifier"]["cache_file"] == info["cache_file"] and p["classifier"]["cache_hit"]
    assert p["classifier_accuracy"] == pytest.approx(classifier_accuracy(classifier[0], real))
    assert p["feature_dim"] == 128 and p["seed"] == 3
    assert dom["value"] == pytest.approx(dom["value_torchmetrics"], rel=1e-3)
    # a 1-epoch VAE on 256 images is far from the data; the test set's halves are not
    halves = torchmetrics_fid(DomainFeatures(classifier[0]), real.images[:1000], real.images[1000:])
    print("model", dom["value"], "halves", halves["value"], p["classifier_accuracy"])
    assert dom["value"] > 5 * halves["value"], (dom["value"], halves["value"])
    assert inc["protocol"]["name"] == "fid_inception" and inc["protocol"]["n_real"] == 1000
    if inception_unavailable(None) is not None:
        assert inc["value"] is None and inc["unavailable"] == inception_unavailable(None)
    with pytest.raises(cvae.errors.CvaeError, match="inception_dims"):
        fid_metrics(run, real, train, n=10, inception_dims=100, cache_dir=cache)
    with pytest.raises(cvae.errors.CvaeError, match="at least 2"):
        fid_metrics(run, real, train, n=1, cache_dir=cache)
    with pytest.raises(cvae.errors.CvaeError, match="the run generates"):
        fid_metrics(run, real.with_channels(3), train, n=10, cache_dir=cache)


def test_inception_unavailable_says_what_to_install_or_download(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "torch_fidelity" else real_find_spec(name, *args)

    monkeypatch.setattr(fid.importlib.util, "find_spec", find_spec)
    msg = inception_unavailable(None)
    assert msg == "install the optional extra: pip install 'cvae[fid]' (torch-fidelity)"

    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name, *a: object())
    missing = tmp_path / "inception.pth"
    msg = inception_unavailable(missing)
    assert msg is not None and "\n" not in msg
    assert str(missing) in msg and fid.INCEPTION_URL in msg and "--fid-weights PATH" in msg
    missing.write_bytes(b"")
    assert inception_unavailable(missing) is None
