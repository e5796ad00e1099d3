"""Augmentation configs, the named presets, and their validation."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from cvae.errors import ConfigError

Pair = tuple[float, float]
Jitter = tuple[float, float, float, float]


@dataclass(frozen=True)
class AugmentConfig:
    """What :class:`~cvae.augmentations.BatchAugment` does to each image (torchvision semantics).

    Geometric ops run in this order and are composed into one resampling:

    * ``crop_scale``: RandomResizedCrop area-fraction range ``(lo, hi)`` with ``0 < lo <= hi <= 1``,
      or ``None`` (off). The crop is resized back to the input size. ``crop_ratio``: its aspect
      (w/h) range.
    * ``hflip``: probability of a horizontal flip.
    * ``rotation``: RandomRotation range in degrees, angle ~ U[-rotation, rotation] (0 = off).
    * ``translate``: RandomAffine translate fractions ``(fx, fy)``: shifts of
      ``round(U[-fx W, fx W])`` / ``round(U[-fy H, fy H])`` whole pixels, or ``None`` (off).

    Colour ops, in this order, after the geometric ones:

    * ``jitter``: ColorJitter ``(brightness, contrast, saturation, hue)`` strengths, or ``None``;
      factors ~ U[max(0, 1-s), 1+s] and hue shift ~ U[-hue, hue], applied in a random order per
      image. ``jitter_p``: probability that an image is jittered at all (RandomApply).
    * ``grayscale``: RandomGrayscale probability.
    """

    crop_scale: Pair | None = None
    crop_ratio: Pair = (3 / 4, 4 / 3)
    rotation: float = 0.0
    translate: Pair | None = None
    hflip: float = 0.0
    jitter: Jitter | None = None
    jitter_p: float = 1.0
    grayscale: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):  # YAML gives lists: store tuples so configs hash and compare
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        _validate(self)

    @property
    def geometric(self) -> bool:
        """Whether any op moves pixels (so one resampling is needed)."""
        return (
            self.crop_scale is not None
            or self.rotation > 0
            or self.translate is not None
            or self.hflip > 0
        )

    @property
    def color(self) -> bool:
        """Whether any colour op is on."""
        return (self.jitter is not None and self.jitter_p > 0) or self.grayscale > 0

    @property
    def identity(self) -> bool:
        """Whether the config leaves every image unchanged."""
        return not (self.geometric or self.color)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value: object, n: int) -> bool:
    return isinstance(value, tuple) and len(value) == n and all(_is_number(v) for v in value)


def _validate(cfg: AugmentConfig) -> None:
    """Refuse the first field that breaks its rule in :data:`_RULES`."""
    for name, ok, rule in _RULES:
        value = getattr(cfg, name)
        if not ok(value):
            raise ConfigError(f"augment.{name} must be {rule}, got {value!r}")


def _is_crop_scale(v: Any) -> bool:
    return _numbers(v, 2) and 0 < v[0] <= v[1] <= 1


def _is_crop_ratio(v: Any) -> bool:
    return _numbers(v, 2) and 0 < v[0] <= v[1]


def _is_degrees(v: Any) -> bool:
    return _is_number(v) and 0 <= v <= 180


def _is_translate(v: Any) -> bool:
    return _numbers(v, 2) and all(0 <= t <= 1 for t in v)


def _is_jitter(v: Any) -> bool:
    return _numbers(v, 4) and min(v[:3]) >= 0 and 0 <= v[3] <= 0.5


def _is_probability(v: Any) -> bool:
    return _is_number(v) and 0 <= v <= 1


def _or_none(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("crop_scale", _or_none(_is_crop_scale), "null or [lo, hi] with 0 < lo <= hi <= 1"),
    ("crop_ratio", _is_crop_ratio, "[lo, hi] with 0 < lo <= hi"),
    ("rotation", _is_degrees, "a number of degrees in [0, 180]"),
    ("translate", _or_none(_is_translate), "null or [fx, fy] with fractions in [0, 1]"),
    (
        "jitter",
        _or_none(_is_jitter),
        "null or [brightness, contrast, saturation, hue] >= 0 with hue <= 0.5",
    ),
    ("hflip", _is_probability, "a probability in [0, 1]"),
    ("jitter_p", _is_probability, "a probability in [0, 1]"),
    ("grayscale", _is_probability, "a probability in [0, 1]"),
)
"""Each field checked in order: its name, whether a value is valid, and the rule's text."""


PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    # CVAE paper code, MNIST views: RandomResizedCrop(28, (0.8, 1)), RandomRotation(15),
    # RandomAffine(0, translate=(0.1, 0.1)).
    "cvae-mnist": AugmentConfig(crop_scale=(0.8, 1.0), rotation=15.0, translate=(0.1, 0.1)),
    # CVAE paper code, CIFAR views: RandomResizedCrop(32, (0.2, 1)), RandomHorizontalFlip,
    # ColorJitter(0.4, 0.4, 0.4, 0.1) always applied, RandomGrayscale(0.2).
    "cvae-cifar": AugmentConfig(
        crop_scale=(0.2, 1.0), hflip=0.5, jitter=(0.4, 0.4, 0.4, 0.1), grayscale=0.2
    ),
}

# CR-VAE code (utils.py:16-31, paper Table IV), every dataset: RandomResizedCrop(default scale
# (0.08, 1)), RandomHorizontalFlip, RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
# RandomGrayscale(0.2). AAVAE's SimCLR pipeline on CIFAR-10 (jitter strength s=0.5, no blur) is
# the same sequence (AAVAE code).
PRESETS["crvae"] = AugmentConfig(
    crop_scale=(0.08, 1.0), hflip=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8, grayscale=0.2
)
PRESETS["simclr-cifar"] = PRESETS["crvae"]

MADE_FOR: dict[str, int] = {"cvae-mnist": 28, "cvae-cifar": 32, "crvae": 28, "simclr-cifar": 32}
"""The image side (pixels) each geometric pipeline was made for. Its crops, rotations and shifts
are fractions of the image, but on images under half that side every resampled pixel covers
more than 2x2 of the pixels the pipeline was tuned on and a one-pixel shift exceeds its largest
translation: on 8x8 digits the MNIST views leave a positive pair barely closer than two random
images (pixel cosine 0.715 vs 0.626)."""


def fits(name: str, side: int) -> bool:
    """Whether the named pipeline suits images whose smaller side is ``side`` pixels."""
    return side * 2 >= MADE_FOR.get(name, 0)
