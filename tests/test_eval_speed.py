"""The faster evaluation solvers give the protocols' results: the logistic probe against sklearn's
LogisticRegression at convergence, the brute-force uniform kNN against sklearn's
KNeighborsClassifier, the shared cosine neighbours against one search per k, and the stage
timings in metrics.json. No time is asserted."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from cvae.evaluation.knn import (
    cosine_neighbours,
    knn_uniform_euclidean,
    knn_weighted_cosine,
    weighted_knn_predict,
)
from cvae.evaluation.probes import LOGISTIC_TOLERANCE, fit_logistic


def _features(
    n: int, classes: int, seed: int, spread: float = 8.0
) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping class clusters in 6-d with per-dimension scales from ``1 / spread`` to
    ``spread`` and an offset: unstandardised latent features, badly conditioned by default."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).normal(size=(classes, 6)) * 1.5
    y = rng.integers(0, classes, n)
    scale = np.geomspace(1 / spread, spread, 6)
    return (centers[y] + rng.normal(size=(n, 6))) * scale + 3.0, y


@pytest.mark.parametrize("classes", [2, 3])
def test_fit_logistic_matches_sklearn_at_convergence(classes: int) -> None:
    # conditioned well enough for sklearn to converge tightly in well under a second
    x, y = _features(400, classes, seed=0, spread=2.0)
    xt, yt = _features(1000, classes, seed=1, spread=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        ref = LogisticRegression(C=1.0, max_iter=5000, tol=1e-6).fit(x, y)
    fit = fit_logistic(x, y)
    assert fit.converged
    assert abs(fit.score(xt, yt) - ref.score(xt, yt)) <= LOGISTIC_TOLERANCE
    assert np.mean(fit.predict(xt) == ref.predict(xt)) >= 1 - LOGISTIC_TOLERANCE
    # the same minimiser, hence the same weights (binomial for two classes, as sklearn)
    np.testing.assert_allclose(fit.coef, ref.coef_, atol=0.02)
    np.testing.assert_allclose(fit.intercept, ref.intercept_, rtol=0.02, atol=0.02)


def test_fit_logistic_converges_where_sklearn_hits_its_cap() -> None:
    x, y = _features(600, 3, seed=0, spread=20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        capped = LogisticRegression(C=1.0, max_iter=100).fit(x, y)
    fit = fit_logistic(x, y, max_iter=100)
    assert capped.n_iter_[0] == 100 and fit.converged and fit.n_iter < 100


def test_fit_logistic_keeps_labels_and_constant_features() -> None:
    x, y = _features(600, 3, seed=2)
    x[:, 0] = 4.0  # a constant feature gets no weight
    fit = fit_logistic(x, y + 10)
    assert set(fit.predict(x)) <= {10, 11, 12} and np.allclose(fit.coef[:, 0], 0, atol=1e-6)
    with pytest.raises(ValueError, match="two classes"):
        fit_logistic(x, np.zeros(600, dtype=int))


def test_uniform_knn_equals_sklearn() -> None:
    bank, bank_y = _features(2000, 4, seed=3)
    query, query_y = _features(500, 4, seed=4)
    for k in (1, 7, 50):
        ref = KNeighborsClassifier(n_neighbors=k).fit(bank, bank_y).score(query, query_y)
        out = knn_uniform_euclidean(bank, bank_y, query, query_y, k=k, batch_size=64)
        assert out["value"] == pytest.approx(ref, abs=1e-12)


def test_shared_cosine_neighbours_give_each_k_its_own_result() -> None:
    bank, bank_y = (torch.from_numpy(a) for a in _features(1000, 5, seed=5))
    query, query_y = (torch.from_numpy(a) for a in _features(300, 5, seed=6))
    bank, query = bank.float(), query.float()
    shared = cosine_neighbours(bank, query, 40, batch_size=128)
    for k in (5, 40):
        alone = knn_weighted_cosine(bank, bank_y, query, query_y, k=k)
        reused = knn_weighted_cosine(bank, bank_y, query, query_y, k=k, neighbours=shared)
        assert reused == alone
        pred = weighted_knn_predict(bank, bank_y, query, k=k, temperature=0.1, num_classes=5)
        assert alone["value"] == pytest.approx(float((pred == query_y).float().mean()))
    with pytest.raises(ValueError, match="neighbours"):
        knn_weighted_cosine(bank, bank_y, query, query_y, k=41, neighbours=shared)
