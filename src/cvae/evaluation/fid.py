"""FID of decoded prior samples against real images (CVAE, BTVAE papers; docs/fid.md).

Two feature spaces, one pipeline (torchmetrics ``FrechetInceptionDistance``):

* ``fid_domain``: penultimate features (128-d) of a small CNN classifier trained on the dataset's
  own training split, cached per dataset + shape + training data. Works offline, core install.
* ``fid_inception``: the TF-FID Inception-v3 (torch-fidelity weights, 2048-d pool or 64-d first
  pool as in the BTVAE code), through the optional extra ``cvae[fid]``.

Both sets reach the extractors in the same form: uint8 ``[N, C, H, W]``. Fakes are decoder
outputs mapped to [0, 1] by ``run.to_unit`` (clamped, as in the BTVAE code) and rounded to
``255·x``; reals are the stored uint8 images. (The CVAE reference compared [0, 1] fakes with
[-1, 1] reals.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cvae.api import Run
from cvae.data import ImageDataset
from cvae.data.cache import save_cache
from cvae.errors import CvaeError
from cvae.networks.classifier import DomainClassifier

INCEPTION_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
    "weights-inception-2015-12-05-6726825d.pth"
)
INCEPTION_DIMS = (64, 192, 768, 2048)
_CLASSIFIER_VERSION = 1


def default_cache_dir() -> Path:
    """``$CVAE_CACHE`` if set, else ``~/.cache/cvae``."""
    return Path(os.environ.get("CVAE_CACHE") or "~/.cache/cvae").expanduser()


def default_inception_weights() -> Path:
    """Where torch-fidelity caches the Inception weights (``torch.hub`` checkpoints folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ``d² = |mu1 - mu2|² + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^½)``; ``mu: [F]``, ``sigma: [F, F]``
    symmetric PSD (torch or numpy). ``S1 S2`` is similar to ``A S2 A`` with ``A = S1^½``
    (symmetric), so its root's trace is the sum of the square roots of the eigenvalues of a
    symmetric PSD matrix: ``eigh`` only, no complex ``sqrtm``, no epsilon added; eigenvalues
    below zero by rounding are clipped to 0.
    """
    m1, m2 = (np.asarray(_numpy(m), dtype=np.float64) for m in (mu1, mu2))
    s1, s2 = (np.asarray(_numpy(s), dtype=np.float64) for s in (sigma1, sigma2))
    f = m1.shape[0]
    if m1.shape != (f,) or m2.shape != (f,) or s1.shape != (f, f) or s2.shape != (f, f):
        raise ValueError(
            f"expected mu [F] and sigma [F, F]; got {m1.shape}, {s1.shape}, {m2.shape}, {s2.shape}"
        )
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = root1 @ s2 @ root1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def _numpy(x: Any) -> Any:
    return x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else x


class DomainFeatures(nn.Module):
    """uint8 ``[N, C, H, W]`` -> ``/255`` -> the classifier's penultimate features ``[N, 128]``."""

    def __init__(self, classifier: DomainClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.feature_dim  # read by torchmetrics

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float() / 255.0)


