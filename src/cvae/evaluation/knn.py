"""k-nearest-neighbour probes on frozen latent features (CR-VAE paper and code).

* :func:`knn_weighted_cosine`: the InstDisc/MoCo weighted kNN (CR-VAE paper, primary protocol).
* :func:`knn_uniform_euclidean`: sklearn's uniform-weight Euclidean kNN (CR-VAE code, secondary),
  computed by brute force in torch.

Both return ``{"value": accuracy, "protocol": {...}}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

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


@torch.no_grad()
def cosine_neighbours(
    bank_x: torch.Tensor, query_x: torch.Tensor, k: int, batch_size: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(similarity, index)`` of the ``k`` bank rows of highest cosine similarity to each
    query, both ``[Q, k]``, sorted descending (``torch.topk``); ``batch_size`` queries at a time
    (memory ``O(batch_size * M)``). The first ``j`` columns are the top-``j`` neighbours, so one
    call serves every ``k' <= k`` (up to the order of exactly tied similarities)."""
    bank = F.normalize(bank_x, dim=1)
    sims, idxs = [], []
    for start in range(0, query_x.shape[0], batch_size):
        q = F.normalize(query_x[start : start + batch_size], dim=1)
        top_sim, top_idx = (q @ bank.T).topk(k, dim=1)
        sims.append(top_sim)
        idxs.append(top_idx)
    return torch.cat(sims), torch.cat(idxs)


def weighted_vote(
    top_sim: torch.Tensor,
    top_idx: torch.Tensor,
    bank_y: torch.Tensor,
    *,
    temperature: float,
    num_classes: int,
) -> torch.Tensor:
    """``[Q]`` classes voted by the neighbours ``(top_sim, top_idx)`` (``[Q, k]``, sorted
    descending) with weights ``exp(sim / temperature)``, computed as ``exp((s - s_max) / T)``:
    a per-query positive factor that avoids overflow and leaves the argmax unchanged."""
    weights = ((top_sim - top_sim[:, :1]) / temperature).exp()
    scores = torch.zeros(top_sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
    scores.scatter_add_(1, bank_y[top_idx], weights)
    return scores.argmax(dim=1)


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
    """Weighted-cosine kNN predictions: :func:`cosine_neighbours` then :func:`weighted_vote`.

    Args:
        bank_x: ``[M, d]`` float bank features; bank_y: ``[M]`` int64 labels in ``[0, C)``.
        query_x: ``[Q, d]`` float query features (same device as the bank).
        k: neighbours per query, ``1 <= k <= M``.
        temperature: vote weight is ``exp(cos_sim / temperature)``.
        num_classes: ``C``.
        batch_size: queries processed at once (memory is ``O(batch_size * M)``).

    Returns:
        ``[Q]`` int64 predicted classes.
    """
    top_sim, top_idx = cosine_neighbours(bank_x, query_x, k, batch_size)
    return weighted_vote(top_sim, top_idx, bank_y, temperature=temperature,
                         num_classes=num_classes)  # fmt: skip


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
    neighbours: tuple[torch.Tensor, torch.Tensor] | None = None,
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
        neighbours: the :func:`cosine_neighbours` of these queries in this bank with at least
            the ``k`` used, computed once for several ``k`` (default: computed here).
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
    if neighbours is None:
        neighbours = cosine_neighbours(bx, qx, k_used, batch_size)
    top_sim, top_idx = neighbours
    if top_sim.shape != (len(qx), top_sim.shape[1]) or top_sim.shape[1] < k_used:
        raise ValueError(f"neighbours must be [{len(qx)}, >= {k_used}], got {tuple(top_sim.shape)}")
    preds = weighted_vote(top_sim[:, :k_used].to(device), top_idx[:, :k_used].to(device), by,
                          temperature=temperature, num_classes=num_classes)  # fmt: skip
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
    batch_size: int = 1024,
    feature_name: str = "mu",
    split: str = BANK_SPLIT,
) -> dict[str, Any]:
    """The CR-VAE code's kNN, sklearn ``KNeighborsClassifier(n_neighbors=k)`` (uniform weights,
    Euclidean), computed by brute force in torch: the ``k`` bank rows of least squared
    distance ``|q|^2 - 2 q.b + |b|^2`` (float64) to each query vote, the most frequent class
    wins, the smallest label among tied counts (sklearn's mode). Predictions equal sklearn's
    except where distances tie at the ``k``-th neighbour (sklearn's kd-tree took minutes on
    MNIST at ``k = 200``). ``k`` is clipped to the smallest class count of the bank
    (:func:`clip_k`).

    Args:
        bank_x: ``[M, d]`` bank features; bank_y: ``[M]`` labels.
        query_x: ``[Q, d]`` query features; query_y: ``[Q]`` labels.
        k: neighbours (CR-VAE code: 200).
        batch_size: queries per batch; bounds memory to ``batch_size * M`` distances.
        feature_name, split: which feature and which sets the caller passed (recorded only).

    Returns:
        ``{"value": top-1 accuracy on the queries, "protocol": {...}}``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    device = _pick_device(bank_x, query_x, bank_y, query_y)
    bx, by, qx, qy = _bank_and_queries(bank_x, bank_y, query_x, query_y, device, torch.float64)
    k_used, reason = clip_k(k, by)
    classes = int(max(int(by.max()), int(qy.max()))) + 1
    bank_sq = bx.pow(2).sum(1)
    preds = []
    for start in range(0, len(qx), batch_size):
        q = qx[start : start + batch_size]
        dist = torch.addmm(bank_sq, q, bx.T, alpha=-2.0).add_(q.pow(2).sum(1, keepdim=True))
        idx = dist.topk(k_used, dim=1, largest=False).indices
        counts = torch.zeros(len(q), classes, dtype=torch.int64, device=device)
        counts.scatter_add_(1, by[idx], torch.ones_like(idx))
        preds.append(counts.argmax(dim=1))  # the first (smallest) class among tied counts
    acc = float((torch.cat(preds) == qy).double().mean())
    protocol = {
        **probe_protocol(
            "knn_uniform_euclidean", split, len(bx), len(qx), bx.shape[1], feature_name
        ),
        "variant": "sklearn KNeighborsClassifier, uniform weights, Euclidean (CR-VAE code)",
        "classifier": "sklearn.neighbors.KNeighborsClassifier(n_neighbors=k) semantics",
        "weights": "uniform",
        "metric_distance": "minkowski p=2 (euclidean)",
        "algorithm": "brute force in torch, float64 (equal to sklearn's predictions up to "
        "distance ties at the k-th neighbour)",
        **k_protocol(k, k_used, reason),
        "device": str(device),
    }
    return {"value": acc, "protocol": protocol}
