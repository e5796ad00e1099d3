"""Encoder/decoder architectures by name: ``build_networks(arch, image_shape, latent_dim)``.

Every encoder maps ``x [B, C, H, W] -> (mu [B, d], logvar [B, d])`` with no activation on either;
every decoder maps ``z [B, d] -> logits [B, C, H, W]`` (the VAE applies the output activation).

=================  ============================================  ==================================
arch               what                                          sizes (square, any C)
=================  ============================================  ==================================
``conv``           CVAE paper conv VAE (``conv.py``); needs       any size the convs reach
                   ``channels``; honours ``batchnorm``
``pv``             PyTorch-VAE VanillaVAE / BTVAE (spec 4.2);     divisible by 2**len(channels)
                   ``channels`` = hidden dims (default 32..512)   (64 with the default)
``crvae-medium``   CR-VAE "medium" encoder + decoder (spec 5.2)   28 and 32 only
``resnet18``       AAVAE ResNet-18 encoder + decoder18            divisible by 8 (32, 64, ...)
``resnet34``       AAVAE ResNet-34 encoder + decoder34            divisible by 8
``resnet50``       AAVAE ResNet-50 encoder + decoder50 (6.2)      divisible by 8
=================  ============================================  ==================================

The fixed architectures (``crvae-medium``, ``resnet*``) ignore ``channels`` and ``batchnorm``
(their normalisation is part of the reference design); ``pv`` always uses BatchNorm.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cvae.errors import ConfigError
from cvae.networks.conv import ConvDecoder, ConvEncoder
from cvae.networks.crvae_nets import CRVAEDecoder, CRVAEMediumEncoder
from cvae.networks.pv import DEFAULT_HIDDEN, PVDecoder, PVEncoder
from cvae.networks.resnet import ResNetDecoder, ResNetEncoder

#: ``builder(in_channels, size, latent_dim, channels, batchnorm) -> (encoder, decoder)``
Builder = Callable[[int, int, int, list[int] | None, bool], tuple[nn.Module, nn.Module]]


def _conv(
    c: int, size: int, d: int, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    if not channels:
        raise ConfigError("the conv architecture needs a non-empty 'channels' list")
    encoder = ConvEncoder(c, size, channels, d, batchnorm)
    return encoder, ConvDecoder(c, size, channels, d, batchnorm)


def _pv(
    c: int, size: int, d: int, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    hidden = list(channels) if channels else list(DEFAULT_HIDDEN)
    return PVEncoder(c, size, d, hidden), PVDecoder(c, size, d, hidden)


def _crvae_medium(
    c: int, size: int, d: int, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    return CRVAEMediumEncoder(c, size, d), CRVAEDecoder(c, size, d)


def _resnet(arch: str) -> Builder:
    def build(
        c: int, size: int, d: int, channels: list[int] | None, batchnorm: bool
    ) -> tuple[nn.Module, nn.Module]:
        decoder = ResNetDecoder(c, size, d, arch)  # validates the size before the big encoder
        return ResNetEncoder(c, d, arch), decoder

    return build


ARCHITECTURES: dict[str, Builder] = {
    "conv": _conv,
    "pv": _pv,
    "crvae-medium": _crvae_medium,
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
}


def build_networks(
    arch: str,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    channels: list[int] | None = None,
    batchnorm: bool = False,
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` of architecture ``arch`` for ``image_shape = (C, H, W)``."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    c, h, w = image_shape
    if h != w:
        raise ConfigError(f"the {arch} architecture needs square images, got {h}x{w}")
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be positive, got {latent_dim}")
    return ARCHITECTURES[arch](c, h, latent_dim, channels, batchnorm)