def domain_classifier(
    train: ImageDataset,
    *,
    dataset: str,
    epochs: int = 2,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    cache_dir: Path | None = None,
    device: torch.device | str = "cpu",
) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train (or load from the cache) the domain classifier on ``train`` (labels required).

    Adam(lr), cross-entropy, ``epochs`` passes over seeded random batches of the whole in-memory
    split; the seed also fixes the initialisation. Cached at
    ``<cache_dir>/fid/domain-<dataset>-<CxHxW>-<key>.pt`` (atomic write, ``weights_only`` load),
    keyed by the training images, labels and every setting above. Returns the classifier (eval
    mode, on ``device``) and a description for the protocol.
    """
    if train.labels is None:
        raise CvaeError(f"{dataset}: the domain-classifier FID needs a labeled training split")
    c, h, w = train.shape
    n_classes = int(train.labels.max()) + 1
    settings = {
        "version": _CLASSIFIER_VERSION,
        "dataset": dataset,
        "shape": [c, h, w],
        "n_classes": n_classes,
        "n_train": len(train),
        "epochs": epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
    }
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode())
    digest.update(train.tensor.cpu().contiguous().numpy().tobytes())
    digest.update(train.labels.cpu().contiguous().numpy().tobytes())
    path = (
        (cache_dir or default_cache_dir())
        / "fid"
        / (f"domain-{dataset}-{c}x{h}x{w}-{digest.hexdigest()[:16]}.pt")
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainClassifier(c, n_classes)
    cached = _load_state(path)
    if cached is None:
        _train(model, train, epochs, seed, batch_size, lr, device)
        save_cache(path, {k: v.cpu() for k, v in model.state_dict().items()})
    else:
        model.load_state_dict(cached)
    info = {
        "arch": "DomainClassifier: conv3x3/s2 16, conv3x3/s2 32, avgpool 7x7, fc 128 + ReLU",
        "training": f"Adam lr {lr}, batch {batch_size}, {epochs} epochs, cross-entropy",
        "seed": seed,
        "train_split_n": len(train),
        "n_classes": n_classes,
        "cache_file": str(path),
        "cache_hit": cached is not None,
    }
    return model.to(device).eval(), info


def _load_state(path: Path) -> dict[str, torch.Tensor] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt or foreign cache file is retrained, never trusted
        return None


def _train(
    model: DomainClassifier,
    train: ImageDataset,
    epochs: int,
    seed: int,
    batch_size: int,
    lr: float,
    device: torch.device | str,
) -> None:
    model.to(device).train()
    x = train.images.to(device)
    y = train.labels.to(device)  # type: ignore[union-attr]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            idx = idx.to(device)
            loss = nn.functional.cross_entropy(model(x[idx].float() / 255.0), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()


@torch.no_grad()
def classifier_accuracy(
    model: DomainClassifier, data: ImageDataset, batch_size: int = 1000
) -> float:
    """Top-1 accuracy of ``model`` on a labeled uint8 dataset."""
    device = next(model.parameters()).device
    correct = 0
    labels = data.labels.split(batch_size)  # type: ignore[union-attr]
    for x, y in zip(data.images.split(batch_size), labels, strict=True):
        pred = model(x.to(device).float() / 255.0).argmax(1)
        correct += int((pred.cpu() == y).sum())
    return correct / len(data)


@torch.no_grad()
def prior_samples_uint8(run: Run, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """The ``n`` draws of ``run.sample(n, seed)``, decoded in batches, as uint8 on the CPU:
    ``round(255 · run.to_unit(x))`` (clamped to [0, 1] first)."""
    gen = torch.Generator(device=run.device).manual_seed(seed)
    z = torch.randn(n, run.model.latent_dim, generator=gen, device=run.device)
    parts = [to_uint8(run.to_unit(run.decode(chunk))).cpu() for chunk in z.split(batch_size)]
    return torch.cat(parts)


def to_uint8(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 ``round(255 · x)`` (clamped first)."""
    return unit.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


@torch.no_grad()
def torchmetrics_fid(
    feature: int | nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    weights_path: Path | None = None,
) -> dict[str, Any]:
    """FID between uint8 image sets ``real`` and ``fake`` ``[N, C, H, W]`` with torchmetrics.

    ``feature``: a module mapping uint8 images to ``[N, F]``, or an Inception dimension
    (``weights_path`` then locates the torch-fidelity weights; grey images are replicated to 3
    channels). torchmetrics accumulates fp64 feature sums and outer products; the reported
    ``value`` is :func:`frechet_distance` of those statistics and ``value_torchmetrics`` is
    torchmetrics' own eigvals-based result on them, kept as a cross-check.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if isinstance(feature, int):
        metric = FrechetInceptionDistance(
            feature=feature, feature_extractor_weights_path=str(weights_path)
        )
        if real.shape[1] == 1:
            real, fake = real.expand(-1, 3, -1, -1), fake.expand(-1, 3, -1, -1)
    else:
        metric = FrechetInceptionDistance(feature=feature)
    metric = metric.to(device)
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(batch_size):
            metric.update(chunk.to(device), real=is_real)
    stats = [_metric_stats(metric, prefix) for prefix in ("real", "fake")]
    return {
        "value": frechet_distance(*stats[0], *stats[1]),
        "value_torchmetrics": float(metric.compute()),
        "feature_dim": int(stats[0][0].shape[0]),
    }


def _metric_stats(metric: nn.Module, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """fp64 mean and unbiased covariance from torchmetrics' running sums (its own formula)."""
    n = getattr(metric, f"{prefix}_features_num_samples").double()
    mean = getattr(metric, f"{prefix}_features_sum") / n
    cov_sum = getattr(metric, f"{prefix}_features_cov_sum")
    return mean, (cov_sum - n * torch.outer(mean, mean)) / (n - 1)


