"""Logistic-regression and kNN probes (cvae.evaluation.probes / knn)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from cvae.evaluation.knn import knn_uniform_euclidean, knn_weighted_cosine, weighted_knn_predict
from cvae.evaluation.probes import (
    logistic_regression_paper,
    logistic_regression_standard,
    perceptron_probe,
)


def _blobs(n: int, d: int = 8, n_classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian blobs: class c centred at 10 * e_c."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    centres = 10.0 * np.eye(n_classes, d)
    x = centres[y] + rng.normal(size=(n, d))
    return x.astype(np.float32), y


def _noise(n: int, d: int = 8, n_classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, n_classes, size=n)


# ---------------------------------------------------------------- logistic regression


def test_logistic_paper_separable_blobs() -> None:
    x, y = _blobs(500)
    res = logistic_regression_paper(x, y, feature_name="z")
    assert res["value"] >= 0.99
    p = res["protocol"]
    assert p["feature_name"] == "z"
    assert p["test_size"] == 0.2 and p["random_state"] == 42 and p["max_iter"] == 1000
    assert p["C"] == 1.0 and p["solver"] == "lbfgs" and p["standardisation"] is False
    assert isinstance(p["converged"], bool) and p["converged"]


def test_logistic_paper_random_labels_near_chance() -> None:
    x, y = _noise(1000, n_classes=5)
    res = logistic_regression_paper(x, y)
    assert abs(res["value"] - 0.2) < 0.08


def test_logistic_paper_holds_out_exactly_20_percent_and_is_deterministic() -> None:
    x, y = _blobs(1000, seed=1)
    a = logistic_regression_paper(x, y)
    b = logistic_regression_paper(x, y)
    assert a["protocol"]["n_test"] == 200 and a["protocol"]["n_train"] == 800
    assert a["protocol"]["n_total"] == 1000
    assert a == b
    # noise features: a different split seed gives a different split (and usually accuracy)
    xn, yn = _noise(500, n_classes=3)
    c = logistic_regression_paper(xn, yn, random_state=42)
    d = logistic_regression_paper(xn, yn, random_state=42)
    e = logistic_regression_paper(xn, yn, random_state=0)
    assert c["value"] == d["value"]
    assert e["protocol"]["random_state"] == 0 and e["protocol"]["n_test"] == 100


def test_logistic_standard_blobs_and_random_labels() -> None:
    xtr, ytr = _blobs(400, seed=0)
    xte, yte = _blobs(200, seed=1)
    res = logistic_regression_standard(xtr, ytr, xte, yte)
    assert res["value"] >= 0.99
    assert res["protocol"]["n_train"] == 400 and res["protocol"]["n_test"] == 200

    ntr, nytr = _noise(800, seed=0)
    nte, nyte = _noise(1000, seed=1)
    res = logistic_regression_standard(ntr, nytr, nte, nyte)
    assert abs(res["value"] - 0.2) < 0.06


def test_perceptron_probe_blobs_random_labels_and_determinism() -> None:
    """The CR-VAE code's perceptron separates blobs, is at chance on noise, and is seeded."""
    xtr, ytr = _blobs(400, seed=0)
    xte, yte = _blobs(200, seed=1)
    res = perceptron_probe(xtr, ytr, xte, yte, seed=3)
    assert res["value"] >= 0.99 and res["protocol"]["random_state"] == 3
    assert res["protocol"]["classifier"].endswith("(loss='perceptron')")
    assert perceptron_probe(xtr, ytr, xte, yte, seed=3)["value"] == res["value"]
    ntr, nytr = _noise(800, seed=0)
    nte, nyte = _noise(1000, seed=1)
    assert abs(perceptron_probe(ntr, nytr, nte, nyte)["value"] - 0.2) < 0.06


