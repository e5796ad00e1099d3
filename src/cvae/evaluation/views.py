"""Cosine similarity between representations of augmented views (AAVAE paper, Fig. 5).

Several views of each of several images are encoded; the ``(n_images * n_views)^2`` cosine
similarity matrix, ordered by image, shows whether a representation is invariant to the
augmentation (bright diagonal blocks) and still separates images (dark off-diagonal blocks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from cvae.augmentations import build_augment
from cvae.errors import CvaeError

if TYPE_CHECKING:
    from cvae.api import Run

DEFAULT_AUGMENT = {1: "cvae-mnist", 3: "simclr-cifar"}
"""Views for runs trained without augmentation, by image channels (AAVAE Fig. 5 uses SimCLR's)."""


def similarity_summary(
    features: torch.Tensor, n_images: int, n_views: int
) -> tuple[torch.Tensor, float, float]:
    """Cosine similarity matrix of ``features`` and its within/between-image means.

    Args:
        features: ``[n_images * n_views, F]``, rows ordered by image (all views of image 0
            first).

    Returns:
        ``(S, within, between)``: ``S[i, j] = <f_i, f_j> / (|f_i| |f_j|)``, ``[N, N]`` with
        ``N = n_images * n_views``; ``within`` = mean of S over pairs of *different* views of the
        same image (diagonal excluded); ``between`` = mean over pairs of views of different
        images.
    """
    n = n_images * n_views
    if features.ndim != 2 or features.shape[0] != n:
        raise ValueError(f"features must be [{n}, F], got {tuple(features.shape)}")
    if n_views < 2 or n_images < 2:
        raise ValueError("need at least 2 images and 2 views per image")
    f = torch.nn.functional.normalize(features.double(), dim=1)
    sim = f @ f.T
    image = torch.arange(n) // n_views
    same = image[:, None] == image[None, :]
    within = sim[same & ~torch.eye(n, dtype=torch.bool)].mean()
    between = sim[~same].mean()
    return sim.float(), float(within), float(between)


def view_cosine_similarity(
    run: Run,
    images_uint8: torch.Tensor,
    augment: str | None = None,
    n_images: int = 8,
    n_views: int = 8,
    seed: int = 0,
    feature: str = "mu",
) -> dict[str, Any]:
    """Cosine similarities of ``feature`` ("mu" or "h") over augmented views of the first
    ``n_images`` of ``images_uint8`` (``[N, C, H, W]`` uint8, e.g. the test split).

    ``augment`` is an augmentation preset name; None uses the run's training augmentation, or
    ``DEFAULT_AUGMENT`` when it trained without one. Views are drawn from a CPU generator seeded
    with ``seed``; the encoder runs in eval mode.

    Returns:
        ``{"matrix": [N, N] numpy array, "view_cosine_within": {"value", "protocol"},
        "view_cosine_between": {"value", "protocol"}, "protocol": {...}}``.
    """
    if feature not in ("mu", "h"):
        raise CvaeError(f"feature must be 'mu' or 'h', got {feature!r}")
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 4:
        raise CvaeError("view_cosine_similarity expects uint8 images [N, C, H, W]")
    if len(images_uint8) < n_images:
        raise CvaeError(f"need {n_images} images for the view similarity, got {len(images_uint8)}")
    channels = int(images_uint8.shape[1])
    source = "given"
    if augment is None:
        trained = run.config.data.augment
        if trained not in ("none", "auto"):
            augment, source = trained, "the run's training augmentation"
        else:
            augment = DEFAULT_AUGMENT.get(channels, "simclr-cifar")
            source = "default: the run trained without augmentation"
    views = images_uint8[:n_images].float().div(255.0).repeat_interleave(n_views, dim=0)
    views = build_augment(augment)(views, torch.Generator().manual_seed(seed))
    x = views if run.value_range == "01" else views * 2.0 - 1.0
    features = run.features(x, feature).cpu()
    sim, within, between = similarity_summary(features, n_images, n_views)
    protocol = {
        "name": "view_cosine_similarity",
        "reference": "AAVAE paper, Fig. 5",
        "feature_name": feature,
        "feature_dim": int(features.shape[1]),
        "augment": augment,
        "augment_source": source,
        "images": f"first {n_images} images of the given set",
        "n_images": n_images,
        "n_views": n_views,
        "seed": seed,
        "model_mode": "eval",
    }

    def metric(name: str, value: float, definition: str) -> dict[str, Any]:
        return {"value": value, "protocol": {**protocol, "name": name, "definition": definition}}

    return {
        "matrix": sim.numpy(),
        "view_cosine_within": metric(
            "view_cosine_within", within, "mean cosine similarity of different views of one image"
        ),
        "view_cosine_between": metric(
            "view_cosine_between", between, "mean cosine similarity of views of different images"
        ),
        "protocol": protocol,
    }
