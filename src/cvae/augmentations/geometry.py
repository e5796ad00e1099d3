"""Batched geometric augmentation: per-image crops and one composed affine resampling.

Coordinates: pixel edges, so an ``H x W`` image covers ``[0, W] x [0, H]`` and pixel ``(r, c)`` has
its centre at ``(c + 0.5, r + 0.5)``; ``y`` points down. This is the convention of
``F.affine_grid(..., align_corners=False)``, in which ``[-1, 1]`` spans the same extent.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

CROP_TRIES = 10  # torchvision RandomResizedCrop.get_params


def sample_crops(
    tries: Tensor,
    corner: Tensor,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> Tensor:
    """RandomResizedCrop boxes, torchvision's algorithm with its 10 tries done at once.

    From float64 uniforms on [0, 1): ``tries`` ``[n, CROP_TRIES, 2]`` give each try an area
    fraction ~ U[scale] and a log aspect ratio ~ U[log ratio]; ``w = sqrt(area * ratio)``,
    ``h = sqrt(area / ratio)`` are rounded to whole pixels and the try is accepted if the box
    fits. The first accepted try wins and ``corner`` ``[n, 2]`` places it uniformly over the valid
    integer positions; an image with no accepted try gets torchvision's centre-crop fallback.

    Returns float64 ``[n, 4]`` whole-pixel ``(top, left, height, width)`` on the uniforms' device.
    """
    area = height * width * (scale[0] + (scale[1] - scale[0]) * tries[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * tries[..., 1])
    w = torch.sqrt(area * aspect).round()  # round half to even, like Python's round()
    h = torch.sqrt(area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first True
    found = fits.any(dim=1)
    fallback_h, fallback_w = _centre_crop_size(height, width, ratio)
    h = torch.where(found, h.gather(1, first).squeeze(1), float(fallback_h))
    w = torch.where(found, w.gather(1, first).squeeze(1), float(fallback_w))
    top = torch.where(found, (corner[:, 0] * (height - h + 1)).floor(), (height - fallback_h) // 2)
    left = torch.where(found, (corner[:, 1] * (width - w + 1)).floor(), (width - fallback_w) // 2)
    return torch.stack([top, left, h, w], dim=1)


def _centre_crop_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """torchvision's fallback: the whole image, with its aspect ratio clamped into ``ratio``."""
    in_ratio = width / height
    if in_ratio < ratio[0]:
        return round(width / ratio[0]), width
    if in_ratio > ratio[1]:
        return height, round(height * ratio[1])
    return height, width


def view_theta(height: int, width: int, flip: Tensor, angle: Tensor, shift: Tensor) -> Tensor:
    """Flip, then rotate, then translate, as the ``[B, 2, 3]`` output-to-input matrices that
    ``F.affine_grid(align_corners=False)`` expects.

    ``flip``: ``[B]`` bool horizontal flip; ``angle``: ``[B]`` degrees, counter-clockwise as
    displayed, about the image centre; ``shift``: ``[B, 2]`` pixels ``(right, down)``.
    """
    # Inverse map in centred pixel coordinates: q = Fl R(-angle) (p - shift).
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    sign = 1.0 - 2.0 * flip.to(angle.dtype)
    a00, a01, a10, a11 = sign * cos, -sign * sin, sin, cos
    b0 = -(a00 * shift[:, 0] + a01 * shift[:, 1])
    b1 = -(a10 * shift[:, 0] + a11 * shift[:, 1])
    # The same map in normalised coordinates, p = diag(W/2, H/2) p_normalised.
    row0 = torch.stack([a00, a01 * (height / width), b0 * (2.0 / width)], dim=1)
    row1 = torch.stack([a10 * (width / height), a11, b1 * (2.0 / height)], dim=1)
    return torch.stack([row0, row1], dim=1)


def warp(x: Tensor, crop: Tensor, theta: Tensor, fill: bool) -> Tensor:
    """Resized crops of ``x`` ``[B, C, H, W]``, then moved by ``theta``, in one bilinear resampling.

    ``crop``: ``[B, 4]`` ``(top, left, height, width)`` in input pixels, resized to ``H x W``;
    ``theta``: ``[B, 2, 3]`` from :func:`view_theta`. Samples past the image border clamp to it,
    as resizing a crop clamps to the crop. With ``fill``, output pixels that the inverse of
    ``theta`` maps outside the resized crop are 0 (a hard edge, as nearest-neighbour RandomRotation
    and RandomAffine give); without it, ``theta`` must keep the image in place (a flip).
    """
    _, _, height, width = x.shape
    crop = crop.to(theta.dtype)
    scale = torch.stack([crop[:, 3] / width, crop[:, 2] / height], dim=1)
    centre = torch.stack([crop[:, 1] * 2 / width, crop[:, 0] * 2 / height], dim=1) + scale - 1
    composed = torch.cat(  # input = scale * view + centre (normalised coordinates)
        [theta[:, :, :2] * scale[:, :, None], (theta[:, :, 2] * scale + centre)[:, :, None]], dim=2
    )
    src = affine_grid(composed.to(x.dtype), height, width)
    out = F.grid_sample(x, src, mode="bilinear", padding_mode="border", align_corners=False)
    if fill:
        # inside: both coordinates of the view's grid in [-1, 1], from its two planes (an
        # interleaved [B, H, W, 2] grid and a reduction over its last dim are ~5x slower on CPU)
        u, v = _grid_planes(theta.to(x.dtype), height, width)
        out.mul_(torch.maximum(u.abs_(), v.abs_()).le_(1.0).unsqueeze(1))
    return out


def affine_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``F.affine_grid(theta, [B, C, height, width], align_corners=False)``, computed by
    broadcasting (several times faster on CPU than its batched matmul). Returns ``[B, H, W, 2]``."""
    grid = theta.new_empty(theta.shape[0], height, width, 2)
    _grid_planes(theta, height, width, out=(grid[..., 0], grid[..., 1]))
    return grid


def _grid_planes(
    theta: Tensor, height: int, width: int, out: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """The x and y planes ``[B, H, W]`` of :func:`affine_grid` (new tensors, or into ``out``)."""
    kw: dict[str, Any] = {"dtype": theta.dtype, "device": theta.device}
    xs = (torch.arange(width, **kw) * 2 + 1) / width - 1  # pixel centres
    ys = ((torch.arange(height, **kw) * 2 + 1) / height - 1).view(-1, 1)
    t = theta[:, :, :, None, None]  # [B, 2, 3, 1, 1]
    planes = []
    for i in range(2):  # output x, then y
        plane = t[:, i, 0] * xs + t[:, i, 2]
        planes.append(torch.add(plane, t[:, i, 1] * ys, out=None if out is None else out[i]))
    return planes[0], planes[1]