def inception_unavailable(weights: Path | None) -> str | None:
    """One line saying what to install/download for ``fid_inception``, or None if it can run."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return "install the optional extra: pip install 'cvae[fid]' (torch-fidelity)"
    path = weights or default_inception_weights()
    if not path.is_file():
        return (
            f"Inception weights not found at {path}: download {INCEPTION_URL} there "
            "or pass --fid-weights PATH"
        )
    return None


def fid_metrics(
    run: Run,
    real: ImageDataset,
    train: ImageDataset,
    *,
    n: int = 10_000,
    seed: int = 0,
    batch_size: int = 500,
    split_name: str = "test",
    inception_weights: Path | None = None,
    inception_dims: int = 2048,
    cache_dir: Path | None = None,
    classifier_epochs: int = 2,
) -> dict[str, dict[str, Any]]:
    """``{"fid_domain": ..., "fid_inception": ...}`` for ``n`` decoded N(0, I) prior samples
    (seed ``seed``) against the first ``min(n, len(real))`` images of the ``split_name`` split.

    ``train`` (labeled) trains the domain classifier, whose top-1 accuracy on ``real`` (when
    labeled) is recorded. ``inception_weights``: torch-fidelity Inception weights (default: its
    ``torch.hub`` cache); ``inception_dims``: 2048 (standard) or 64 (BTVAE code). A metric that
    cannot run has ``value: None`` and an ``unavailable`` line saying how to enable it.
    """
    if inception_dims not in INCEPTION_DIMS:
        raise CvaeError(f"inception_dims must be one of {INCEPTION_DIMS}, got {inception_dims}")
    if n < 2 or len(real) < 2:
        raise CvaeError(f"FID needs at least 2 real and 2 generated images, got {len(real)}, {n}")
    if real.shape != run.image_shape:
        raise CvaeError(f"real images are {real.shape}, the run generates {run.image_shape}")
    n_real = min(n, len(real))
    real_images = real.images[:n_real]
    fake_images = prior_samples_uint8(run, n, seed, batch_size)
    common = {
        "real_split": split_name,
        "real": f"first {n_real} images of the {split_name} split (uint8 as stored)",
        "fake": (
            f"{n} decoded N(0, I) prior samples (run.sample draws, seed {seed}), "
            "run.to_unit -> [0, 1] (clamped) -> round(255 x) uint8"
        ),
        "n_real": n_real,
        "n_fake": n,
        "seed": seed,
        "value_range": "both sets uint8 [0, 255] into the same extractor mapping",
        "statistics": "fp64 mean and unbiased covariance (torchmetrics running sums)",
        "distance": "frechet_distance (eigh-based, fp64)",
        "checkpoint_epoch": run.epoch,
    }
    return {
        "fid_domain": _domain(
            run,
            real_images,
            fake_images,
            real,
            train,
            common,
            batch_size,
            cache_dir,
            classifier_epochs,
        ),
        "fid_inception": _inception(
            run, real_images, fake_images, common, batch_size, inception_weights, inception_dims
        ),
    }


def _domain(
    run: Run,
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    real: ImageDataset,
    train: ImageDataset,
    common: dict[str, Any],
    batch_size: int,
    cache_dir: Path | None,
    epochs: int,
) -> dict[str, Any]:
    protocol: dict[str, Any] = {"name": "fid_domain", "title": "FID (domain classifier)", **common}
    if train.labels is None:
        return {
            "value": None,
            "unavailable": (
                "needs a labeled training split to train the domain classifier "
                "(folder dataset: one sub-folder per class)"
            ),
            "protocol": protocol,
        }
    model, info = domain_classifier(
        train,
        dataset=run.dataset_name,
        epochs=epochs,
        cache_dir=cache_dir,
        device=run.device,
    )
    accuracy = None if real.labels is None else classifier_accuracy(model, real)
    result = torchmetrics_fid(
        DomainFeatures(model), real_images, fake_images, batch_size=batch_size, device=run.device
    )
    protocol.update(
        feature_extractor="penultimate layer (128-d, after ReLU) of the domain classifier",
        feature_dim=result.pop("feature_dim"),
        classifier=info,
        classifier_accuracy=accuracy,
        classifier_accuracy_split=f"all {len(real)} images of the {common['real_split']} split",
    )
    return {**result, "protocol": protocol}


def _inception(
    run: Run,
    real_images: torch.Tensor,
    fake_images: torch.Tensor,
    common: dict[str, Any],
    batch_size: int,
    weights: Path | None,
    dims: int,
) -> dict[str, Any]:
    path = weights or default_inception_weights()
    protocol: dict[str, Any] = {
        "name": "fid_inception",
        "title": f"FID (Inception-v3, {dims}-d)",
        **common,
        "feature_extractor": (
            f"torch-fidelity FeatureExtractorInceptionV3 (TF-FID weights), {dims}-d "
            + ("pool3 features" if dims == 2048 else "spatially averaged intermediate features")
            + ", via torchmetrics; uint8 resized to 299 inside (bilinear, antialias)"
        ),
        "feature_dim": dims,
        "weights": str(path),
        "channels": "grey replicated to 3" if real_images.shape[1] == 1 else "RGB",
    }
    missing = inception_unavailable(weights)
    if missing is None and real_images.shape[1] not in (1, 3):
        missing = f"Inception needs 1- or 3-channel images, got {real_images.shape[1]}"
    if missing is not None:
        return {"value": None, "unavailable": missing, "protocol": protocol}
    result = torchmetrics_fid(
        dims, real_images, fake_images, batch_size=batch_size, device=run.device, weights_path=path
    )
    result.pop("feature_dim")
    return {**result, "protocol": protocol}
