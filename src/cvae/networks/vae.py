"""The VAE model: injectable encoder/decoder, output activation and projection head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cvae.config import Activation, ModelConfig
from cvae.networks.conv import ProjectionHead

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "identity": lambda t: t,
}


class VAE(nn.Module):
    """Gaussian-posterior VAE.

    ``encoder(x) -> (mu, logvar)`` and ``decoder(z) -> logits`` can be any modules with those
    signatures (pythae-style injection); ``head`` maps a latent sample to the contrastive space.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent_dim: int,
        output_activation: Activation = "sigmoid",
        head: nn.Module | None = None,
        deterministic: bool = False,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.latent_dim = latent_dim
        self.output_activation = output_activation
        self.deterministic = deterministic

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, C, H, W] -> (mu, logvar)``, each ``[B, d]``."""
        mu, logvar = self.encoder(x)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.decoder(z)
        return out

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """Decoder logits -> images in the data's value range."""
        return ACTIVATIONS[self.output_activation](logits)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, d] -> x_hat [B, C, H, W]`` in the data's value range."""
        return self.activate(self.decoder(z))

    @staticmethod
    def reparameterize(
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``z = mu + eps * exp(logvar / 2)``, eps ~ N(0, I) drawn from ``generator`` unless given
        (a given ``eps`` is cast to ``mu``'s dtype: a bf16 draw equals an fp32 draw cast)."""
        if eps is None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar)

    def sample_latent(
        self,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The latent fed to the decoder: ``mu`` for a deterministic autoencoder, else a sample."""
        return mu if self.deterministic else self.reparameterize(mu, logvar, generator, eps)


def build_model(
    cfg: ModelConfig,
    image_shape: tuple[int, int, int],
    output_activation: Activation,
    with_head: bool,
) -> VAE:
    """The VAE of ``cfg.arch`` (from ``cfg.module`` when set) for ``image_shape = (C, H, W)``."""
    from cvae.networks.registry import build_networks

    encoder, decoder = build_networks(
        cfg.arch,
        image_shape,
        cfg.latent_dim,
        channels=cfg.channels,
        batchnorm=cfg.batchnorm,
        module=cfg.module,
    )
    head = (
        ProjectionHead(cfg.latent_dim, cfg.projection, cfg.projection_final_relu)
        if with_head and cfg.projection
        else None
    )
    return VAE(encoder, decoder, cfg.latent_dim, output_activation, head, bool(cfg.deterministic))
