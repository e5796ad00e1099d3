"""Convolution layers with ``nn.Conv2d``'s and ``nn.ConvTranspose2d``'s parameters, faster on CPU.

Two slow paths of oneDNN's transposed convolution (which is also a convolution's input gradient)
on this project's CPU are routed around (``benchmarks/conv_kernels.py``):

- **Few output channels, stride > 1.** The MNIST decoder's last ``ConvT(8 -> 1, k4, s2)`` took
  4.8 ms forward + backward for 128 images against 2.6 ms below. A stride-``s`` transposed
  convolution is the same sum as one stride-1 convolution with ``s*s`` times the output channels
  (one per output phase) followed by a pixel shuffle: the sub-pixel form (Shi et al. 2016,
  "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional
  Neural Network"), which oneDNN runs at its usual speed. On the CPU, outside autocast, when the
  transposed direction produces at most :data:`SMALL_CHANNELS` channels, :class:`FastConv2d` and
  :class:`FastConvTranspose2d` compute that direction (the transposed layer's forward, the
  convolution's input gradient) in the sub-pixel form and the other two products with oneDNN's
  fast kernels (a convolution forward and a weight gradient).
- **A fused bias.** A transposed convolution with a bias runs 1.05-1.9x (fp32) to 4-7x (bf16,
  no output padding) slower, forward + backward, than the same without it and the bias added
  after: the CR-VAE decoder's ``ConvT(128 -> 64, k3, s2)`` took 70 ms forward in bf16 against
  10 ms. On the CPU the bias is added after.

Either way the result is the same sum in another order: equal up to float rounding to the direct
kernels (tests/test_kernels.py), bit-identical from run to run. Elsewhere (another device) the
layers are the plain ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

#: The sub-pixel form is used when the transposed direction has at most this many channels
#: (measured faster for 1, 3 and 8 channels, slower for 16; benchmarks/conv_kernels.py).
SMALL_CHANNELS = 8

#: On the CPU, add a transposed convolution's bias after it rather than in it.
UNFUSED_BIAS = True


@contextmanager
def plain_kernels() -> Iterator[None]:
    """Both fast paths off inside the block: the plain oneDNN ops (benchmarks, numerics A/Bs)."""
    global SMALL_CHANNELS, UNFUSED_BIAS
    shipped = SMALL_CHANNELS, UNFUSED_BIAS
    SMALL_CHANNELS, UNFUSED_BIAS = 0, False
    try:
        yield
    finally:
        SMALL_CHANNELS, UNFUSED_BIAS = shipped


def subpixel_weight(weight: Tensor, stride: int) -> Tensor:
    """``[C, O, k, k]`` transposed-convolution weight -> ``[s*s*O, C, t, t]``, ``t = ceil(k/s)``:
    the stride-1 convolution whose output channel ``(r * s + c) * O + o`` is output phase
    ``(r, c)`` of channel ``o`` (taps beyond ``k`` are zero)."""
    c, o, k, _ = weight.shape
    t = -(-k // stride)
    w = F.pad(weight, (0, t * stride - k, 0, t * stride - k))
    w = w.reshape(c, o, t, stride, t, stride).flip(2, 4)  # tap a = t-1-u: the conv slides forward
    return w.permute(3, 5, 1, 0, 2, 4).reshape(stride * stride * o, c, t, t)


def _shuffle(y: Tensor, stride: int) -> Tensor:
    """``[B, s*s*O, H, W]`` phases (channel ``(r * s + c) * O + o``) -> ``[B, O, H*s, W*s]`` in
    ``y``'s memory format: one copy (in channels-last, runs of ``O`` contiguous values; 2-3x
    faster there than ``F.pixel_shuffle``)."""
    b, phases, h, w = y.shape
    o = phases // (stride * stride)
    out = torch.empty((b, o, h * stride, w * stride), dtype=y.dtype, memory_format=_format(y))
    phased = y.view(b, stride, stride, o, h, w).permute(0, 3, 4, 1, 5, 2)
    out.view(b, o, h, stride, w, stride).copy_(phased)
    return out


def subpixel_conv_transpose(
    x: Tensor, weight: Tensor, stride: int, padding: int, size: tuple[int, int]
) -> Tensor:
    """``conv_transpose2d(x, weight, stride, padding)`` of output ``size`` (no bias): the full
    transposed convolution in the sub-pixel form, its first ``padding`` rows/cols dropped, then cut
    or zero-padded to ``size`` (rows past the full output receive nothing)."""
    t = -(-weight.shape[2] // stride)
    w = subpixel_weight(weight, stride).contiguous(memory_format=_format(x))
    full = _shuffle(F.conv2d(x, w, None, 1, t - 1), stride)
    h, wd = full.shape[2:]
    if padding == 0 and (h, wd) == size:
        return full
    return F.pad(full, (-padding, size[1] + padding - wd, -padding, size[0] + padding - h))


def _format(x: Tensor) -> torch.memory_format:
    cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if cl else torch.contiguous_format


def _weight_grad(
    grad_out: Tensor, inp: Tensor, weight: Tensor, stride: int, padding: int
) -> Tensor:
    """Gradient of ``conv2d(inp, weight, stride, padding)`` w.r.t. ``weight`` (oneDNN)."""
    grads = torch.ops.aten.convolution_backward(
        grad_out, inp, weight, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1,
        [False, True, False],
    )  # fmt: skip
    grad: Tensor = grads[1]
    return grad


def _for_conv(
    g: Tensor, x_size: tuple[int, int], k: int, stride: int, padding: int
) -> tuple[Tensor, int]:
    """A transposed convolution's output gradient ``g`` (any output padding) and the symmetric
    padding ``q`` such that ``conv2d(g, weight, stride, q)`` yields the ``x_size`` input
    positions: ``padding`` zero rows/cols in front (the cropped ones), cut or zero-padded behind
    to the full extent. The convolution's own padding or a view where that suffices, else a
    padded copy."""
    behind = [stride * (n - 1) + k - padding - m for n, m in zip(x_size, g.shape[2:], strict=True)]
    if behind == [padding, padding]:
        return g, padding
    if padding == 0 and max(behind) <= 0:
        return g[:, :, : g.shape[2] + behind[0], : g.shape[3] + behind[1]], 0
    return F.pad(g, (padding, behind[1], padding, behind[0])), 0


class _SubpixelConv2d(torch.autograd.Function):
    """``conv2d`` forward (oneDNN); input gradient in the sub-pixel form."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = subpixel_conv_transpose(g, weight, s, p, (x.shape[2], x.shape[3]))
        if ctx.needs_input_grad[1]:
            gw = _weight_grad(g, x, weight, s, p)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum((0, 2, 3))
        return gx, gw, gb, None, None


