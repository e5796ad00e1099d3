"""Encoder/decoder architectures by name: ``build_networks(arch, image_shape, latent_dim)``.

Every encoder maps ``x [B, C, H, W] -> (mu [B, d], logvar [B, d])`` with no activation on either
(:class:`EncoderNet`); every decoder maps ``z [B, d] -> logits [B, C, H, W]`` (:class:`DecoderNet`;
the VAE applies the output activation). A :class:`Builder` makes the pair.

=================  ============================================  ==================================
arch               what                                          sizes (square, any C)
=================  ============================================  ==================================
``conv``           CVAE paper conv VAE (``conv.py``); needs       any size the convs reach
                   ``channels``; honours ``batchnorm``
``pv``             PyTorch-VAE VanillaVAE / BTVAE [BT-VAE];       divisible by 2**len(channels)
                   ``channels`` = hidden dims (default 32..512)   (64 with the default)
``crvae-medium``   CR-VAE "medium" encoder + decoder [CR-VAE]    28 and 32 only
``resnet18``       AAVAE ResNet-18 encoder + decoder18            divisible by 8 (32, 64, ...)
``resnet34``       AAVAE ResNet-34 encoder + decoder34            divisible by 8
``resnet50``       AAVAE ResNet-50 encoder + decoder50 (6.2)      divisible by 8
=================  ============================================  ==================================

The fixed architectures (``crvae-medium``, ``resnet*``) ignore ``channels`` and ``batchnorm``
(their normalisation is part of the reference design); ``pv`` always uses BatchNorm.

A user's architecture (docs/networks.md) is a builder registered with
:func:`register_architecture` in a module that ``model.module`` names: :func:`import_module`
imports it before the name is looked up, and the run's config records it, so every later load
imports it again. Its networks are checked on a batch of two zero images when built.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import torch
from torch import nn

from cvae.errors import ConfigError, one_line
from cvae.networks.conv import ConvDecoder, ConvEncoder
from cvae.networks.crvae_nets import CRVAEDecoder, CRVAEMediumEncoder
from cvae.networks.pv import DEFAULT_HIDDEN, PVDecoder, PVEncoder
from cvae.networks.resnet import ResNetDecoder, ResNetEncoder


class EncoderNet(Protocol):
    """An ``nn.Module`` mapping ``x [B, C, H, W] -> (mu [B, d], logvar [B, d])``, no activation.

    Optional: ``features(x) -> h [B, F]``, the pre-latent features some probes use (``h``)."""

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class DecoderNet(Protocol):
    """An ``nn.Module`` mapping ``z [B, d] -> logits [B, C, H, W]`` (before the activation)."""

    def __call__(self, z: torch.Tensor) -> torch.Tensor: ...


class Builder(Protocol):
    """``builder(image_shape, latent_dim, *, channels, batchnorm) -> (encoder, decoder)``.

    ``image_shape`` is ``(C, H, W)``; ``channels`` (``model.channels``: a list of widths, or
    None) and ``batchnorm`` (``model.batchnorm``) are the config's options, which a builder may
    ignore (declare ``**options``). Both returned networks are ``nn.Module``s satisfying
    :class:`EncoderNet` and :class:`DecoderNet`. Bad options: raise :class:`ConfigError`."""

    def __call__(
        self,
        image_shape: tuple[int, int, int],
        latent_dim: int,
        /,
        *,
        channels: list[int] | None,
        batchnorm: bool,
    ) -> tuple[nn.Module, nn.Module]: ...


def _conv(
    image_shape: tuple[int, int, int], d: int, *, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    if not channels:
        raise ConfigError("the conv architecture needs a non-empty 'channels' list")
    c, size, _ = image_shape
    encoder = ConvEncoder(c, size, channels, d, batchnorm)
    return encoder, ConvDecoder(c, size, channels, d, batchnorm)


def _pv(
    image_shape: tuple[int, int, int], d: int, *, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    hidden = list(channels) if channels else list(DEFAULT_HIDDEN)
    c, size, _ = image_shape
    return PVEncoder(c, size, d, hidden), PVDecoder(c, size, d, hidden)


def _crvae_medium(
    image_shape: tuple[int, int, int], d: int, *, channels: list[int] | None, batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    c, size, _ = image_shape
    return CRVAEMediumEncoder(c, size, d), CRVAEDecoder(c, size, d)


def _resnet(arch: str) -> Builder:
    def build(
        image_shape: tuple[int, int, int], d: int, *, channels: list[int] | None, batchnorm: bool
    ) -> tuple[nn.Module, nn.Module]:
        c, size, _ = image_shape
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
"""Every architecture by name: the built-in ones and those registered since."""

BUILTIN: frozenset[str] = frozenset(ARCHITECTURES)

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder`` (a :class:`Builder`) as architecture ``name``::

        @cvae.networks.register_architecture("mlp")
        def build(image_shape, latent_dim, **options): return MLPEncoder(...), MLPDecoder(...)

    Registering a built-in name, or a name another function (module and qualified name) holds,
    raises :class:`ConfigError`; the same function registered again (a re-import) replaces it.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"an architecture name must be a non-empty string, got {name!r}")

    def register(builder: Builder) -> Builder:
        held = ARCHITECTURES.get(name)
        if name in BUILTIN or (held is not None and _origin(held) != _origin(builder)):
            raise ConfigError(f"architecture {name!r} is already registered ({_origin(held)})")
        ARCHITECTURES[name] = builder
        return builder

    return register


def _origin(builder: object) -> str:
    module = getattr(builder, "__module__", None) or "?"
    return f"{module}.{getattr(builder, '__qualname__', type(builder).__name__)}"


class ModuleNotImportable(ConfigError):
    """``model.module`` cannot be imported: the user's code is missing or broken, not the run."""


