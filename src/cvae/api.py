"""Python API for trained runs: ``run = cvae.load(run_dir)``, then encode/decode/sample.

Inputs may be uint8 images (converted like the training data) or float tensors already in the
run's value range. Outputs of :meth:`Run.decode`, :meth:`Run.reconstruct` and :meth:`Run.sample`
are in the run's value range (``run.value_range``); :meth:`Run.to_unit` maps them to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cvae.config import RunConfig, from_plain, resolve
from cvae.data.base import from_float, to_float
from cvae.errors import CvaeError
from cvae.methods import Method, build_method
from cvae.networks import VAE
from cvae.training.checkpoint import CHECKPOINT, load_run_checkpoint, load_state
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
    def value_range(self) -> str:
        return self.config.data.value_range

    def to_input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 -> float in the value range; float tensors are passed through."""
        x = to_float(images, self.value_range) if images.dtype == torch.uint8 else images.float()  # type: ignore[arg-type]
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != self.image_shape:
            raise CvaeError(
                f"expected images of shape {self.image_shape}, got {tuple(x.shape[1:])}"
            )
        return x.to(self.device)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Model-range images -> [0, 1] (for plotting and FID)."""
        return from_float(x, self.value_range)  # type: ignore[arg-type]

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
        if not hasattr(self.model.encoder, "features"):
            raise CvaeError(f"the {self.config.model.arch} encoder exposes no 'h' features")
        x = self.to_input(images)
        parts = [
            self.model.encoder.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)
        ]
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


def load(run_dir: str | Path, device: str = "cpu") -> Run:
    """Load the last checkpoint of a run directory written by ``cvae train``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CvaeError(f"{run_dir}: run directory not found")
    dev = resolve_device(device)
    path = run_dir / CHECKPOINT
    ckpt = load_run_checkpoint(path, map_location=dev)
    shape = tuple(ckpt["image_shape"])
    cfg = resolve(from_plain(ckpt["config"]), shape)  # type: ignore[arg-type]
    method = build_method(cfg, shape).to(dev)  # type: ignore[arg-type]
    load_state(method, ckpt["method"], path, "model")
    method.eval()
    return Run(run_dir, cfg, method, shape, ckpt["epoch"], dev)  # type: ignore[arg-type]
