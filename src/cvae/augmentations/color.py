"""Batched colour augmentation with per-image factors (torchvision tensor semantics).

The ops work in place on ``x`` ``[B, C, H, W]`` with values in [0, 1] (pass a tensor you own);
per-image parameters are tensors with leading dimension ``B``. Selections are done with float
arithmetic: on CPU, image-sized comparisons, ``where`` and fresh allocations each cost several
times an in-place multiply.
"""

from __future__ import annotations

import torch
from torch import Tensor

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, as PIL's convert("L")
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
NEUTRAL_JITTER = (1.0, 1.0, 1.0, 0.0)  # factors that leave an image unchanged


def luma(x: Tensor) -> Tensor:
    """``[B, 3, H, W]`` RGB -> a new ``[B, 1, H, W]`` tensor of grey levels."""
    return (x[:, 0:1] * LUMA[0]).add_(x[:, 1:2], alpha=LUMA[1]).add_(x[:, 2:3], alpha=LUMA[2])


def random_grayscale_(x: Tensor, mask: Tensor) -> Tensor:
    """RandomGrayscale on RGB ``x``: images with ``mask`` ``[B]`` become luma in all 3 channels."""
    return x.lerp_(luma(x).expand_as(x), _per_image(mask, x))


def adjust_hue_(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the HSV hue of RGB ``x`` by ``shift`` ``[B]`` turns (torchvision ``adjust_hue``).

    Computed without a full RGB->HSV->RGB round trip: a hue rotation keeps each pixel's max and
    min channel, and with the new hue ``h'`` in sixths of a turn, channel ``n`` (R, G, B = 0, 1, 2)
    becomes ``min + (max - min) * clamp(||h' - 2n| - 3| - 1, 0, 1)``. Images with ``shift == 0``
    keep their exact values.
    """
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    maxc = x.amax(dim=1, keepdim=True)
    minc = x.amin(dim=1, keepdim=True)
    # Which channel is the max, with torchvision's tie-breaking (R, then G), as 0/1 floats.
    not_r = (maxc - r).sign_()
    is_g = (maxc - g).sign_().neg_().add_(1.0).mul_(not_r)
    is_b = not_r.sub_(is_g)
    chroma = maxc.sub_(minc)
    # Hue in sixths of a turn: (g - b) / chroma if R is the max, 2 + (b - r) / chroma if G, ...
    h6 = (g - b).mul_(1.0 - is_g - is_b).addcmul_(is_g, b - r).addcmul_(is_b, r - g)
    h6.div_(chroma.clamp_min(torch.finfo(x.dtype).tiny))  # grey pixels: 0, any hue would do
    h6.add_(is_g, alpha=2.0).add_(is_b, alpha=4.0).add_(_per_image(6.0 * shift, x))
    h6.sub_(torch.floor(h6 / 6.0).mul_(6.0))  # into [0, 6]
    offset = torch.tensor([0.0, -2.0, -4.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    out = (h6 + offset).abs_().sub_(3.0).abs_().sub_(1.0).clamp_(0.0, 1.0).mul_(chroma).add_(minc)
    return x.lerp_(out, _per_image(shift != 0, x))


def color_jitter_(x: Tensor, factors: Tensor, order: Tensor, hue: bool) -> Tensor:
    """ColorJitter with each image's own factors and op order.

    ``factors``: ``[B, 4]`` (brightness, contrast, saturation factors, hue shift in turns);
    ``order``: ``[B, 4]`` long, the op applied at each position (0 brightness, 1 contrast,
    2 saturation, 3 hue); ``hue``: whether to run the hue op at all. Brightness, contrast and
    saturation are blends ``clamp(f x + (1 - f) ref, 0, 1)`` with ref = black, the image's mean
    luma, or its luma image; with 1 channel saturation and hue are no-ops, as in torchvision.

    Vectorised exactly: blends with factor 1 are the identity, so each image's blends are packed
    into 3 blend slots before one batch-wide hue step and 3 after it (3 slots without hue).
    """
    rgb = x.shape[1] == 3
    factors = factors.to(x.dtype)
    if not rgb:
        factors = factors.index_fill(1, torch.tensor([SATURATION], device=factors.device), 1.0)
    position = order.argsort(dim=1)  # position[b, op]
    blends = position[:, :HUE].argsort(dim=1)  # [B, 3] blend ops in the order they run
    slots = torch.arange(3, device=x.device)
    if not (hue and rgb):
        return _blend_slots_(x, factors, blends, slots.expand_as(blends))
    n_before = (position[:, :HUE] < position[:, HUE:]).sum(dim=1, keepdim=True)  # [B, 1]
    _blend_slots_(x, factors, blends, n_before - 3 + slots)  # right-aligned
    adjust_hue_(x, factors[:, HUE])
    return _blend_slots_(x, factors, blends, n_before + slots)  # left-aligned


def _blend_slots_(x: Tensor, factors: Tensor, blends: Tensor, index: Tensor) -> Tensor:
    """In place, run slot ``s`` = blend ``blends[b, index[b, s]]`` on each image ``b``; an index
    outside ``blends`` skips the slot for that image."""
    valid = (index >= 0) & (index < blends.shape[1])
    ops = blends.gather(1, index.clamp(0, blends.shape[1] - 1))
    f = torch.where(valid, factors.gather(1, ops), 1.0)
    # x <- clamp(f x + w_grey grey + w_mean mean(grey), 0, 1); brightness has no reference term.
    w_grey, w_mean = (1.0 - f) * (ops == SATURATION), (1.0 - f) * (ops == CONTRAST)
    for s in range(ops.shape[1]):
        if x.shape[1] == 3:
            grey = luma(x)
            mean = grey.mean(dim=(1, 2, 3), keepdim=True)
            ref = grey.mul_(_per_image(w_grey[:, s], x)).add_(mean * _per_image(w_mean[:, s], x))
        else:  # saturation is off for 1 channel (w_grey = 0)
            ref = x.mean(dim=(1, 2, 3), keepdim=True) * _per_image(w_mean[:, s], x)
        x.mul_(_per_image(f[:, s], x)).add_(ref).clamp_(0.0, 1.0)
    return x


def _per_image(values: Tensor, like: Tensor) -> Tensor:
    """``[B]`` values -> ``[B, 1, 1, 1]`` in ``like``'s dtype, to broadcast over images."""
    return values.to(like.dtype).view(-1, 1, 1, 1)


def sample_jitter(
    u_factors: Tensor,
    u_applied: Tensor,
    u_order: Tensor,
    strengths: tuple[float, float, float, float],
    p: float,
) -> tuple[Tensor, Tensor]:
    """Per-image ColorJitter parameters from float32 uniforms on [0, 1): ``u_factors`` and
    ``u_order`` ``[n, 4]``, ``u_applied`` ``[n, 1]``.

    Returns ``factors`` ``[n, 4]`` float32: brightness/contrast/saturation ~ U[max(0, 1-s), 1+s],
    hue shift ~ U[-hue, hue], replaced by the neutral ``(1, 1, 1, 0)`` for images not jittered
    (probability ``1 - p``); and ``order`` ``[n, 4]`` long, a uniform random op order per image.
    """
    dev = u_factors.device
    b, c, s, h = strengths
    lo = torch.tensor([max(0.0, 1 - b), max(0.0, 1 - c), max(0.0, 1 - s), -h], device=dev)
    hi = torch.tensor([1 + b, 1 + c, 1 + s, h], device=dev)
    factors = lo + (hi - lo) * u_factors
    factors = torch.where(u_applied < p, factors, torch.tensor(NEUTRAL_JITTER, device=dev))
    return factors, u_order.argsort(dim=1)
