"""Config: presets, overrides with type coercion, validation errors, auto resolution."""

import pytest

from cvae import config as C
from cvae.errors import ConfigError


def test_every_preset_loads_validates_and_resolves():
    names = C.preset_names()
    assert {
        "vae-mnist-paper",
        "cvae-mnist-paper",
        "cvae-mnist-code",
        "cvae-cifar10-paper",
        "cvae-cifar10-code",
        "vae-cifar10-paper",
        "vae-cifar10-code",
        "vae-mnist-code",
    } <= set(names)
    for name in names:
        cfg = C.validate(C.load_preset(name))
        assert cfg.preset == name
        shape = (1, 28, 28) if "mnist" in name else (3, 32, 32)
        resolved = C.resolve(cfg, shape)
        assert "auto" not in (
            resolved.data.value_range,
            resolved.data.augment,
            resolved.model.output_activation,
        )


def test_paper_and_code_presets_differ_where_the_spec_says():
    paper, code = C.load_preset("cvae-mnist-paper"), C.load_preset("cvae-mnist-code")
    assert (paper.loss.contrastive_weight, code.loss.contrastive_weight) == (0.1, 1e-3)
    assert (paper.model.projection, code.model.projection) == ([8, 5], [8, 4, 2])
    assert (paper.model.projection_final_relu, code.model.projection_final_relu) == (False, True)
    cifar_code = C.load_preset("cvae-cifar10-code")
    assert cifar_code.model.batchnorm and cifar_code.model.output_activation == "sigmoid"
    assert C.load_preset("vae-mnist-code").model.output_activation == "tanh"


def test_overrides_parse_against_field_types():
    cfg = C.RunConfig()
    for key, raw in C.parse_overrides(
        [
            "train.lr=3e-4",
            "model.channels=[4, 8]",
            "data.value_range=01",
            "train.grad_clip=null",
            "train.threads=2",
            "data.data_dir=/tmp/x",
            "train.compile=true",
        ]
    ).items():
        C.set_value(cfg, key, raw)
    assert cfg.train.lr == 3e-4 and cfg.model.channels == [4, 8]
    assert cfg.data.value_range == "01" and cfg.train.grad_clip is None
    assert cfg.train.threads == 2 and cfg.data.data_dir == "/tmp/x" and cfg.train.compile is True


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epochs", "many", "expects an integer"),
        ("train.nope", "1", "unknown config key"),
        ("train", "1", "is a section"),
        ("model.channels", "8", "expects a list"),
        ("train.compile", "maybe", "expects true/false"),
    ],
)
def test_bad_override_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        C.set_value(C.RunConfig(), key, value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("method", "nope", "unknown method"),
        ("train.lr", 0.0, "train.lr must be > 0"),
        ("loss.reduction", "median", "loss.reduction='median' is not one of"),
        ("loss.beta", -1.0, "loss.beta must be >= 0"),
        ("data.val_fraction", 1.0, "val_fraction"),
    ],
)
def test_validation(key, value, message):
    cfg = C.RunConfig()
    C.set_value(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        C.validate(cfg)


def test_resolve_auto_choices():
    cvae_gray = C.resolve(C.RunConfig(method="cvae"), (1, 28, 28))
    assert (
        cvae_gray.data.value_range,
        cvae_gray.model.output_activation,
        cvae_gray.data.augment,
    ) == ("01", "sigmoid", "cvae-mnist")
    vae_rgb = C.resolve(C.RunConfig(method="vae"), (3, 32, 32))
    assert (vae_rgb.data.value_range, vae_rgb.model.output_activation, vae_rgb.data.augment) == (
        "pm1",
        "tanh",
        "none",
    )
    bad = C.RunConfig()
    bad.loss.reconstruction = "bce"
    bad.model.output_activation = "tanh"
    with pytest.raises(ConfigError, match="bce"):
        C.resolve(bad, (1, 28, 28))


def test_yaml_roundtrip(tmp_path):
    cfg = C.load_preset("cvae-cifar10-paper")
    C.save_yaml(cfg, tmp_path / "c.yaml")
    assert C.from_dict(C.load_yaml(tmp_path / "c.yaml")) == cfg
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        C.load_yaml(tmp_path / "bad.yaml")
