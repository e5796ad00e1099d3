"""Python API for trained runs: ``run = cvae.load(run_dir)``, then encode/decode/sample; and
:func:`train`, which records the provenance of data handed to it.

Inputs may be uint8 images (converted like the training data) or float tensors already in the
run's value range. Outputs of :meth:`Run.decode`, :meth:`Run.reconstruct` and :meth:`Run.sample`
are in the run's value range (``run.value_range``); :meth:`Run.to_unit` maps them to [0, 1].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvae.config import RunConfig, ValueRange, from_plain, load_yaml
from cvae.data.base import IN_MEMORY, DataSplits, ImageDataset, from_float, to_float
from cvae.errors import CvaeError, one_line
from cvae.methods import Method, build_method, resolve
from cvae.networks import VAE, ModuleNotImportable
from cvae.training import TrainResult
from cvae.training import train as _train
from cvae.training.checkpoint import CHECKPOINTS, load_run_checkpoint, load_state
from cvae.training.trainer import resolve_device


@dataclass
class Run:
    """A trained run ready for inference (eval mode, no gradients)."""

    run_dir: Path
    config: RunConfig
    method: Method
    image_shape: tuple[int, int, int]
    epoch: int
    device: torch.device

    @property
    def model(self) -> VAE:
        return self.method.model

    @property
    def value_range(self) -> ValueRange:
        return self.method.value_range

    @property
    def dataset_name(self) -> str:
        """The configured dataset, or for splits handed to the API the name they carried."""
        name = self.config.data.dataset
        return read_data_info(self.run_dir).get("name", name) if name == IN_MEMORY else name

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in the value range; float tensors are passed through."""
        x = to_float(images, self.value_range) if images.dtype == torch.uint8 else images.float()
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != self.image_shape:
            raise CvaeError(
                f"expected images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        return x.to(self.device)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Model-range images -> [0, 1] (for plotting and FID)."""
        return from_float(x, self.value_range)

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [N, C, H, W] -> (mu, logvar)``, each ``[N, d]``, batched."""
        x = self.to_input(images)
        parts = [self.model.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def features(
        self, images: torch.Tensor, which: str = "mu", batch_size: int = 1024
    ) -> torch.Tensor:
        """Representation for probes: ``mu`` or ``h`` (the encoder's pre-projection features,
        for encoders that expose ``features(x)``, e.g. the AAVAE ResNet)."""
        if which == "mu":
            return self.encode(images, batch_size)[0]
        features = getattr(self.model.encoder, "features", None)
        if features is None:
            raise CvaeError(f"the {self.config.model.arch} encoder exposes no 'h' features")
        x = self.to_input(images)
        parts = [features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        return torch.cat(parts)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [N, d] -> images [N, C, H, W]`` in the value range."""
        return self.model.decode(z.to(self.device).float())

    @torch.no_grad()
    def reconstruct(
        self, images: torch.Tensor, sample: bool = False, seed: int = 0
    ) -> torch.Tensor:
        """Decode the posterior mean (or a posterior sample with ``sample=True``)."""
        mu, logvar = self.encode(images)
        if sample:
            gen = torch.Generator(device=self.device).manual_seed(seed)
            mu = self.model.reparameterize(mu, logvar, gen)
        return self.decode(mu)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """Decode ``n`` draws from the N(0, I) prior."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        z = torch.randn(n, self.model.latent_dim, generator=gen, device=self.device)
        return self.decode(z)

    @torch.no_grad()
    def interpolate(self, a: torch.Tensor, b: torch.Tensor, steps: int = 8) -> torch.Tensor:
        """Decode ``steps`` points on the line between mu(a) and mu(b): ``[N, steps, C, H, W]``."""
        mu_a, _ = self.encode(a)
        mu_b, _ = self.encode(b)
        t = torch.linspace(0, 1, steps, device=self.device).view(1, steps, 1)
        z = mu_a.unsqueeze(1) * (1 - t) + mu_b.unsqueeze(1) * t
        return self.decode(z.flatten(0, 1)).view(len(mu_a), steps, *self.image_shape)


EXPORT_WEIGHTS = "model.safetensors"
"""The weights file that marks a folder written by ``cvae export`` (:mod:`cvae.export`)."""


def load(run_dir: str | Path, device: str = "cpu", checkpoint: str = "last") -> Run:
    """Load a run directory written by ``cvae train`` (its ``checkpoint``: ``last`` or ``best``)
    or a folder written by ``cvae export`` (``model.safetensors``, ``config.yaml``,
    ``meta.json``).

    A checkpoint that is not one of this package's runs (missing keys, other shapes, non-finite
    weights) raises a one-line :class:`CvaeError`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CvaeError(f"{run_dir}: run directory not found")
    if checkpoint not in CHECKPOINTS:
        raise CvaeError(f"unknown checkpoint {checkpoint!r}: use {' or '.join(CHECKPOINTS)}")
    try:
        dev = resolve_device(device)
    except RuntimeError:
        raise CvaeError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from None
    if (run_dir / EXPORT_WEIGHTS).is_file():
        path = run_dir / EXPORT_WEIGHTS
        config, image_shape, epoch, state = _read_export(run_dir, dev)
    else:
        path = run_dir / CHECKPOINTS[checkpoint]
        ckpt = load_run_checkpoint(path, map_location=dev)
        config, image_shape, epoch, state = (
            ckpt["config"], ckpt["image_shape"], ckpt["epoch"], ckpt["method"]
        )  # fmt: skip
    try:
        c, h, w = (int(n) for n in image_shape)
        shape = (c, h, w)
        cfg = resolve(from_plain(config), shape)
        method = build_method(cfg, shape).to(dev)
        epoch = int(epoch)
    except ModuleNotImportable as err:  # the run is fine; the user's network module is missing
        raise ModuleNotImportable(f"{path}: {err}") from None
    except (CvaeError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CvaeError(f"{path}: not a checkpoint this cvae can load ({one_line(err)})") from None
    load_state(method, state, path, "model")
    loaded = method.state_dict().items()
    bad = [k for k, v in loaded if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise CvaeError(f"{path}: {len(bad)} tensors hold NaN or inf (e.g. {bad[0]}): it diverged")
    method.eval()
    return Run(run_dir, cfg, method, shape, epoch, dev)


def _read_export(
    folder: Path, device: torch.device
) -> tuple[dict[str, Any], Any, Any, dict[str, torch.Tensor]]:
    """An export folder's (config, image shape, epoch, state dict); unreadable: CvaeError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta = _read_json(folder / "meta.json")
    if meta is None:
        raise CvaeError(f"{folder / 'meta.json'}: missing or unreadable (not a cvae export?)")
    try:
        state = load_file(folder / EXPORT_WEIGHTS, device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CvaeError(f"{folder / EXPORT_WEIGHTS}: unreadable ({one_line(err)})") from None
    return load_yaml(folder / "config.yaml"), meta.get("image_shape"), meta.get("epoch"), state


def train(
    cfg: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    data: DataSplits | None = None,
) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue it with ``resume=True``), as ``cvae train``.

    ``data``: splits to train on instead of loading ``cfg.data.dataset``. The run records their
    sha256 (:func:`handed_over`); unless they are the splits the config names, its dataset is
    ``in-memory`` and evaluating it needs the same data: ``evaluate(run_dir, data=data)``.
    """
    if data is not None:
        cfg, data = handed_over(cfg, data)
    return _train(cfg, run_dir, resume=resume, data=data)


def handed_over(cfg: RunConfig, data: DataSplits) -> tuple[RunConfig, DataSplits]:
    """Config and splits whose ``info`` tells that ``data`` was handed to the API, with its hash.

    Splits that :func:`cvae.load_data` made for ``cfg.data`` (same dataset, sizes and split
    seed in ``info``) keep the config's dataset; any others make it ``in-memory``.
    """
    sizes = {name: None if split is None else len(split) for name, split in _splits(data)}
    info = data.info
    loaded = (
        info.get("dataset") == cfg.data.dataset
        and info.get("sizes") == sizes
        and info.get("split_seed") == cfg.data.split_seed
    )
    if not loaded:
        cfg = from_plain(cfg.to_dict())
        cfg.data.dataset = IN_MEMORY
        info = {
            "dataset": IN_MEMORY,
            "source": "tensors handed to the Python API (train(..., data=...))",
            "name": data.name,
            "sizes": sizes,
            "image_shape": list(data.train.shape),
            "given_info": info,
        }
    info = {**info, "handed_to_api": True, "sha256": splits_sha256(data)}
    return cfg, DataSplits(data.name, data.train, data.val, data.test, info)


def splits_sha256(data: DataSplits) -> dict[str, str | None]:
    """sha256 of each split's uint8 images (and labels): ``{"train", "val", "test"}``."""
    return {name: None if split is None else dataset_sha256(split) for name, split in _splits(data)}


def dataset_sha256(data: ImageDataset) -> str:
    """sha256 over the shape, the uint8 image bytes and the int64 labels of ``data``."""
    h = hashlib.sha256(repr(tuple(data.images.shape)).encode())
    for chunk in data.images.split(4096):  # bounded memory for memory-mapped images
        h.update(chunk.detach().cpu().contiguous().numpy().data)
    if data.labels is not None:
        h.update(data.labels.detach().cpu().to(torch.int64).contiguous().numpy().data)
    return h.hexdigest()


def _splits(data: DataSplits) -> list[tuple[str, ImageDataset | None]]:
    return [("train", data.train), ("val", data.val), ("test", data.test)]


def read_data_info(run_dir: Path) -> dict[str, Any]:
    """The run's ``data.json`` (what it was trained on; in an export folder, ``meta.json``'s
    ``data``), or ``{}`` when absent or unreadable."""
    info = _read_json(run_dir / "data.json")
    if info is None:
        info = (_read_json(run_dir / "meta.json") or {}).get("data")
    return info if isinstance(info, dict) else {}


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or None when absent, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
