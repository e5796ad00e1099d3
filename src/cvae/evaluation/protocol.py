"""The fields every probe's protocol shares."""

from __future__ import annotations

from typing import Any


def probe_protocol(
    name: str, split: str, n_train: int, n_test: int, feature_dim: int, feature_name: str
) -> dict[str, Any]:
    """Protocol fields common to all probes (top-1 accuracy of labels from frozen features)."""
    return {
        "name": name,
        "split": split,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "feature_dim": int(feature_dim),
        "feature_name": feature_name,
        "metric": "top-1 accuracy",
    }
