"""Logistic-regression probes on frozen latent features (CVAE paper; train -> test).

Both functions return ``{"value": accuracy, "protocol": {...}}`` where the protocol records
everything needed to reproduce the number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import sklearn
from scipy import optimize
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from cvae.evaluation.protocol import probe_protocol

FITTED = "fit on train set, score on test set"


def _as_2d_features(x: Any, name: str) -> np.ndarray:
    """Convert a torch tensor or array-like to a float64 ``[N, d]`` numpy array."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [N, d], got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_labels(y: Any, n: int, name: str) -> np.ndarray:
    """Convert labels to a 1-D integer numpy array of length ``n``."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    arr = np.asarray(y).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the features have {n} rows")
    return arr.astype(np.int64)


def _train_test(
    train_x: Any, train_y: Any, test_x: Any, test_y: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(x_tr, y_tr, x_te, y_te)`` for a probe fit on train and scored on test."""
    x_tr = _as_2d_features(train_x, "train_x")
    y_tr = _as_labels(train_y, x_tr.shape[0], "train_y")
    x_te = _as_2d_features(test_x, "test_x")
    y_te = _as_labels(test_y, x_te.shape[0], "test_y")
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"feature dims differ: train {x_tr.shape[1]}, test {x_te.shape[1]}")
    return x_tr, y_tr, x_te, y_te


