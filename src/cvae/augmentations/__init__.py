"""Batched, generator-driven image augmentation (torchvision semantics, no per-image loops).

Usage::

    augment = build_augment("cvae-mnist")  # or build_augment(AugmentConfig(...))
    view = augment(x, generator)  # x: float [B, C, H, W] in [0, 1]; same shape, device, dtype
"""

from cvae.augmentations.config import PRESETS, AugmentConfig
from cvae.augmentations.pipeline import AugmentParams, BatchAugment, build_augment

__all__ = ["PRESETS", "AugmentConfig", "AugmentParams", "BatchAugment", "build_augment"]
