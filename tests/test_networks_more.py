"""More architectures (pv, crvae-medium, resnet18/50) and the registry: the spec's verified
parameter counts (4.2, 5.2, 6.2), output shapes, raw (activation-free) encoder outputs, errors."""

import math

import pytest
import torch

from cvae.errors import ConfigError
from cvae.networks.conv import ConvDecoder, ConvEncoder
from cvae.networks.crvae_nets import CRVAEDecoder, CRVAEMediumEncoder
from cvae.networks.pv import PVDecoder, PVEncoder
from cvae.networks.registry import ARCHITECTURES, build_networks
from cvae.networks.resnet import ResNetDecoder, ResNetEncoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these forwards are tiny, and on a busy 2-core machine OpenMP
    oversubscription makes a ResNet-50 pass ~20x slower with 2 threads than with 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


CONVS = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def run_recording_last_leaf(module, *args):
    """``module(*args)`` under no_grad, plus the last leaf module that ran and its output."""
    calls = []
    leaves = [m for m in module.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, o))) for m in leaves]
    try:
        with torch.no_grad():
            out = module(*args)
    finally:
        for h in hooks:
            h.remove()
    return out, calls[-1]


def assert_raw_outputs(encoder, decoder, x, latent_dim):
    """Encoder gives unbounded (mu, logvar); decoder gives logits shaped like the input."""
    (mu, logvar), (last, _) = run_recording_last_leaf(encoder, x)
    assert mu.shape == logvar.shape == (x.shape[0], latent_dim)
    assert mu.min() < 0 and logvar.min() < 0  # no ReLU/sigmoid/softplus on the heads
    assert isinstance(last, torch.nn.Linear)  # logvar head is the last op
    y, (last, last_out) = run_recording_last_leaf(decoder, torch.randn(x.shape[0], latent_dim))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert isinstance(last, CONVS) and last_out is y  # pre-activation logits: a conv ends it


# ------------------------------------------------------------------------------------ pv


def test_pv_reference_parameter_counts():
    enc, dec = build_networks("pv", (3, 64, 64), 128)
    assert isinstance(enc, PVEncoder) and isinstance(dec, PVDecoder)
    assert n_params(enc) == 2_095_104  # spec 4.2 (verified): encoder + heads
    assert n_params(enc) + n_params(dec) == 3_937_635  # spec 4.2 (verified): total
    assert enc.fc_mu.in_features == 512 * 2 * 2


@pytest.mark.parametrize(
    ("size", "hidden"),
    [(64, None), (32, [32, 64, 128, 256]), (32, [16, 32, 64, 128, 256]), (28, [16, 32])],
)
@pytest.mark.parametrize("c", [1, 3])
def test_pv_shapes(size, hidden, c):
    enc, dec = build_networks("pv", (c, size, size), 8, channels=hidden)
    assert_raw_outputs(enc, dec, torch.rand(2, c, size, size), 8)


def test_pv_paper_widths_work_without_the_hardcoded_512():
    enc, dec = build_networks("pv", (3, 64, 64), 16, channels=[16, 32, 64, 128, 256])
    assert_raw_outputs(enc, dec, torch.rand(2, 3, 64, 64), 16)


@pytest.mark.parametrize("size", [28, 40, 48])
def test_pv_rejects_sizes_not_divisible(size):
    with pytest.raises(ConfigError, match="divisible by 32") as err:
        build_networks("pv", (3, size, size), 8)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ crvae


@pytest.mark.parametrize(("c", "enc_n", "dec_n"), [(1, 158_432, 457_665), (3, 159_008, 458_243)])
@pytest.mark.parametrize("size", [28, 32])
def test_crvae_medium_reference_parameter_counts(c, enc_n, dec_n, size):
    enc, dec = build_networks("crvae-medium", (c, size, size), 16)  # spec 5.2 (verified)
    assert isinstance(enc, CRVAEMediumEncoder) and isinstance(dec, CRVAEDecoder)
    assert (n_params(enc), n_params(dec)) == (enc_n, dec_n)


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("c", [1, 3])
def test_crvae_medium_shapes(size, c):
    enc, dec = build_networks("crvae-medium", (c, size, size), 16)
    x = torch.rand(3, c, size, size)
    assert enc.features(x).shape == (3, 2048)
    assert_raw_outputs(enc, dec, x, 16)


def test_crvae_medium_bn_on_first_two_convs_only():
    enc = CRVAEMediumEncoder(1, 28, 16)
    kinds = [type(m).__name__ for m in enc.features]
    assert kinds.count("BatchNorm2d") == 2 and kinds[-3:] == ["Conv2d", "Flatten", "ReLU"]


@pytest.mark.parametrize("size", [16, 30, 64])
def test_crvae_medium_rejects_other_sizes(size):
    with pytest.raises(ConfigError, match="only 28x28 and 32x32") as err:
        build_networks("crvae-medium", (1, size, size), 16)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------ resnet


@pytest.fixture(scope="module")
def resnet50_cifar():
    """One ResNet-50 VAE (CIFAR, d=128) and one 2x3x32x32 pass through encoder and decoder."""
    torch.manual_seed(0)
    enc, dec = build_networks("resnet50", (3, 32, 32), 128)
    x = torch.rand(2, 3, 32, 32)
    seen = []
    hook = enc.projection.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    try:
        (mu, logvar), (last, _) = run_recording_last_leaf(enc, x)
    finally:
        hook.remove()
    h, p = seen[0]
    y, (dec_last, dec_last_out) = run_recording_last_leaf(dec, mu)
    return dict(
        enc=enc,
        dec=dec,
        x=x,
        h=h,
        p=p,
        mu=mu,
        logvar=logvar,
        y=y,
        enc_last=last,
        dec_last=dec_last,
        dec_last_out=dec_last_out,
    )


