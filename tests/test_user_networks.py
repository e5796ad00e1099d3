"""A user's own encoder/decoder (docs/networks.md): registered in an importable module that
``model.module`` names, trained, evaluated, exported and loaded without editing cvae; bad modules,
names and networks refused on one line."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import yaml
from badinput import TINY_TRAIN, expect_refusal, private_copy
from torch import nn

import cvae
from cvae.cli import main
from cvae.config import RunConfig
from cvae.errors import ConfigError
from cvae.networks import ARCHITECTURES, build_networks, register_architecture

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MLP = [*TINY_TRAIN, "--set", "model.module=my_nets", "--set", "model.arch=mlp",
       "--set", "model.channels=[16]"]  # fmt: skip
EVAL_CHEAP = ["--embedding", "none", "--iwae-k", "0", "--no-linear", "--fid-n", "0"]

UserModule = Callable[[str, str], str]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``examples`` on sys.path; afterwards the registry and sys.modules forget the user modules,
    so the next test imports them again, as a new process would."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    saved, modules = dict(ARCHITECTURES), set(sys.modules)
    yield
    ARCHITECTURES.clear()
    ARCHITECTURES.update(saved)
    for name in set(sys.modules) - modules:
        if name == "my_nets" or name.startswith("user_nets_"):
            del sys.modules[name]


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UserModule:
    """``write(name, source)``: the module ``user_nets_<name>`` in an importable folder."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def write(name: str, source: str) -> str:
        module = f"user_nets_{name}"
        (folder / f"{module}.py").write_text(textwrap.dedent(source))
        return module

    return write


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits run of the example MLP, trained through the CLI in-process."""
    run = tmp_path_factory.mktemp("user-nets") / "run"
    sys.path.insert(0, str(EXAMPLES))
    try:
        assert main(["train", *MLP, "--set", "train.epoch_fraction=0.2", "--out", str(run)]) == 0
    finally:
        sys.path.remove(str(EXAMPLES))
        ARCHITECTURES.pop("mlp", None)
        sys.modules.pop("my_nets", None)
    return run


def test_the_run_records_module_and_architecture(mlp_run: Path) -> None:
    model = yaml.safe_load((mlp_run / "config.yaml").read_text())["model"]
    assert (model["module"], model["arch"], model["channels"]) == ("my_nets", "mlp", [16])


def test_load_imports_the_module_again_and_rebuilds_the_net(mlp_run: Path) -> None:
    assert "my_nets" not in sys.modules
    run = cvae.load(mlp_run)
    assert type(run.model.encoder).__name__ == "MLPEncoder"
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    mu, logvar = run.encode(images)
    assert mu.shape == logvar.shape == (5, 10)
    assert run.decode(mu).shape == (5, 1, 8, 8)


def test_export_and_load_give_identical_outputs(mlp_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    assert main(["export", str(mlp_run), "--out", str(out)]) == 0
    assert "`mlp` from module `my_nets`" in (out / "README.md").read_text()
    a, b = cvae.load(mlp_run), cvae.load(out)
    assert b.config.model.module == "my_nets"
    images = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(a.encode(images)[0], b.encode(images)[0])
    assert torch.equal(a.sample(4), b.sample(4))


@pytest.mark.integration
def test_eval_rebuilds_the_net(mlp_run: Path, tmp_path: Path) -> None:
    run = private_copy(mlp_run, tmp_path)
    assert main(["eval", str(run), *EVAL_CHEAP, "--threads", "1", "--no-progress"]) == 0
    assert "knn_uniform_euclidean" in (run / "metrics.json").read_text()


def test_api_records_the_module_of_a_name_registered_in_process(tmp_path: Path) -> None:
    import my_nets  # registers "mlp"

    cfg = RunConfig()
    cfg.data.dataset, cfg.train.epochs, cfg.train.epoch_fraction = "digits", 1, 0.1
    cfg.train.tensorboard, cfg.train.progress = False, False
    cfg.model.arch = "mlp"
    result = cvae.train(cfg, tmp_path / "run")
    assert (result.config.model.module, my_nets.build_mlp.__module__) == ("my_nets", "my_nets")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["module"] == (
        "my_nets"
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["model.module=no_such_module_for_cvae"], "'no_such_module_for_cvae' cannot be imported"),
        (["model.module=examples/my_nets.py"], "is not a module name"),
        (["model.module=my_nets", "model.arch=mlp2"], "unknown architecture 'mlp2'"),
        (["model.arch=mlp"], "needs model.module"),
    ],
)
def test_bad_module_or_name_is_one_line(
    overrides: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = [x for o in overrides for x in ("--set", o)]
    arch = [] if any(o.startswith("model.arch") for o in overrides) else ["--set", "model.arch=mlp"]
    argv = ["train", *TINY_TRAIN, *sets, *arch, "--out", str(tmp_path / "run")]
    expect_refusal(capsys, argv, code=2, needle=needle, root=tmp_path)


WRONG_NETS = """
    import torch
    from torch import nn
    from cvae.networks import register_architecture

    class Enc(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.fc = nn.Linear(64, d)
        def forward(self, x):
            h = self.fc(x.flatten(1))
            return h, h

    class Dec(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.fc = nn.Linear(d, 64)
        def forward(self, z):
            return self.fc(z).view(-1, 1, 8, 8)

    @register_architecture("wrong")
    def build(image_shape, latent_dim, **options):
        return {nets}
"""


@pytest.mark.parametrize(
    ("nets", "needle"),
    [
        ("Enc(latent_dim + 1), Dec(latent_dim)", "encoder must map [2, 1, 8, 8] to (mu, logvar)"),
        ("Enc(latent_dim), Dec(latent_dim + 1)", "the decoder fails on [2, 10]: RuntimeError"),
        ("Enc(latent_dim), nn.Flatten()", "decoder must map [2, 10] to logits of [2, 1, 8, 8]"),
        ("Enc(latent_dim)", "must return (encoder, decoder) nn.Modules"),
        ("1 / 0", "failed to build: ZeroDivisionError"),
    ],
)
def test_builder_breaking_the_interface_is_refused(
    nets: str, needle: str, user_module: UserModule
) -> None:
    module = user_module(f"wrong{abs(hash(nets))}", WRONG_NETS.format(nets=nets))
    with pytest.raises(ConfigError) as err:
        build_networks("wrong", (1, 8, 8), 10, module=module)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_wrong_shapes_stop_cvae_train_on_one_line(
    user_module: UserModule, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = user_module("wrongcli", WRONG_NETS.format(nets="Enc(latent_dim + 1), Dec(latent_dim)"))
    argv = ["train", *TINY_TRAIN, "--set", f"model.module={module}", "--set", "model.arch=wrong",
            "--out", str(tmp_path / "run")]  # fmt: skip
    expect_refusal(capsys, argv, code=2, needle="the encoder must map", root=tmp_path)


def test_module_failing_on_import_is_one_line(
    user_module: UserModule, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = user_module("broken", "raise RuntimeError('half-written module')\n")
    argv = ["train", *TINY_TRAIN, "--set", f"model.module={module}", "--out", str(tmp_path / "r")]
    expect_refusal(capsys, argv, code=2, needle="failed on import: RuntimeError", root=tmp_path)


def test_eval_of_a_run_whose_module_is_gone_names_it(
    mlp_run: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(EXAMPLES)])
    needle = "model.module 'my_nets' cannot be imported"
    line = expect_refusal(capsys, ["eval", str(mlp_run)], code=2, needle=needle, root=mlp_run)
    assert "PYTHONPATH" in line and "not a checkpoint" not in line


def test_register_refuses_taken_names_and_accepts_a_reimport() -> None:
    def build(image_shape, latent_dim, **options):  # noqa: ANN001, ANN003, ANN202
        return nn.Identity(), nn.Identity()

    with pytest.raises(ConfigError, match="'conv' is already registered"):
        register_architecture("conv")(build)
    register_architecture("mine")(build)
    register_architecture("mine")(build)  # the same function again: a re-import
    with pytest.raises(ConfigError, match="'mine' is already registered"):
        register_architecture("mine")(lambda image_shape, latent_dim, **o: build(image_shape, 1))
    with pytest.raises(ConfigError, match="non-empty string"):
        register_architecture("")


def test_the_shape_check_leaves_batchnorm_statistics_and_modes_alone() -> None:
    @register_architecture("bn-mlp")
    def build(image_shape, latent_dim, **options):  # noqa: ANN001, ANN003, ANN202
        enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 4))
        enc.forward = lambda x: nn.Sequential.forward(enc, x).chunk(2, dim=1)  # type: ignore[method-assign]
        dec = nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)))
        dec[0].eval()  # a submodule the user left in eval mode stays so
        return enc, dec

    enc, dec = build_networks("bn-mlp", (1, 4, 4), 2)
    bn = enc[2]
    assert enc.training and bn.training and dec.training and not dec[0].training
    assert torch.equal(bn.running_mean, torch.zeros(8)) and int(bn.num_batches_tracked) == 0


def test_user_architecture_may_take_non_square_images() -> None:
    enc, dec = build_networks("mlp", (3, 4, 6), 5, channels=[7], module="my_nets")
    mu, logvar = enc(torch.zeros(3, 3, 4, 6))
    assert mu.shape == logvar.shape == (3, 5) and dec(mu).shape == (3, 3, 4, 6)
    with pytest.raises(ConfigError, match="square images"):
        build_networks("conv", (1, 4, 6), 5, channels=[8])
    with pytest.raises(ConfigError, match="no batchnorm option"):
        build_networks("mlp", (1, 8, 8), 5, batchnorm=True)
