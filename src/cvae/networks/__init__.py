"""Encoders, decoders and heads."""

from cvae.networks.conv import ConvDecoder, ConvEncoder, PaddedConvTranspose2d, ProjectionHead
from cvae.networks.vae import VAE, build_model

__all__ = [
    "VAE",
    "ConvDecoder",
    "ConvEncoder",
    "PaddedConvTranspose2d",
    "ProjectionHead",
    "build_model",
]
