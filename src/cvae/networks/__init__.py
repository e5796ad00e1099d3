"""Encoders, decoders and heads."""

from cvae.networks.conv import ConvDecoder, ConvEncoder, PaddedConvTranspose2d, ProjectionHead
from cvae.networks.registry import (
    ARCHITECTURES,
    Builder,
    DecoderNet,
    EncoderNet,
    ModuleNotImportable,
    build_networks,
    register_architecture,
)
from cvae.networks.vae import VAE, build_model

__all__ = [
    "ARCHITECTURES",
    "VAE",
    "Builder",
    "DecoderNet",
    "EncoderNet",
    "ModuleNotImportable",
    "build_networks",
    "register_architecture",
    "ConvDecoder",
    "ConvEncoder",
    "PaddedConvTranspose2d",
    "ProjectionHead",
    "build_model",
]