def import_module(module: str | None) -> None:
    """Import ``module`` (``model.module``), so that the architectures it registers exist.

    It must be importable by name (on ``sys.path``, e.g. through ``PYTHONPATH``); importing it
    runs its code. Not importable, or failing on import: one-line :class:`ModuleNotImportable`."""
    if module is None:
        return
    if not _MODULE_NAME.fullmatch(module):
        raise ModuleNotImportable(
            f"model.module {module!r} is not a module name (e.g. my_pkg.my_nets): "
            "put its folder on PYTHONPATH and give the module's dotted name, not a file path"
        )
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise ModuleNotImportable(
            f"model.module {module!r} cannot be imported ({one_line(err, 80)}); "
            "it must be on sys.path, e.g. PYTHONPATH=its/folder"
        ) from None
    except Exception as err:  # the user's module failed while importing: one line, its cause
        raise ModuleNotImportable(
            f"model.module {module!r} failed on import: {type(err).__name__}: {one_line(err, 100)}"
        ) from None


def check_architecture(arch: str, module: str | None) -> None:
    """Import ``module`` and check that ``arch`` is registered (one-line :class:`ConfigError`)."""
    import_module(module)
    if arch not in ARCHITECTURES:
        hint = (
            f"model.module {module!r} does not register it"
            if module
            else "a user architecture needs model.module, the module that registers it"
        )
        raise ConfigError(
            f"unknown architecture {arch!r} ({hint}); valid: {', '.join(ARCHITECTURES)}"
        )


def architecture_module(arch: str) -> str | None:
    """The importable module that registered the user architecture ``arch`` (None for a built-in
    one, an unknown name, or one registered in ``__main__``, which no later process can import)."""
    builder = ARCHITECTURES.get(arch)
    module = getattr(builder, "__module__", None)
    if arch in BUILTIN or not isinstance(module, str) or module == "__main__":
        return None
    return module if _MODULE_NAME.fullmatch(module) else None


