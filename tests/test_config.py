"""Config: presets, overrides with type coercion, validation errors, auto resolution."""

import math

import pytest

from cvae import config as C
from cvae.errors import ConfigError
from cvae.methods import check_config, resolve


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
        cfg = check_config(C.load_preset(name))
        assert cfg.preset == name
        shape = (1, 28, 28) if "mnist" in name else (3, 32, 32)
        resolved = resolve(cfg, shape)
        assert "auto" not in (
            resolved.data.value_range,
            resolved.data.augment,
            resolved.model.output_activation,
            resolved.loss.terms.recon.target,
        )
        assert all(resolved.loss.terms[t].weight is not None for t in C.TERM_NAMES)


def test_paper_and_code_presets_differ_where_the_spec_says():
    paper, code = C.load_preset("cvae-mnist-paper"), C.load_preset("cvae-mnist-code")
    assert (paper.loss.terms.ntxent.weight, code.loss.terms.ntxent.weight) == (0.1, 1e-3)
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
            "loss.terms.infonce.momentum=0.9",
            "loss.terms.barlow.features=z",
            "loss.stages=[{epochs: 2, weights: {kl: 0}}]",
        ]
    ).items():
        C.set_value(cfg, key, raw)
    assert cfg.train.lr == 3e-4 and cfg.model.channels == [4, 8]
    assert cfg.data.value_range == "01" and cfg.train.grad_clip is None
    assert cfg.train.threads == 2 and cfg.data.data_dir == "/tmp/x" and cfg.train.compile is True
    assert cfg.loss.terms.infonce.momentum == 0.9 and cfg.train.momentum == 0.9
    assert cfg.loss.terms.barlow.features == "z"
    assert cfg.loss.stages == [C.Stage(epochs=2, weights={"kl": 0.0})]


def test_old_keys_are_aliases():
    cfg = C.RunConfig()
    C.set_value(cfg, "loss.beta", "1e-5")
    C.set_value(cfg, "loss.momentum", "0.5")
    C.set_value(cfg, "loss.reconstruction", "bce")
    assert cfg.loss.terms.kl.weight == 1e-5 and C.get_value(cfg, "loss.beta") == 1e-5
    assert cfg.loss.terms.infonce.momentum == 0.5 and cfg.train.momentum == 0.9
    assert cfg.loss.terms.recon.likelihood == "bce"
    assert C.from_dict({"loss": {"beta": 2.0}}).loss.terms.kl.weight == 2.0
    with pytest.raises(ConfigError, match="old name of loss.terms.kl.weight"):
        C.from_dict({"loss": {"beta": 2.0, "terms": {"kl": {"weight": 1.0}}}})
    assert set(C.OLD_KEYS.values()) <= set(C.flatten(C.RunConfig().to_dict()))