def test_resnet50_parameter_counts(resnet50_cifar):
    enc, dec = resnet50_cifar["enc"], resnet50_cifar["dec"]
    assert isinstance(enc, ResNetEncoder) and isinstance(dec, ResNetDecoder)
    trunk = n_params(enc.backbone)
    projection = n_params(enc) - trunk  # Linear-BN1d-ReLU + the two bias-free heads
    decoder = n_params(dec)
    # spec 6.2 (verified) to the stated precision: 23.50M, 4.72M, 13.29M
    assert (round(trunk / 1e4), round(projection / 1e4), round(decoder / 1e4)) == (2350, 472, 1329)
    # exact values of this implementation
    assert (trunk, projection, decoder) == (23_500_352, 4_724_736, 13_291_203)


def test_resnet50_shapes(resnet50_cifar):
    r = resnet50_cifar
    enc, dec = r["enc"], r["dec"]
    assert enc.feature_dim == 2048 and r["h"].shape == (2, 2048)
    assert r["mu"].shape == r["logvar"].shape == (2, 128)
    assert r["mu"].min() < 0 and r["logvar"].min() < 0
    assert isinstance(r["enc_last"], torch.nn.Linear)
    assert enc.mu.bias is None and enc.logvar.bias is None
    torch.testing.assert_close(r["mu"], enc.mu(r["p"]))  # forward = features -> projection -> mu
    assert r["y"].shape == r["x"].shape
    assert isinstance(r["dec_last"], torch.nn.Conv2d) and r["dec_last_out"] is r["y"]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in dec.modules())


def test_resnet50_features_is_the_backbone(resnet50_cifar):
    enc = resnet50_cifar["enc"]
    x = torch.rand(2, 3, 8, 8)  # tiny input: the check is structural
    with torch.no_grad():
        h = enc.features(x)
        assert h.shape == (2, enc.feature_dim)
        torch.testing.assert_close(h, enc.backbone(x))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("c", [1, 3])
def test_resnet18_shapes_and_features(size, c):
    enc, dec = build_networks("resnet18", (c, size, size), 32)
    x = torch.rand(2, c, size, size)
    seen = []
    hook = enc.projection.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    assert_raw_outputs(enc, dec, x, 32)
    hook.remove()
    assert seen[0].shape == (2, enc.feature_dim) == (2, 512)
    with torch.no_grad():
        assert enc.features(x[:, :, :8, :8]).shape == (2, 512)


def test_resnet_encoder_init_and_stem():
    enc = ResNetEncoder(3, 16, "resnet18")
    stem = enc.backbone.conv1
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.bias is None
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in enc.modules())
    bns = [m for m in enc.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((m.weight == 1).all() and (m.bias == 0).all()) for m in bns)
    w = enc.backbone.layer4[0].conv2.weight  # 512x512x3x3: kaiming fan_out std sqrt(2 / (512*9))
    assert abs(w.std().item() / math.sqrt(2 / (512 * 9)) - 1) < 0.02


def test_resnet_decoder_geometry():
    dec = ResNetDecoder(3, 64, 16, "resnet18")
    assert dec.layer1[0].upscale.size == 8  # layer1 resizes to size / 8
    assert dec.layer2[0].upscale.size is None  # then x2
    assert all(m.bias is not None for m in dec.modules() if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
@pytest.mark.parametrize("size", [28, 36])
def test_resnet_decoder_rejects_sizes_not_divisible_by_8(arch, size):
    with pytest.raises(ConfigError, match="divisible by 8"):
        build_networks(arch, (3, size, size), 16)


# ------------------------------------------------------------------------------------ registry


def test_registry_names():
    assert {"conv", "pv", "crvae-medium", "resnet18", "resnet50"} <= set(ARCHITECTURES)


def test_registry_conv_is_the_existing_conv_vae():
    enc, dec = build_networks("conv", (1, 28, 28), 10, channels=[8, 16, 32])
    assert isinstance(enc, ConvEncoder) and isinstance(dec, ConvDecoder)
    assert n_params(enc) + n_params(dec) == 29_765  # spec 3.2 (as in test_networks.py)
    enc, _ = build_networks("conv", (3, 32, 32), 8, channels=[8, 16], batchnorm=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())


@pytest.mark.parametrize("channels", [None, []])
def test_registry_conv_needs_channels(channels):
    with pytest.raises(ConfigError, match="channels"):
        build_networks("conv", (1, 28, 28), 10, channels=channels)


def test_registry_unknown_arch_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        build_networks("vgg", (3, 32, 32), 10)
    msg = str(err.value)
    assert "\n" not in msg and "'vgg'" in msg
    assert all(name in msg for name in ARCHITECTURES)


@pytest.mark.parametrize(
    ("shape", "latent", "match"),
    [((3, 32, 28), 8, "square"), ((32, 32), 8, r"\(C, H, W\)"), ((3, 32, 32), 0, "latent_dim")],
)
def test_registry_rejects_bad_shapes(shape, latent, match):
    with pytest.raises(ConfigError, match=match):
        build_networks("crvae-medium", shape, latent)
