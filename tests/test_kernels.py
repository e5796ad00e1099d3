"""The sub-pixel strided convolutions equal the direct kernels, value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cvae.networks import kernels
from cvae.networks.conv import PaddedConvTranspose2d
from cvae.networks.kernels import FastConv2d, FastConvTranspose2d, subpixel_weight

CL = torch.channels_last


def _grads(y: torch.Tensor, inputs: list[torch.Tensor], seed: int) -> list[torch.Tensor]:
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return list(torch.autograd.grad(y, inputs, g))


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_subpixel_weight_puts_each_tap_in_its_phase() -> None:
    """Tap (ky, kx) of a stride-2, k4 kernel lands in phase (ky % 2, kx % 2) at (1 - ky // 2,
    1 - kx // 2): counted by hand for one input and one output channel."""
    w = torch.arange(16.0).view(1, 1, 4, 4)
    sub = subpixel_weight(w, 2)  # [4, 1, 2, 2]: channel = phase r * 2 + c
    assert sub.shape == (4, 1, 2, 2)
    for ky in range(4):
        for kx in range(4):
            phase = (ky % 2) * 2 + kx % 2
            assert sub[phase, 0, 1 - ky // 2, 1 - kx // 2] == w[0, 0, ky, kx]
    # k3: the fourth tap of each axis is zero
    assert (subpixel_weight(torch.ones(1, 1, 3, 3), 2) == 0).sum() == 16 - 9


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize(
    ("c_in", "c_out", "size", "kernel", "padding"),
    [(8, 16, 14, 4, 1), (3, 5, 7, 4, 1), (4, 6, 13, 3, 1), (2, 4, 9, 3, 0)],
)
def test_conv2d_matches_direct_kernel(
    fmt: torch.memory_format, c_in: int, c_out: int, size: int, kernel: int, padding: int
) -> None:
    torch.manual_seed(0)
    x = torch.randn(5, c_in, size, size).contiguous(memory_format=fmt).requires_grad_()
    w = torch.randn(c_out, c_in, kernel, kernel).contiguous(memory_format=fmt).requires_grad_()
    b = torch.randn(c_out, requires_grad=True)
    ours = kernels.conv2d(x, w, b, 2, padding)
    assert ours.grad_fn is not None and "Subpixel" in type(ours.grad_fn).__name__
    ref = F.conv2d(x, w, b, 2, padding)
    _close(ours, ref)
    for a, r in zip(_grads(ours, [x, w, b], 1), _grads(ref, [x, w, b], 1), strict=True):
        _close(a, r)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize(
    ("c_in", "c_out", "size", "kernel", "padding", "out_pad"),
    [(16, 8, 6, 4, 1, 0), (8, 1, 12, 4, 0, 0), (8, 3, 5, 4, 1, 1), (6, 4, 7, 3, 1, 1)],
)
def test_conv_transpose2d_matches_direct_kernel(
    fmt: torch.memory_format,
    c_in: int,
    c_out: int,
    size: int,
    kernel: int,
    padding: int,
    out_pad: int,
) -> None:
    torch.manual_seed(0)
    layer = FastConvTranspose2d(c_in, c_out, kernel, 2, padding, output_padding=out_pad)
    layer = layer.to(memory_format=fmt)
    x = torch.randn(5, c_in, size, size).contiguous(memory_format=fmt).requires_grad_()
    ours = layer(x)
    assert ours.grad_fn is not None and "Subpixel" in type(ours.grad_fn).__name__
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, 2, padding, out_pad)
    _close(ours, ref)
    params = [x, layer.weight, layer.bias]
    for a, r in zip(_grads(ours, params, 1), _grads(ref, params, 1), strict=True):
        _close(a, r)


def test_output_padding_past_the_stride_holds_only_the_bias() -> None:
    """The CVAE MNIST decoder's last layer, 12 -> 26 + 2 bias-only rows/cols: equal to the direct
    ConvT padded by hand, in value and gradients, on both code paths (sub-pixel for 1 output
    channel, the direct kernel for 16)."""
    torch.manual_seed(0)
    for c_out in (1, 16):
        layer = PaddedConvTranspose2d(8, c_out, 0, 2)
        x = torch.randn(3, 8, 12, 12, requires_grad=True)
        ours = layer(x)
        direct = F.conv_transpose2d(x, layer.conv.weight, None, 2, 0)
        ref = F.pad(direct, (0, 2, 0, 2)) + layer.bias.view(1, -1, 1, 1)
        assert ours.shape == (3, c_out, 28, 28)
        _close(ours, ref)
        assert torch.equal(ours[:, :, 26:, :], layer.bias.view(1, -1, 1, 1).expand(3, -1, 2, 28))
        params = [x, layer.conv.weight, layer.bias]
        for a, r in zip(_grads(ours, params, 2), _grads(ref, params, 2), strict=True):
            _close(a, r)


def test_the_direct_kernels_run_where_the_subpixel_form_does_not_apply() -> None:
    """Many channels, stride 1, autocast, or an input without gradient: the plain ops, with the
    plain autograd nodes."""
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    conv16 = FastConv2d(16, 4, 4, 2, 1)
    assert "Subpixel" not in type(conv16(x).grad_fn).__name__
    no_grad_input = FastConv2d(1, 8, 4, 2, 1)(torch.randn(2, 1, 8, 8))
    assert "Subpixel" not in type(no_grad_input.grad_fn).__name__
    wide = FastConvTranspose2d(16, 16, 4, 2, 1)
    assert "Subpixel" not in type(wide(x).grad_fn).__name__
    narrow = FastConvTranspose2d(16, 4, 4, 2, 1)
    assert "Subpixel" in type(narrow(x).grad_fn).__name__
    assert "Subpixel" not in type(FastConvTranspose2d(16, 4, 3, 1, 1)(x).grad_fn).__name__
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "Subpixel" not in type(narrow(x).grad_fn).__name__


def test_state_dict_is_the_plain_layers() -> None:
    """Checkpoints written before these layers existed load unchanged."""
    plain = torch.nn.ConvTranspose2d(8, 1, 4, 2, 1, output_padding=1)
    ours = FastConvTranspose2d(8, 1, 4, 2, 1, output_padding=1)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 8, 5, 5)
    _close(ours(x), plain(x))
    assert set(FastConv2d(1, 8, 4, 2, 1).state_dict()) == {"weight", "bias"}


