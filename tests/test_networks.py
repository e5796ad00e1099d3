"""Architectures: the spec's verified parameter counts and shapes, and the legal final layer."""

import pytest
import torch

from cvae.config import ModelConfig
from cvae.errors import ConfigError
from cvae.networks import PaddedConvTranspose2d, ProjectionHead, build_model


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


MNIST = dict(latent_dim=10, channels=[8, 16, 32])
CIFAR = dict(latent_dim=128, channels=[32, 64, 128, 256])


@pytest.mark.parametrize(
    ("kwargs", "shape", "head", "expected"),
    [
        (dict(MNIST, projection=[]), (1, 28, 28), False, 29_765),  # spec 3.2 (verified) VAE
        (dict(MNIST, projection=[8, 4, 2], projection_final_relu=True), (1, 28, 28), True, 29_899),
        (dict(CIFAR, projection=[]), (3, 32, 32), False, 1_774_531),
        (dict(CIFAR, batchnorm=True, projection=[64, 32]), (3, 32, 32), True, 1_786_275),
    ],
)
def test_reference_parameter_counts(kwargs, shape, head, expected):
    assert n_params(build_model(ModelConfig(**kwargs), shape, "sigmoid", head)) == expected


def test_mnist_geometry_flatten_288_and_output_28():
    model = build_model(ModelConfig(**MNIST), (1, 28, 28), "sigmoid", True)
    assert model.encoder.mu.in_features == 288
    x = torch.rand(5, 1, 28, 28)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 10)
    y = model.decode(mu)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert model.head(mu).shape == (5, 5)
    assert isinstance(model.decoder.net[-1], PaddedConvTranspose2d)


@pytest.mark.parametrize("size", [8, 16, 28, 29, 30, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_builder_reaches_any_size(size, channels):
    model = build_model(ModelConfig(channels=[8, 16]), (channels, size, size), "tanh", False)
    y = model.decode(torch.randn(2, 10))
    assert y.shape == (2, channels, size, size) and y.abs().max() <= 1


def test_padded_conv_transpose_is_output_padding_semantics():
    torch.manual_seed(0)
    layer = PaddedConvTranspose2d(8, 1, padding=0, extra=2)
    x = torch.randn(2, 8, 12, 12)
    y = layer(x)
    assert y.shape == (2, 1, 28, 28)
    plain = torch.nn.functional.conv_transpose2d(x, layer.conv.weight, stride=2)  # 26x26
    bias = layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(y[..., :26, :26], plain + bias)
    # the two extra rows/columns receive only the bias, exactly as output_padding=2 would give
    assert torch.equal(y[..., 26:, :], bias.expand(2, 1, 2, 28))
    assert torch.equal(y[..., :, 26:], bias.expand(2, 1, 28, 2))


def test_projection_head_final_relu_flag():
    torch.manual_seed(0)
    plain = ProjectionHead(10, [8, 5])
    relu = ProjectionHead(10, [8, 4, 2], final_relu=True)
    z = torch.randn(64, 10)
    assert (plain(z) < 0).any()
    assert (relu(z) >= 0).all()
    assert [m.out_features for m in relu.net if isinstance(m, torch.nn.Linear)] == [8, 4, 2]


def test_too_deep_for_image_is_config_error():
    with pytest.raises(ConfigError):
        build_model(ModelConfig(channels=[8, 16, 32, 64]), (1, 8, 8), "sigmoid", False)
    with pytest.raises(ConfigError):
        build_model(ModelConfig(), (1, 28, 32), "sigmoid", False)