def build_networks(
    arch: str,
    image_shape: tuple[int, int, int],
    latent_dim: int,
    *,
    channels: list[int] | None = None,
    batchnorm: bool = False,
    module: str | None = None,
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` of architecture ``arch`` for ``image_shape = (C, H, W)``, after
    importing ``module`` (``model.module``, which may register ``arch``)."""
    check_architecture(arch, module)
    if len(image_shape) != 3:
        raise ConfigError(f"image_shape must be (C, H, W), got {tuple(image_shape)}")
    shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    if arch in BUILTIN and shape[1] != shape[2]:
        raise ConfigError(f"the {arch} architecture needs square images, got {shape[1]}x{shape[2]}")
    if latent_dim < 1:
        raise ConfigError(f"latent_dim must be positive, got {latent_dim}")
    builder = ARCHITECTURES[arch]
    if arch in BUILTIN:
        return builder(shape, latent_dim, channels=channels, batchnorm=batchnorm)
    try:
        nets = builder(shape, latent_dim, channels=channels, batchnorm=batchnorm)
    except ConfigError:
        raise
    except Exception as err:  # the user's builder failed: one line, its cause
        raise ConfigError(
            f"architecture {arch!r} failed to build: {type(err).__name__}: {one_line(err, 100)}"
        ) from None
    return check_networks(arch, nets, shape, latent_dim)


def check_networks(
    arch: str, nets: object, image_shape: tuple[int, int, int], latent_dim: int
) -> tuple[nn.Module, nn.Module]:
    """``nets`` if it is an ``(encoder, decoder)`` pair of modules keeping the interface on a
    batch of two zero images (in eval mode, without gradients), else one-line ConfigError."""
    if not (
        isinstance(nets, tuple) and len(nets) == 2 and all(isinstance(n, nn.Module) for n in nets)
    ):
        raise ConfigError(
            f"architecture {arch!r}: the builder must return (encoder, decoder) nn.Modules, "
            f"got {_describe(nets)}"
        )
    encoder, decoder = nets
    batch, latent = (2, *image_shape), (2, latent_dim)
    with _eval_mode(encoder, decoder), torch.no_grad():
        out = _run(arch, "encoder", encoder, torch.zeros(batch))
        if not (isinstance(out, tuple) and len(out) == 2 and all(_has(t, latent) for t in out)):
            raise ConfigError(
                f"architecture {arch!r}: the encoder must map {list(batch)} to (mu, logvar) of "
                f"{list(latent)} each, got {_describe(out)}"
            )
        out = _run(arch, "decoder", decoder, torch.zeros(latent))
        if not _has(out, batch):
            raise ConfigError(
                f"architecture {arch!r}: the decoder must map {list(latent)} to logits of "
                f"{list(batch)}, got {_describe(out)}"
            )
    return encoder, decoder


def _run(arch: str, role: str, net: nn.Module, x: torch.Tensor) -> object:
    try:
        return net(x)
    except Exception as err:  # the user's forward failed: one line, its cause
        raise ConfigError(
            f"architecture {arch!r}: the {role} fails on {list(x.shape)}: "
            f"{type(err).__name__}: {one_line(err, 100)}"
        ) from None


def _has(t: object, shape: tuple[int, ...]) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and tuple(t.shape) == shape


def _describe(obj: object) -> str:
    if isinstance(obj, torch.Tensor):
        return f"a {obj.dtype} tensor of {list(obj.shape)}"
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of ({', '.join(_describe(o) for o in obj)})"
    return f"a {type(obj).__name__}"


@contextmanager
def _eval_mode(*nets: nn.Module) -> Iterator[None]:
    """Modules in eval mode inside the block (BatchNorm statistics untouched), then restored."""
    flags = {m: m.training for net in nets for m in net.modules()}
    try:
        for net in nets:
            net.eval()
        yield
    finally:
        for m, flag in flags.items():
            m.training = flag
