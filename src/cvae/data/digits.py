"""scikit-learn's bundled digits: 1797 real 8x8 grayscale images, available offline."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits as _sklearn_digits

from cvae.data.base import ImageDataset, Loaded

TEST_FRACTION = 0.2
TEST_SEED = 0


def load_digits() -> Loaded:
    """train and test as uint8 ``[N, 1, 8, 8]`` with values ``round(v * 255 / 16)``.

    The data has no official test split, so a fixed random 20% (``torch.randperm`` seeded with
    ``TEST_SEED = 0``, not stratified) is held out: 1438 train and 359 test images.
    """
    bunch = _sklearn_digits()
    images = torch.from_numpy(bunch.images).mul(255.0 / 16.0).round().to(torch.uint8)
    data = ImageDataset(
        images.unsqueeze(1), torch.from_numpy(bunch.target).long(), [str(i) for i in range(10)]
    )
    n_test = int(round(len(data) * TEST_FRACTION))
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(TEST_SEED))
    return Loaded(
        data.subset(perm[n_test:]),
        data.subset(perm[:n_test]),
        "sklearn.datasets.load_digits",
        extra={"test_split": f"random {TEST_FRACTION:.0%}, seed {TEST_SEED}"},
    )