@dataclass(frozen=True)
class LogisticFit:
    """A fitted L2 logistic regression: ``coef [K, d]``, ``intercept [K]`` over ``classes``
    (``K = 1`` for two classes: the binomial model), its L-BFGS iterations and convergence."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = x @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            return self.classes[(scores[:, 0] > 0).astype(np.int64)]
        return self.classes[scores.argmax(axis=1)]

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        return float((self.predict(x) == y).mean())


def fit_logistic(x: np.ndarray, y: np.ndarray, *, C: float = 1.0, max_iter: int = 1000,
                 tol: float = 1e-4) -> LogisticFit:  # fmt: skip
    """Minimise sklearn's ``LogisticRegression(C, solver="lbfgs")`` objective,
    ``mean_i CE(x_i W^T + b, y_i) + ||W||^2 / (2 C n)`` (multinomial; binomial for two
    classes; intercept not penalised), by scipy's L-BFGS-B with sklearn's options, in
    standardised coordinates: ``u = (x - mean) / std``, ``V = W * std``, ``c = b + W mean``,
    with the penalty ``sum (V / std)^2`` of the same ``W`` (constant features: std 1). The
    objective and so its minimiser are sklearn's; only the conditioning differs, so L-BFGS
    converges in tens of iterations where sklearn's, on unstandardised latent features, runs
    to its cap of 1000 (over a minute on 54k MNIST features). Accuracy equals sklearn's at
    convergence to within ``LOGISTIC_TOLERANCE`` (``tests/test_eval_speed.py``).
    """
    classes, yi = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError("logistic regression needs at least two classes in the training split")
    n, d = x.shape
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    u = np.concatenate([(x - mean) / std, np.ones((n, 1))], axis=1)
    onehot = np.zeros((n, classes.size))
    onehot[np.arange(n), yi] = 1.0
    free = 1 if classes.size == 2 else classes.size  # binomial: class 0's scores are 0
    weight = np.append(1.0 / std**2, 0.0) / (C * n)

    def loss_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        v = w.reshape(free, d + 1)
        z = u @ v.T
        if free == 1:
            z = np.concatenate([np.zeros((n, 1)), z], axis=1)
        lse = logsumexp(z, axis=1)
        loss = float((lse - (z * onehot).sum(1)).mean() + 0.5 * (v**2 * weight).sum())
        resid = (np.exp(z - lse[:, None]) - onehot)[:, -free:]
        return loss, (resid.T @ u / n + v * weight).ravel()

    res = optimize.minimize(
        loss_grad,
        np.zeros(free * (d + 1)),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxls": 50},
    )
    v = res.x.reshape(free, d + 1)
    coef = v[:, :d] / std
    return LogisticFit(classes, coef, v[:, d] - coef @ mean, int(res.nit), bool(res.success))


LOGISTIC_TOLERANCE = 0.002
"""Largest difference in accuracy from sklearn's converged ``LogisticRegression`` that
:func:`fit_logistic` is tested to (0.2 points)."""


def _classifier_protocol(max_iter: int, fit: LogisticFit) -> dict[str, Any]:
    return {
        "classifier": "L2 logistic regression, sklearn LogisticRegression(C=1.0, lbfgs) objective",
        "solver": "lbfgs",
        "optimisation": "scipy L-BFGS-B (sklearn's options) in standardised coordinates, the "
        "objective unchanged (penalty on the unstandardised weights)",
        "tolerance": f"accuracy within {LOGISTIC_TOLERANCE} of sklearn's at convergence",
        "multi_class": "multinomial (binomial when 2 classes), as sklearn lbfgs",
        "penalty": "l2",
        "C": 1.0,
        "max_iter": max_iter,
        "standardisation": False,
        "n_iter": fit.n_iter,
        "converged": fit.converged,
        "sklearn_version": sklearn.__version__,
    }


def logistic_regression_paper(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    test_size: float = 0.2,
    random_state: int = 42,
    max_iter: int = 1000,
    feature_name: str = "mu",
    split: str = "train_test_split inside the given set (CVAE paper Table 1)",
) -> dict[str, Any]:
    """CVAE-paper Table 1 probe: split the given (test-set) features 80/20, fit, score.

    Args:
        features: ``[N, d]`` latent features (e.g. μ of the 10k test images).
        labels: ``[N]`` integer class labels.
        test_size: fraction held out by ``train_test_split`` (paper: 0.2).
        random_state: split seed (paper: 42).
        max_iter: lbfgs iteration cap (paper: 1000).
        feature_name: which feature the caller passed (recorded only).
        split: where the features come from (recorded only).

    Returns:
        ``{"value": accuracy on the held-out part, "protocol": {...}}``.
    """
    x = _as_2d_features(features, "features")
    y = _as_labels(labels, x.shape[0], "labels")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, random_state=random_state)
    clf = fit_logistic(x_tr, y_tr, max_iter=max_iter)
    acc = clf.score(x_te, y_te)
    protocol = {
        **probe_protocol(
            "logistic_regression_paper",
            split,
            x_tr.shape[0],
            x_te.shape[0],
            x.shape[1],
            feature_name,
        ),
        "test_size": test_size,
        "random_state": random_state,
        "n_total": int(x.shape[0]),
        **_classifier_protocol(max_iter, clf),
    }
    return {"value": acc, "protocol": protocol}


def logistic_regression_standard(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    max_iter: int = 1000,
    feature_name: str = "mu",
    split: str = FITTED,
) -> dict[str, Any]:
    """Standard probe: fit on train-set features, score on test-set features.

    Args:
        train_x: ``[N_train, d]`` features; train_y: ``[N_train]`` labels.
        test_x: ``[N_test, d]`` features; test_y: ``[N_test]`` labels.
        max_iter: lbfgs iteration cap.
        feature_name: which feature the caller passed (recorded only).
        split: which sets these are (recorded only).

    Returns:
        ``{"value": test accuracy, "protocol": {...}}``.
    """
    x_tr, y_tr, x_te, y_te = _train_test(train_x, train_y, test_x, test_y)
    clf = fit_logistic(x_tr, y_tr, max_iter=max_iter)
    acc = clf.score(x_te, y_te)
    protocol = {
        **probe_protocol(
            "logistic_regression_standard",
            split,
            x_tr.shape[0],
            x_te.shape[0],
            x_tr.shape[1],
            feature_name,
        ),
        **_classifier_protocol(max_iter, clf),
    }
    return {"value": acc, "protocol": protocol}


def perceptron_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    seed: int = 0,
    feature_name: str = "mu",
    split: str = FITTED,
) -> dict[str, Any]:
    """The CR-VAE code's linear probe (secondary): sklearn
    ``SGDClassifier(loss='perceptron')`` with its defaults (L2 alpha 1e-4, max_iter 1000,
    tol 1e-3), fit on train features, scored on test features, no standardisation.
    ``feature_name`` and ``split`` are recorded only."""
    from sklearn.linear_model import SGDClassifier

    x_tr, y_tr, x_te, y_te = _train_test(train_x, train_y, test_x, test_y)
    clf = SGDClassifier(loss="perceptron", random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        clf.fit(x_tr, y_tr)
    protocol = {
        **probe_protocol(
            "perceptron_probe",
            split,
            x_tr.shape[0],
            x_te.shape[0],
            x_tr.shape[1],
            feature_name,
        ),
        "classifier": "sklearn.linear_model.SGDClassifier(loss='perceptron')",
        "penalty": "l2",
        "alpha": 1e-4,
        "max_iter": 1000,
        "tol": 1e-3,
        "random_state": seed,
        "standardize": False,
        "n_iter": int(clf.n_iter_),
        "reference": "CR-VAE code utils.py:320-381",
        "sklearn_version": sklearn.__version__,
    }
    return {"value": float(clf.score(x_te, y_te)), "protocol": protocol}
