"""Seeded synthetic images with class-dependent structure, for benchmarks and shape tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvae.data.base import ImageDataset, Loaded


def synthetic(
    shape: tuple[int, int, int] = (1, 28, 28),
    n_train: int = 2048,
    n_test: int = 512,
    num_classes: int = 10,
    seed: int = 0,
) -> Loaded:
    """train and test uint8 images of ``shape``: a per-class smooth random template + noise.

    Each class has a fixed low-frequency template (4x4 Gaussian noise upsampled bilinearly); each
    image is its class template plus its own smooth variation and pixel noise, so a linear probe
    on good features separates the classes well above chance.
    """
    c, h, w = shape
    g = torch.Generator().manual_seed(seed)

    def smooth(n: int) -> torch.Tensor:
        coarse = torch.randn(n, c, 4, 4, generator=g)
        return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)

    templates = smooth(num_classes)

    def sample(n: int) -> ImageDataset:
        labels = torch.randint(num_classes, (n,), generator=g)
        x = templates[labels] + 0.4 * smooth(n) + 0.15 * torch.randn(n, c, h, w, generator=g)
        images = torch.sigmoid(1.5 * x).mul(255.0).round().to(torch.uint8)
        return ImageDataset(images, labels, [str(i) for i in range(num_classes)])

    train = sample(n_train)
    extra = {"shape": list(shape), "seed": seed}
    return Loaded(train, sample(n_test), "synthetic", extra=extra)
