"""The batch augmentation callable: sample per-image parameters, then apply them."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from cvae.augmentations.color import color_jitter_, random_grayscale_, sample_jitter
from cvae.augmentations.config import PRESETS, AugmentConfig
from cvae.augmentations.geometry import CROP_TRIES, sample_crops, view_theta, warp
from cvae.errors import ConfigError


@dataclass(frozen=True)
class AugmentParams:
    """Random parameters of one batch, one row per image; ops that are off hold neutral values.

    crop: float ``[B, 4]`` whole-pixel ``(top, left, height, width)``, resized to the full image.
    flip: bool ``[B]`` horizontal flip. angle: float ``[B]`` rotation in degrees, counter-clockwise.
    shift: float ``[B, 2]`` whole-pixel translation ``(right, down)``.
    jitter: float ``[B, 4]`` (brightness, contrast, saturation factors, hue shift in turns);
    ``(1, 1, 1, 0)`` for an image that is not jittered. order: long ``[B, 4]`` jitter op at each
    position (0 brightness, 1 contrast, 2 saturation, 3 hue). gray: bool ``[B]`` grayscale.
    """

    crop: Tensor
    flip: Tensor
    angle: Tensor
    shift: Tensor
    jitter: Tensor
    order: Tensor
    gray: Tensor

    def to(self, device: torch.device | str) -> AugmentParams:
        """The same parameters on ``device`` (``self`` when they are there)."""
        if self.crop.device == torch.device(device):
            return self
        return AugmentParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def rows(self, rows: slice | Tensor) -> AugmentParams:
        """The parameters of images ``rows`` (a slice or an index tensor)."""
        return AugmentParams(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


class BatchAugment:
    """Augment a whole batch on its own device, each image with independently sampled parameters.

    ``augment(x, generator)``: ``x`` float ``[B, C, H, W]`` with values in [0, 1] (C = 1 or 3 when
    colour ops are on) -> a new tensor of the same shape, dtype and device, values in [0, 1].
    All randomness comes from ``generator`` (sampled on its device, so a CPU generator gives the
    same parameters whatever device ``x`` is on), so restoring the generator's state replays the
    same augmentations. The identity config returns ``x`` itself and draws nothing.

    Deviations from torchvision: crop+resize, flip, rotation and translation are composed into
    one bilinear resampling (torchvision resamples after each op, and RandomRotation/RandomAffine
    default to nearest; the zero fill keeps nearest's hard edge). Near a crop edge inside the
    image, bilinear taps may read up to half a pixel past the crop (torchvision clamps to it).
    Colour ops use torchvision's tensor formulas (luma 0.299/0.587/0.114), not PIL's uint8 ones.
    """

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"BatchAugment({self.config})"

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.config.identity:
            return x
        b, _, h, w = x.shape
        return self.apply(x, self.sample_params(b, h, w, generator, x.device))

    def sample_params(
        self,
        batch_size: int,
        height: int,
        width: int,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        views: int = 1,
    ) -> AugmentParams:
        """Draw the parameters of ``views`` batches of ``batch_size`` images of ``height x width``
        from ``generator`` (on its device), one batch after the other, and return them on
        ``device`` (default: the generator's device), ``views * batch_size`` rows.

        Each batch draws in turn, op by op, as ``views`` calls would (on a CPU generator: the
        same numbers, since it fills a tensor serially), in one generator call per dtype; the
        parameters of all batches are then computed together. Ops that are off draw too (and
        come out neutral), so the code has one path.
        """
        cfg, n, dev = self.config, batch_size, generator.device
        crops, draws = [], []
        for _ in range(views):
            if cfg.crop_scale is not None:
                crops.append(_draw(generator, torch.float64, (n, CROP_TRIES, 2), (n, 2)))
            draws.append(
                _draw(generator, torch.float32, (n,), (n,), (n, 2), (n, 4), (n, 1), (n, 4), (n,))
            )
        if cfg.crop_scale is None:
            crop = torch.tensor([0.0, 0.0, height, width], device=dev).expand(views * n, 4)
        else:
            tries, corner = _cat(crops)
            crop = sample_crops(tries, corner, height, width, cfg.crop_scale, cfg.crop_ratio)
            crop = crop.float()
        u_flip, u_angle, u_shift, u_factors, u_applied, u_order, u_gray = _cat(draws)
        flip = u_flip < cfg.hflip
        angle = cfg.rotation * (2 * u_angle - 1)
        fx, fy = cfg.translate or (0.0, 0.0)
        limit = torch.tensor([fx * width, fy * height], device=dev)
        shift = (limit * (2 * u_shift - 1)).round()
        strengths = cfg.jitter or (0.0,) * 4
        jitter, order = sample_jitter(u_factors, u_applied, u_order, strengths, cfg.jitter_p)
        gray = u_gray < cfg.grayscale
        params = AugmentParams(crop, flip, angle, shift, jitter, order, gray)
        return params if device is None else params.to(device)

    def apply(self, x: Tensor, params: AugmentParams) -> Tensor:
        """Augment ``x`` ``[B, C, H, W]`` with given parameters (see :class:`AugmentParams`)."""
        cfg = self.config
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"expected a float [B, C, H, W] batch, got {x.dtype} {tuple(x.shape)}")
        if cfg.identity:
            return x
        if cfg.color and x.shape[1] not in (1, 3):
            raise ValueError(f"colour augmentation needs 1 or 3 channels, got {x.shape[1]}")
        params = params.to(x.device)
        _, channels, h, w = x.shape
        if cfg.geometric:
            theta = view_theta(h, w, params.flip, params.angle, params.shift)
            x = warp(x, params.crop, theta, fill=cfg.rotation > 0 or cfg.translate is not None)
        else:
            x = x.clone()  # the colour ops work in place
        if cfg.jitter is not None and cfg.jitter_p > 0:
            color_jitter_(x, params.jitter, params.order, hue=cfg.jitter[3] > 0)
        if cfg.grayscale > 0 and channels == 3:
            random_grayscale_(x, params.gray)
        return x


def _draw(generator: torch.Generator, dtype: torch.dtype, *shapes: tuple[int, ...]) -> list[Tensor]:
    """Uniforms on [0, 1) of each shape, drawn from ``generator`` in this order, in one call."""
    sizes = [math.prod(shape) for shape in shapes]
    flat = torch.rand(sum(sizes), generator=generator, device=generator.device, dtype=dtype)
    return [part.view(shape) for part, shape in zip(flat.split(sizes), shapes, strict=True)]


def _cat(batches: list[list[Tensor]]) -> list[Tensor]:
    """Per field, the batches' tensors one after the other."""
    if len(batches) == 1:
        return batches[0]
    return [torch.cat(parts) for parts in zip(*batches, strict=True)]


def build_augment(spec: str | AugmentConfig) -> BatchAugment:
    """A :class:`BatchAugment` for a preset name (see ``PRESETS``) or an :class:`AugmentConfig`."""
    if isinstance(spec, AugmentConfig):
        return BatchAugment(spec)
    if spec not in PRESETS:
        raise ConfigError(f"unknown augmentation {spec!r}; valid presets: {', '.join(PRESETS)}")
    return BatchAugment(PRESETS[spec])