def test_attributes_are_slots():
    """A misspelt attribute (or an old name) fails instead of being silently added."""
    with pytest.raises(AttributeError):
        C.RunConfig().loss.beta = 1.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.epochs", "many", "expects an integer"),
        ("train.nope", "1", "unknown config key"),
        ("train", "1", "is a section"),
        ("model.channels", "8", "expects a list"),
        ("train.compile", "maybe", "expects true/false"),
        ("loss.terms.recon.reduction", "median", "reduction='median' is not one of mean, sum"),
        ("loss.schedules", "{beta: linear:2}", "unknown key 'beta'"),
        ("loss.stages", "[{weights: {kl: 1}}]", r"loss.stages\[0\] needs epochs"),
        ("loss.stages", "[{epochs: 1, weight: {}}]", "unknown key 'weight'"),
        ("loss.terms.kl", "1", "is a section"),
    ],
)
def test_bad_override_values(key, value, message):
    with pytest.raises(ConfigError, match=message):
        C.set_value(C.RunConfig(), key, value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train.lr", 0.0, r"train.lr must be > 0, got 0.0"),
        ("loss.beta", -1.0, r"loss.terms.kl.weight must be >= 0 or null, got -1.0"),
        ("data.val_fraction", 1.0, r"data.val_fraction must be in \[0, 1\), got 1.0"),
        ("train.epoch_fraction", 0.0, r"must be in \(0, 1\]"),
        ("train.grad_clip", -1.0, "train.grad_clip must be > 0 or null"),
        ("model.projection", [8, 0], "each entry of model.projection must be > 0"),
        ("model.channels", [], "model.channels must not be empty"),
        ("loss.terms.infonce.momentum", 1.0, r"momentum must be in \[0, 1\)"),
        ("loss.terms.infonce.queue_size", 0, "queue_size must be >= 1"),
        ("loss.stages", [{"epochs": 0}], r"loss.stages\[0\].epochs must be >= 1"),
        ("loss.schedules", {"kl": "linear:0"}, "loss.schedules.kl 'linear:0' is not one of"),
        ("train.lr", math.nan, "train.lr must be a finite number, got nan"),
        ("loss.terms.recon.log_scale", math.inf, "log_scale must be a finite number, got inf"),
        ("loss.stages", [{"epochs": 1, "weights": {"kl": -math.inf}}], "must be a finite"),
        ("train.seed", 2**32, r"train.seed must be in \[0, 2\*\*32\), got 4294967296"),
        ("train.device", "gpu", "train.device 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        ("train.plateau_factor", 1.0, r"plateau_factor must be in \(0, 1\)"),
        ("data.synthetic_shape", [1, 28], r"synthetic_shape must have 3 entries, got \[1, 28\]"),
    ],
)
def test_validation(key, value, message):
    cfg = C.RunConfig()
    C.set_value(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        C.validate(cfg)


def test_nesterov_needs_momentum():
    cfg = C.from_dict({"train": {"optimizer": "sgd", "nesterov": True, "momentum": 0.0}})
    with pytest.raises(ConfigError, match="train.nesterov needs train.momentum > 0"):
        C.validate(cfg)
    cfg.train.optimizer = "adam"
    C.validate(cfg)


def test_validation_checks_directly_assigned_attributes():
    cfg = C.RunConfig()
    cfg.loss.terms.recon.reduction = "median"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match="reduction='median' is not one of"):
        C.validate(cfg)
    assert C.validate(C.RunConfig()) == C.RunConfig()


def test_registry_checks():
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        check_config(C.RunConfig(method="nope"))
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        check_config(C.from_dict({"data": {"dataset": "nope"}}))
    no_head = C.from_dict({"method": "cvae", "model": {"projection": []}})
    with pytest.raises(ConfigError, match="the ntxent term needs a projection head"):
        resolve(no_head, (1, 28, 28))


def test_resolve_auto_choices():
    cvae_gray = resolve(C.RunConfig(method="cvae"), (1, 28, 28))
    assert (
        cvae_gray.data.value_range,
        cvae_gray.model.output_activation,
        cvae_gray.data.augment,
    ) == ("01", "sigmoid", "cvae-mnist")
    vae_rgb = resolve(C.RunConfig(method="vae"), (3, 32, 32))
    assert (vae_rgb.data.value_range, vae_rgb.model.output_activation, vae_rgb.data.augment) == (
        "pm1",
        "tanh",
        "none",
    )
    aavae = resolve(C.RunConfig(method="aavae"), (3, 32, 32))
    assert (aavae.loss.terms.recon.target, aavae.data.augment) == ("clean", "simclr-cifar")
    assert (aavae.loss.terms.kl.weight, aavae.loss.terms.ntxent.weight) == (0.0, 0.0)
    ae = resolve(C.RunConfig(method="ae"), (3, 32, 32))
    assert ae.model.deterministic and ae.data.augment == "none"
    bad = C.RunConfig()
    bad.loss.terms.recon.likelihood = "bce"
    bad.model.output_activation = "tanh"
    with pytest.raises(ConfigError, match="bce"):
        resolve(bad, (1, 28, 28))


def test_yaml_roundtrip(tmp_path):
    cfg = C.load_preset("cvae-cifar10-paper")
    C.save_yaml(cfg, tmp_path / "c.yaml")
    assert C.from_dict(C.load_yaml(tmp_path / "c.yaml")) == cfg
    (tmp_path / "bad.yaml").write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="invalid YAML"):
        C.load_yaml(tmp_path / "bad.yaml")