def test_logistic_records_non_convergence_without_warning() -> None:
    x, y = _noise(300, n_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = logistic_regression_paper(x, y, max_iter=1)
    assert res["protocol"]["converged"] is False
    assert res["protocol"]["max_iter"] == 1


def test_logistic_accepts_torch_and_rejects_bad_shapes() -> None:
    x, y = _blobs(200)
    a = logistic_regression_paper(torch.from_numpy(x), torch.from_numpy(y))
    b = logistic_regression_paper(x, y)
    assert a["value"] == b["value"]
    with pytest.raises(ValueError):
        logistic_regression_paper(x[:, 0], y)
    with pytest.raises(ValueError):
        logistic_regression_standard(x, y, x[:, :3], y)


# ---------------------------------------------------------------- weighted-cosine kNN


def _hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query on the x-axis. Nearest (cosine): class 0 at 0° (sim 1), class 1 at ±60° (sim 0.5),
    then class 0 at 180° (sim -1), which k=3 excludes; a class-0 and a class-1 point far away
    near 180° make 3 per class (k is clipped to the smallest class count)."""
    c60, s60 = 0.5, math.sqrt(3) / 2
    bank = np.array(
        [[5.0, 0.0], [c60, s60], [c60, -s60], [-1.0, 0.0], [-9.0, 0.1], [-9.0, -0.1]],
        dtype=np.float32,
    )
    bank_y = np.array([0, 1, 1, 0, 0, 1])
    query = np.array([[0.2, 0.0]], dtype=np.float32)
    return bank, bank_y, query


def test_weighted_knn_hand_case_weighted_beats_majority() -> None:
    bank, bank_y, query = _hand_case()
    # By hand, T = 0.1: class 0 = exp(1/0.1) = 22026; class 1 = 2 exp(0.5/0.1) = 297 -> class 0,
    # while a majority vote over the same 3 neighbours (1, 1, 0) gives class 1.
    assert math.exp(1 / 0.1) > 2 * math.exp(0.5 / 0.1)
    res = knn_weighted_cosine(bank, bank_y, query, np.array([0]), k=3, temperature=0.1)
    assert res["value"] == 1.0
    pred = weighted_knn_predict(
        torch.from_numpy(bank),
        torch.from_numpy(bank_y),
        torch.from_numpy(query),
        k=3,
        temperature=0.1,
        num_classes=2,
    )
    assert pred.tolist() == [0]
    # T = 100: votes ~ equal, so 2 x class 1 wins: exp(0.01) < 2 exp(0.005)
    hot = knn_weighted_cosine(bank, bank_y, query, np.array([1]), k=3, temperature=100.0)
    assert hot["value"] == 1.0
    # the uniform-Euclidean variant: neighbours of (0.2, 0) are the two unit ±60° points
    # (distance 0.92) and (-1, 0) (1.2); (5, 0) is 4.8 away -> majority 1, 1, 0 -> class 1
    uni = knn_uniform_euclidean(bank, bank_y, query, np.array([1]), k=3)
    assert uni["value"] == 1.0


def test_weighted_knn_k_clipped_to_smallest_class() -> None:
    bank, bank_y, query = _hand_case()
    res = knn_weighted_cosine(bank, bank_y, query, np.array([0]), k=200)
    p = res["protocol"]
    assert p["k_requested"] == 200 and p["k"] == p["k_used"] == 3
    assert p["clipped_reason"] == "k=200 exceeds the smallest class count of the bank (3)"
    # the 3 nearest vote: class 0 = exp(10) > class 1 = 2 exp(5)
    assert res["value"] == 1.0
    assert p["temperature"] == 0.1 and p["n_train"] == 6 and p["n_test"] == 1
    # one class of 2 in a bank of 6: k=5 -> 2; k within every class is not clipped
    lopsided = np.array([0, 1, 1, 1, 1, 0])
    assert knn_weighted_cosine(bank, lopsided, query, np.array([0]), k=5)["protocol"]["k"] == 2
    kept = knn_weighted_cosine(bank, bank_y, query, np.array([0]), k=2)["protocol"]
    assert kept["k"] == 2 and kept["clipped_reason"] is None
    assert p["num_classes"] == 2 and p["feature_name"] == "mu"


def test_weighted_knn_batching_and_numpy_torch_agree() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(500, 16)).astype(np.float32)
    bank_y = rng.integers(0, 5, size=500)
    query = rng.normal(size=(300, 16)).astype(np.float32)
    query_y = rng.integers(0, 5, size=300)
    one = knn_weighted_cosine(bank, bank_y, query, query_y, k=20, batch_size=1024)
    many = knn_weighted_cosine(bank, bank_y, query, query_y, k=20, batch_size=7)
    assert one["value"] == many["value"]
    tb, tq = torch.from_numpy(bank), torch.from_numpy(query)
    tby, tqy = torch.from_numpy(bank_y), torch.from_numpy(query_y)
    assert knn_weighted_cosine(tb, tby, tq, tqy, k=20)["value"] == one["value"]
    p1 = weighted_knn_predict(tb, tby, tq, k=20, temperature=0.1, num_classes=5, batch_size=7)
    p2 = weighted_knn_predict(tb, tby, tq, k=20, temperature=0.1, num_classes=5, batch_size=999)
    assert torch.equal(p1, p2)


def test_weighted_knn_blobs_and_validation() -> None:
    xb, yb = _blobs(300, seed=0)
    xq, yq = _blobs(100, seed=1)
    res = knn_weighted_cosine(xb, yb, xq, yq, k=50, num_classes=10)
    assert res["value"] == 1.0 and res["protocol"]["num_classes"] == 10
    # a tiny temperature must not overflow
    assert knn_weighted_cosine(xb, yb, xq, yq, k=50, temperature=1e-4)["value"] == 1.0
    with pytest.raises(ValueError):
        knn_weighted_cosine(xb, yb, xq, yq, num_classes=2)
    with pytest.raises(ValueError):
        knn_weighted_cosine(xb, yb[:-1], xq, yq)
    with pytest.raises(ValueError):
        knn_weighted_cosine(xb, yb, xq, yq, k=0)


# ---------------------------------------------------------------- uniform-Euclidean kNN


def test_uniform_euclidean_toy_data() -> None:
    xb, yb = _blobs(300, seed=0)
    xq, yq = _blobs(100, seed=1)
    res = knn_uniform_euclidean(xb, yb, xq, yq, k=50, feature_name="h")
    assert res["value"] == 1.0
    p = res["protocol"]
    assert p["k"] == 50 and p["weights"] == "uniform" and p["feature_name"] == "h"
    assert p["n_train"] == 300 and p["n_test"] == 100
    clipped = knn_uniform_euclidean(xb[:10], yb[:10], xq, yq, k=200)["protocol"]
    smallest = int(np.bincount(yb[:10])[np.bincount(yb[:10]) > 0].min())
    assert clipped["k"] == smallest < 10 and clipped["k_requested"] == 200
    assert clipped["clipped_reason"] is not None
    nb, nyb = _noise(600, seed=0)
    nq, nyq = _noise(600, seed=1)
    assert abs(knn_uniform_euclidean(nb, nyb, nq, nyq, k=25)["value"] - 0.2) < 0.07