@pytest.mark.parametrize(("stride", "padding", "out_pad"), [(2, 1, 0), (1, 1, 0), (2, 0, 1)])
def test_wide_conv_transpose_equals_the_fused_bias(stride: int, padding: int, out_pad: int) -> None:
    """Many output channels (the direct kernel): without output padding the bias is added after
    the transposed convolution; the value, the gradients and, under bf16 autocast, the dtype
    are those of the fused op."""
    torch.manual_seed(0)
    layer = FastConvTranspose2d(16, 16, 3, stride, padding, output_padding=out_pad)
    x = torch.randn(3, 16, 5, 5, requires_grad=True)
    ours = layer(x)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, stride, padding, out_pad)
    _close(ours, ref)
    params = [x, layer.weight, layer.bias]
    for a, r in zip(_grads(ours, params, 3), _grads(ref, params, 3), strict=True):
        _close(a, r)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ref = (
            layer(x),
            F.conv_transpose2d(x, layer.weight, layer.bias, stride, padding, out_pad),
        )
    assert ours.dtype == ref.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_plain_kernels_turns_both_fast_paths_off_and_restores_them() -> None:
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    narrow, wide = FastConvTranspose2d(16, 4, 4, 2, 1), FastConvTranspose2d(16, 16, 4, 2, 1)
    with kernels.plain_kernels():
        assert type(narrow(x).grad_fn).__name__ == "ConvolutionBackward0"  # bias fused
        assert type(wide(x).grad_fn).__name__ == "ConvolutionBackward0"
    assert "Subpixel" in type(narrow(x).grad_fn).__name__
    assert type(wide(x).grad_fn).__name__ == "AddBackward0"  # bias added after
