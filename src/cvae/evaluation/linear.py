"""Torch linear probes on frozen features (CR-VAE and AAVAE papers' linear evaluations).

* :func:`linear_adam`: CR-VAE paper protocol. ``Linear(d, C)`` on precomputed features, Adam
  lr 1e-3, batch 256, 200 epochs, no augmentation, no standardisation.
* :func:`linear_sgd`: AAVAE ``linear_eval.py`` protocol. SGD-Nesterov momentum 0.9, lr
  ``0.1 * B / 256`` (float, not the code's truncating ``int``), cosine decay to 0 over all steps,
  90 epochs, batch 256; each training batch is augmented (RandomCrop(padding 4, reflect) +
  horizontal flip) and re-encoded by the frozen encoder.

Both are seeded and deterministic (one CPU generator drives the initialisation, the shuffling
and the augmentation) and return ``{"value": test top-1 accuracy, "protocol": {...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cvae.evaluation.protocol import probe_protocol
from cvae.threads import torch_threads

SPLIT = "fit on the given train set, score on the given test set"


def pad_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4, flip_p: float = 0.5
) -> torch.Tensor:
    """Batched ``RandomCrop(size=H, padding, padding_mode='reflect')`` + ``RandomHorizontalFlip``.

    ``images: [B, C, H, W]`` (uint8 or float) -> same shape and dtype. Each image gets its own
    integer offset ``(dy, dx)`` uniform in ``[0, 2 * padding]`` into the reflect-padded image and
    is flipped with probability ``flip_p``; values are copied, never interpolated.
    """
    b, _, h, w = images.shape
    padded = F.pad(images.float(), (padding,) * 4, mode="reflect")
    offset = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator)
    flip = torch.rand(b, generator=generator) < flip_p
    rows = offset[:, :1] + torch.arange(h)  # [B, H]
    cols = offset[:, 1:] + torch.arange(w)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx = torch.arange(b)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).to(images.dtype).contiguous()


def _labels(y: torch.Tensor, n: int, name: str) -> torch.Tensor:
    y = torch.as_tensor(y).reshape(-1).long().cpu()
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels for {n} samples")
    if bool((y < 0).any()):
        raise ValueError(f"{name} must hold non-negative class indices")
    return y


def fit_linear(
    batch_features: Callable[[torch.Tensor], torch.Tensor] | torch.Tensor,
    labels: torch.Tensor,
    dim: int,
    num_classes: int,
    *,
    optimizer: str,
    lr: float,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    momentum: float = 0.9,
    cosine: bool = False,
) -> torch.Tensor:
    """Train a softmax-regression layer with cross-entropy (batch mean) on shuffled batches.

    ``batch_features(idx)`` returns the ``[b, dim]`` features of training rows ``idx`` (an
    augmented re-encoding), or ``batch_features`` is the ``[N, dim]`` features themselves
    (precomputed); ``labels: [N]``. Every epoch visits all
    ``N`` rows in a fresh ``randperm`` (last batch partial). Returns ``theta: [C, dim + 1]``
    (weights, then the bias column), initialised like ``nn.Linear`` (U(+-1/sqrt(dim)), one
    ``rand`` draw from ``generator``).

    The gradient is closed-form, ``(softmax(x theta^T) - onehot(y))^T [x, 1] / b``, and the
    optimisers are written out with ``torch.optim``'s update rules (no weight decay):
    ``"adam"`` (betas 0.9, 0.999, eps 1e-8) and ``"sgd"`` (Nesterov, ``momentum``), in float32
    NumPy: a step is a dozen operations on ``[b, C]`` arrays, where NumPy's per-call cost is a
    fraction of torch's (5x faster than autograd + ``torch.optim``, 2.5x faster than the same
    loop in torch; equal to ``torch.optim`` to float32 rounding, ``tests/test_linear.py``).
    ``cosine``: the lr at step ``t`` of ``T`` is ``lr * (1 + cos(pi * t / T)) / 2``.
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    bound = 1.0 / math.sqrt(dim)
    init = (torch.rand(num_classes, dim + 1, generator=generator) * 2 - 1) * bound
    theta = init.numpy()
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    y = labels.numpy()
    n = labels.shape[0]
    fixed = None
    if isinstance(batch_features, torch.Tensor):  # precomputed: [x, 1] once
        fixed = np.concatenate([batch_features.float().numpy(), np.ones((n, 1), np.float32)], 1)
    total = epochs * math.ceil(n / batch_size)
    rows = np.arange(batch_size)
    t = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator)
        order = perm.numpy()
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            b = len(idx)
            if fixed is not None:
                x = fixed[idx]
            else:
                assert callable(batch_features)
                x = batch_features(perm[start : start + batch_size]).float().numpy()
                x = np.concatenate([x, np.ones((b, 1), np.float32)], axis=1)
            logits = x @ theta.T
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            p[rows[:b], y[idx]] -= 1.0
            grad = (p.T @ x) / np.float32(b)
            rate = lr * 0.5 * (1 + math.cos(math.pi * t / total)) if cosine else lr
            t += 1
            if optimizer == "adam":
                m *= np.float32(0.9)
                m += np.float32(0.1) * grad
                v *= np.float32(0.999)
                v += np.float32(0.001) * grad * grad
                denom = np.sqrt(v) / np.float32(math.sqrt(1 - 0.999**t)) + np.float32(1e-8)
                theta -= np.float32(rate / (1 - 0.9**t)) * m / denom
            else:
                m = grad.copy() if t == 1 else m * np.float32(momentum) + grad
                theta -= np.float32(rate) * (grad + np.float32(momentum) * m)
    return torch.from_numpy(theta)