class _SubpixelConvTranspose2d(torch.autograd.Function):
    """Transposed convolution forward in the sub-pixel form; input gradient = ``conv2d``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: int,
        padding: int,
        size: tuple[int, int],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        y = subpixel_conv_transpose(x, weight, stride, padding, size)
        return y if bias is None else y + bias.view(1, -1, 1, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s, k = ctx.stride, weight.shape[2]
        gp, q = _for_conv(g, (x.shape[2], x.shape[3]), k, s, ctx.padding)
        gx = F.conv2d(gp, weight, None, s, q) if ctx.needs_input_grad[0] else None
        gw = _weight_grad(x, gp, weight, s, q) if ctx.needs_input_grad[1] else None
        gb = g.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None, None


def _subpixel_applies(x: Tensor, channels: int, stride: int) -> bool:
    return (
        x.device.type == "cpu"
        and stride > 1
        and channels <= SMALL_CHANNELS
        and not torch.is_autocast_enabled("cpu")
    )


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int) -> Tensor:
    """``F.conv2d(x, weight, bias, stride, padding)``, square kernel; input gradient in the
    sub-pixel form where that is faster (see the module docstring)."""
    if x.requires_grad and _subpixel_applies(x, x.shape[1], stride):
        out: Tensor = _SubpixelConv2d.apply(x, weight, bias, stride, padding)
        return out
    return F.conv2d(x, weight, bias, stride, padding)


def conv_transpose2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: int,
    padding: int,
    size: tuple[int, int],
) -> Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding)`` with output ``size`` (square
    kernel), where rows/cols past what ``output_padding`` allows hold only the bias; sub-pixel form
    where that is faster (see the module docstring)."""
    if _subpixel_applies(x, weight.shape[1], stride):
        out: Tensor = _SubpixelConvTranspose2d.apply(x, weight, bias, stride, padding, size)
        return out
    natural = [(n - 1) * stride - 2 * padding + weight.shape[2] for n in x.shape[2:]]
    extra = [s - n for s, n in zip(size, natural, strict=True)]
    fits = all(0 <= e < stride for e in extra)  # what output_padding can express
    if fits and (x.device.type != "cpu" or not UNFUSED_BIAS):
        return F.conv_transpose2d(x, weight, bias, stride, padding, tuple(extra))
    # On the CPU oneDNN's transposed convolution with a fused bias runs 1.05-1.9x (fp32) to 4-7x
    # (bf16, no output padding) slower, forward + backward, than without (conv_kernels.py).
    y = F.conv_transpose2d(x, weight, None, stride, padding, tuple(extra) if fits else 0)
    if not fits:
        y = F.pad(y, (0, extra[1], 0, extra[0]))
    return y if bias is None else y + bias.to(y.dtype).view(1, -1, 1, 1)


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (square kernel, no dilation or groups) computed by :func:`conv2d`; same
    parameters and state dict."""

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride[0], int(self.padding[0]))


class FastConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (square kernel, no dilation or groups) computed by
    :func:`conv_transpose2d`; same parameters and state dict."""

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None:
            raise ValueError("FastConvTranspose2d takes no output_size")
        k, s, p, op = (
            self.kernel_size[0],
            self.stride[0],
            int(self.padding[0]),
            self.output_padding[0],
        )
        h, w = ((n - 1) * s - 2 * p + k + op for n in x.shape[2:])
        return conv_transpose2d(x, self.weight, self.bias, s, p, (h, w))
