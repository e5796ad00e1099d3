"""Encoders, decoders and heads."""

from cvae.networks.conv import ConvDecoder, ConvEncoder, PaddedConvTranspose2d, ProjectionHead
from cvae.networks.registry import ARCHITECTURES, build_networks
from cvae.networks.vae import VAE, build_model

__all__ = [
    "ARCHITECTURES",
    "VAE",
    "build_networks",
    "ConvDecoder",
    "ConvEncoder",
    "PaddedConvTranspose2d",
    "ProjectionHead",
    "build_model",
]