@torch.no_grad()
def _accuracy(theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    logits = x.float() @ theta[:, :-1].T + theta[:, -1]
    return float((logits.argmax(1) == y).double().mean())


def _check(
    train_dim: int, test_x: torch.Tensor, train_y: torch.Tensor, test_y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    if test_x.ndim != 2 or test_x.shape[1] != train_dim:
        raise ValueError(f"test features must be [N, {train_dim}], got {tuple(test_x.shape)}")
    tr_y = _labels(train_y, train_y.shape[0], "train_y")
    te_y = _labels(test_y, test_x.shape[0], "test_y")
    return tr_y, te_y, int(max(int(tr_y.max()), int(te_y.max()))) + 1


def linear_adam(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    epochs: int = 200,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    feature_name: str = "mu",
    split: str = SPLIT,
) -> dict[str, Any]:
    """CR-VAE paper linear probe on precomputed features ``train_x: [N, d]``, ``test_x: [M, d]``
    with integer labels ``[N]``, ``[M]``: Adam(lr), ``epochs`` x shuffled batches, test top-1.
    ``feature_name`` and ``split`` are recorded only."""
    train_x, test_x = train_x.detach().float().cpu(), test_x.detach().float().cpu()
    if train_x.ndim != 2:
        raise ValueError(f"train features must be [N, d], got {tuple(train_x.shape)}")
    tr_y, te_y, classes = _check(train_x.shape[1], test_x, train_y.reshape(-1), test_y)
    if tr_y.shape[0] != train_x.shape[0]:
        raise ValueError(f"train_y has {tr_y.shape[0]} labels for {train_x.shape[0]} samples")
    gen = torch.Generator().manual_seed(seed)
    with torch_threads(1):  # tiny per-step ops lose to thread synchronisation
        theta = fit_linear(
            train_x,
            tr_y,
            train_x.shape[1],
            classes,
            optimizer="adam",
            lr=lr,
            epochs=epochs,
            batch_size=batch_size,
            generator=gen,
        )
    return {
        "value": _accuracy(theta, test_x, te_y),
        "protocol": {
            **probe_protocol(
                "linear_adam", split, len(train_x), len(test_x), train_x.shape[1], feature_name
            ),
            "variant": "CR-VAE paper: Linear(d, C) + softmax on frozen features",
            "optimizer": "Adam (betas 0.9, 0.999, no weight decay)",
            "lr": lr,
            "schedule": "constant",
            "epochs": epochs,
            "batch_size": batch_size,
            "augmentation": "none",
            "standardisation": False,
            "num_classes": classes,
            "seed": seed,
        },
    }


def linear_sgd(
    encode: Callable[[torch.Tensor], torch.Tensor],
    train_images: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    epochs: int = 90,
    batch_size: int = 256,
    lr: float | None = None,
    momentum: float = 0.9,
    padding: int = 4,
    seed: int = 0,
    feature_name: str = "h",
    split: str = SPLIT,
) -> dict[str, Any]:
    """AAVAE linear evaluation: every batch of ``train_images [N, C, H, W]`` (uint8) is augmented
    with :func:`pad_crop_flip` and encoded by the frozen ``encode(images) -> [b, d]``; the test
    features ``test_x: [M, d]`` are clean. SGD-Nesterov, ``lr = 0.1 * batch_size / 256`` when
    None, cosine decay to 0 per step, no weight decay. ``feature_name`` and ``split`` are recorded
    only."""
    lr = 0.1 * batch_size / 256 if lr is None else lr
    test_x = test_x.detach().float().cpu()
    gen = torch.Generator().manual_seed(seed)
    tr_y, te_y, classes = _check(test_x.shape[1], test_x, train_y.reshape(-1), test_y)
    if tr_y.shape[0] != train_images.shape[0]:
        raise ValueError(f"train_y has {tr_y.shape[0]} labels for {len(train_images)} images")

    def batch_features(idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return encode(pad_crop_flip(train_images[idx], gen, padding)).float().cpu()

    theta = fit_linear(
        batch_features,
        tr_y,
        test_x.shape[1],
        classes,
        optimizer="sgd",
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        generator=gen,
        momentum=momentum,
        cosine=True,
    )
    return {
        "value": _accuracy(theta, test_x, te_y),
        "protocol": {
            **probe_protocol(
                "linear_sgd", split, len(train_images), len(test_x), test_x.shape[1], feature_name
            ),
            "variant": "AAVAE linear_eval.py: Linear(d, C) on the frozen (eval-mode) encoder",
            "optimizer": f"SGD Nesterov, momentum {momentum}, no weight decay",
            "lr": lr,
            "lr_rule": "0.1 * batch_size / 256 (float; the code's int() truncation not repeated)",
            "schedule": "cosine to 0 over all steps, per step, no warm-up",
            "epochs": epochs,
            "batch_size": batch_size,
            "augmentation": f"RandomCrop(pad {padding}, reflect) + HorizontalFlip(0.5), train only",
            "test_set": "all test images (the code drops the last partial batch)",
            "precision": "fp32 (the code: fp16)",
            "num_classes": classes,
            "seed": seed,
        },
    }
