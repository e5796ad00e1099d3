"""k-nearest-neighbour probes on frozen latent features (CR-VAE paper and code).

* :func:`knn_weighted_cosine`: the InstDisc/MoCo weighted kNN (CR-VAE paper, primary protocol).
* :func:`knn_uniform_euclidean`: sklearn's uniform-weight Euclidean kNN (CR-VAE code, secondary).

Both return ``{"value": accuracy, "protocol": {...}}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sklearn
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier

from cvae.evaluation.protocol import probe_protocol

ArrayLike = np.ndarray | torch.Tensor

BANK_SPLIT = "bank = given bank set, queries = given query set"


def clip_k(k: int, bank_y: torch.Tensor) -> tuple[int, str | None]:
    """``k`` clipped to the smallest class count of the bank, and why it was clipped (None when
    it was not): more neighbours than a class has force other classes into every vote of that
    class, whatever the representation."""
    counts = torch.bincount(bank_y)
    smallest = int(counts[counts > 0].min())
    if k <= smallest:
        return k, None
    return smallest, f"k={k} exceeds the smallest class count of the bank ({smallest})"


def k_protocol(k: int, k_used: int, reason: str | None) -> dict[str, Any]:
    """The protocol entries of a clipped ``k`` (``k`` is the value used)."""
    return {
        "k_requested": int(k),
        "k": int(k_used),
        "k_used": int(k_used),
        "clipped_reason": reason,
    }


def _pick_device(*xs: Any) -> torch.device:
    """The device of the first torch tensor among ``xs`` (CPU when all are numpy)."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def _to_tensor(x: ArrayLike, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim != 2:
        raise ValueError(f"{name}_x must have shape [N, d], got {tuple(x.shape)}")
    y = y.reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{name}_y has {y.shape[0]} entries but {name}_x has {x.shape[0]} rows")
    if x.shape[0] == 0:
        raise ValueError(f"{name}_x is empty")
    if bool((y < 0).any()):
        raise ValueError(f"{name}_y must hold non-negative integer class indices")
    return y


@torch.no_grad()
def _bank_and_queries(
    bank_x: ArrayLike,
    bank_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated ``(bank_x, bank_y, query_x, query_y)`` tensors on ``device``."""
    bx = _to_tensor(bank_x, device, dtype)
    qx = _to_tensor(query_x, device, dtype)
    by = _check_pair(bx, _to_tensor(bank_y, device, torch.int64), "bank")
    qy = _check_pair(qx, _to_tensor(query_y, device, torch.int64), "query")
    if bx.shape[1] != qx.shape[1]:
        raise ValueError(f"feature dims differ: bank {bx.shape[1]}, query {qx.shape[1]}")
    return bx, by, qx, qy


def weighted_knn_predict(
    bank_x: torch.Tensor,
    bank_y: torch.Tensor,
    query_x: torch.Tensor,
    *,
    k: int,
    temperature: float,
    num_classes: int,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Weighted-cosine kNN predictions.

    Args:
        bank_x: ``[M, d]`` float bank features; bank_y: ``[M]`` int64 labels in ``[0, C)``.
        query_x: ``[Q, d]`` float query features (same device as the bank).
        k: neighbours per query, ``1 <= k <= M``.
        temperature: vote weight is ``exp(cos_sim / temperature)``.
        num_classes: ``C``.
        batch_size: queries processed at once (memory is ``O(batch_size * M)``).

    Returns:
        ``[Q]`` int64 predicted classes. Each vote is computed as ``exp((s - s_max) / T)``
        with ``s_max`` the query's best similarity: a per-query positive factor that avoids
        overflow and leaves the argmax unchanged.
    """
    bank = F.normalize(bank_x, dim=1)
    preds = []
    for start in range(0, query_x.shape[0], batch_size):
        q = F.normalize(query_x[start : start + batch_size], dim=1)
        sim = q @ bank.T  # [b, M]
        top_sim, top_idx = sim.topk(k, dim=1)  # [b, k], sorted descending
        weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
        scores = torch.zeros(q.shape[0], num_classes, dtype=weights.dtype, device=q.device)
        scores.scatter_add_(1, bank_y[top_idx], weights)
        preds.append(scores.argmax(dim=1))
    return torch.cat(preds)


def knn_weighted_cosine(
    bank_x: ArrayLike,
    bank_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    batch_size: int = 1024,
    feature_name: str = "mu",
    split: str = BANK_SPLIT,
) -> dict[str, Any]:
    """InstDisc/MoCo weighted kNN accuracy.

    Features are L2-normalised; each query takes its top-``k`` cosine neighbours in the bank;
    class score = Σ exp(sim / temperature) over neighbours of that class; prediction = argmax.

    Args:
        bank_x: ``[M, d]`` bank features (e.g. train-set μ); bank_y: ``[M]`` labels.
        query_x: ``[Q, d]`` query features (e.g. test-set μ); query_y: ``[Q]`` labels.
        k: neighbours (default 200); clipped to the smallest class count of the bank
            (:func:`clip_k`), the value used and the reason are recorded.
        temperature: vote temperature (default 0.1).
        num_classes: ``C``; inferred as ``max(label) + 1`` over bank and queries when None.
        batch_size: queries per batch; bounds memory to ``batch_size * M`` similarities.
        feature_name, split: which feature and which sets the caller passed (recorded only).

    Inputs may be numpy arrays or torch tensors (CPU or GPU); computation runs on the device
    of the first tensor argument, in float32.

    Returns:
        ``{"value": top-1 accuracy on the queries, "protocol": {...}}``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = _pick_device(bank_x, query_x, bank_y, query_y)
    bx, by, qx, qy = _bank_and_queries(bank_x, bank_y, query_x, query_y, device, torch.float32)
    inferred = int(max(int(by.max()), int(qy.max()))) + 1
    if num_classes is None:
        num_classes = inferred
    elif num_classes < inferred:
        raise ValueError(f"num_classes={num_classes} but labels go up to {inferred - 1}")
    k_used, reason = clip_k(k, by)
    preds = weighted_knn_predict(
        bx,
        by,
        qx,
        k=k_used,
        temperature=temperature,
        num_classes=num_classes,
        batch_size=batch_size,
    )
    acc = float((preds == qy).float().mean().item())
    protocol = {
        **probe_protocol("knn_weighted_cosine", split, len(bx), len(qx), bx.shape[1], feature_name),
        "variant": "InstDisc/MoCo: L2-normalised, cosine top-k, votes exp(sim/T)",
        **k_protocol(k, k_used, reason),
        "temperature": float(temperature),
        "num_classes": int(num_classes),
        "dtype": "float32",
        "device": str(device),
    }
    return {"value": acc, "protocol": protocol}


def knn_uniform_euclidean(
    bank_x: ArrayLike,
    bank_y: ArrayLike,
    query_x: ArrayLike,
    query_y: ArrayLike,
    *,
    k: int = 200,
    feature_name: str = "mu",
    split: str = BANK_SPLIT,
) -> dict[str, Any]:
    """sklearn ``KNeighborsClassifier(n_neighbors=k)`` accuracy (uniform weights, Euclidean).

    This is the CR-VAE reference code's variant. ``k`` is clipped to the smallest class count of
    the bank (:func:`clip_k`).

    Args:
        bank_x: ``[M, d]`` bank features; bank_y: ``[M]`` labels.
        query_x: ``[Q, d]`` query features; query_y: ``[Q]`` labels.
        k: neighbours (CR-VAE code: 200).
        feature_name, split: which feature and which sets the caller passed (recorded only).

    Returns:
        ``{"value": top-1 accuracy on the queries, "protocol": {...}}``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    bx, by, qx, qy = _bank_and_queries(
        bank_x, bank_y, query_x, query_y, torch.device("cpu"), torch.float64
    )
    k_used, reason = clip_k(k, by)
    clf = KNeighborsClassifier(n_neighbors=k_used)
    clf.fit(bx.numpy(), by.numpy())
    acc = float(clf.score(qx.numpy(), qy.numpy()))
    protocol = {
        **probe_protocol(
            "knn_uniform_euclidean", split, len(bx), len(qx), bx.shape[1], feature_name
        ),
        "variant": "sklearn KNeighborsClassifier, uniform weights, Euclidean (CR-VAE code)",
        "classifier": "sklearn.neighbors.KNeighborsClassifier",
        "weights": "uniform",
        "metric_distance": "minkowski p=2 (euclidean)",
        "algorithm": "auto",
        **k_protocol(k, k_used, reason),
        "sklearn_version": sklearn.__version__,
    }
    return {"value": acc, "protocol": protocol}
