"""The papers' comparison systems: InfoVAE (MMD), InfoMax-VAE (critic, dual MI bound), SimCLR.

Hand-computed kernels and bounds, gradient flow (the MI term reaches the encoder, unlike the
CR-VAE code's ``info_loss.item()``), the decoder-free SimCLR, the presets, exact resume."""

import math

import pytest
import torch
from torch import nn

import cvae
from cvae.config import RunConfig, load_preset, set_value
from cvae.methods import build_method, resolve
from cvae.objectives import Critic, kernel_matrix, mi_lower_bound, mmd
from cvae.training.checkpoint import load_checkpoint
from cvae.training.trainer import CHECKPOINT

E1, E4 = math.exp(-1), math.exp(-4)
Z = torch.tensor([[0.0], [1.0]])
PRIOR = torch.tensor([[0.0], [2.0]])  # d = 1, bandwidth 0.5: c = 2 * 1 * 0.5 = 1


def test_rbf_and_imq_kernels_by_hand():
    assert kernel_matrix(Z, PRIOR, "rbf", 0.5).flatten().tolist() == pytest.approx([1, E4, E1, E1])
    assert kernel_matrix(Z, PRIOR, "imq", 0.5).flatten().tolist() == pytest.approx(
        [1, 0.2, 0.5, 0.5]
    )


@pytest.mark.parametrize(
    ("kernel", "estimator", "expected"),
    [
        # K_zz mean (1 + e^-1)/2, K_pp mean (1 + e^-4)/2, K_zp mean (1 + e^-4 + 2 e^-1)/4
        ("rbf", "biased", (1 - E1) / 2),
        # off-diagonal means e^-1 and e^-4, the same cross term
        ("rbf", "unbiased", (E4 - 1) / 2),
        # 0.75 + 0.6 - 2 * 0.55
        ("imq", "biased", 0.25),
        ("imq", "unbiased", 0.5 + 0.2 - 1.1),
    ],
)
def test_mmd_by_hand(kernel, estimator, expected):
    assert mmd(Z, PRIOR, kernel, 0.5, estimator).item() == pytest.approx(expected, rel=1e-6)


def test_mmd_is_zero_for_identical_samples_and_checks_shapes():
    assert mmd(Z, Z, "rbf", 1.0, "biased").item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError):
        mmd(Z, torch.zeros(2, 3))


@pytest.mark.parametrize(
    ("divergence", "expected"),
    [
        ("kl", 1.5 - (E1 + 1) / 2),
        ("dv", 1.5 - math.log((1 + math.e) / 2)),
        (
            "js",
            -(math.log1p(E1) + math.log1p(math.exp(-2))) / 2
            - (math.log(2) + math.log1p(math.e)) / 2,
        ),
    ],
)
def test_dual_bounds_by_hand(divergence, expected):
    bound = mi_lower_bound(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), divergence)
    assert bound.item() == pytest.approx(expected, rel=1e-6)


def test_fixed_critic_bound_on_shuffled_pairs():
    critic = Critic(x_dim=1, latent_dim=1, hidden=1)
    with torch.no_grad():  # T(x, z) = relu(relu(x + z))
        for layer, w in zip(
            [m for m in critic.net if isinstance(m, nn.Linear)],
            [[[1.0, 1.0]], [[1.0]], [[1.0]]],
            strict=True,
        ):
            layer.weight.copy_(torch.tensor(w))
            layer.bias.zero_()
    x, z = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [1.0]])
    t_joint, t_marg = critic(x, z), critic(x, z[torch.tensor([1, 0])])
    assert t_joint.tolist() == [1.0, 3.0] and t_marg.tolist() == [2.0, 2.0]
    # KL dual: mean(1, 3) - mean(exp(2 - 1), exp(2 - 1)) = 2 - e
    assert mi_lower_bound(t_joint, t_marg, "kl").item() == pytest.approx(2 - math.e, rel=1e-6)


def make(method: str, shape=(1, 28, 28), **keys):
    cfg = RunConfig(method=method)
    for key, value in keys.items():
        set_value(cfg, key.replace("__", "."), value)
    return build_method(resolve(cfg, shape), shape)


def grads(module: nn.Module) -> list[bool]:
    return [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]


def images(n=8, shape=(1, 28, 28)):
    return torch.randint(
        0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )


def test_mi_term_reaches_the_encoder_and_the_critic():
    torch.manual_seed(0)
    m = make("infomaxvae")
    out = m(images(), torch.Generator().manual_seed(1))
    assert set(out) == {"recon", "kl", "infomax", "loss", "sigma"}
    out["infomax"].backward()
    assert any(grads(m.model.encoder)) and all(grads(m.terms["infomax"].critic))
    assert not any(grads(m.model.decoder))  # the MI term reads x and z only
    # the critic is part of the method: in its parameters (so the optimizer's) and state dict
    assert any(k.startswith("terms.infomax.critic.") for k in m.state_dict())


def test_mmd_gradients_reach_the_encoder_and_infovae_weights():
    torch.manual_seed(0)
    m = make("infovae")
    assert m.weights == {"recon": 1.0, "kl": 1.0, "mmd": 999.0}  # alpha = 0, lambda = 1000
    out = m(images(), torch.Generator().manual_seed(1))
    out["mmd"].backward()
    assert any(grads(m.model.encoder)) and not any(grads(m.model.decoder))


def test_simclr_never_calls_the_decoder():
    torch.manual_seed(0)
    shape = (3, 32, 32)
    m = make("simclr", shape)
    assert m.term_names == ["ntxent"] and m.num_views == 2 and m.model.head is None

    def refuse(z):
        raise AssertionError("the decoder was called")

    m.model.decoder.forward = refuse
    out = m(images(8, shape), torch.Generator().manual_seed(1))
    assert set(out) == {"ntxent", "loss", "sigma"}
    out["loss"].backward()
    assert any(grads(m.model.encoder))


PRESETS = {
    **{
        f"{m}-{d}": (1, 28, 28)
        for m in ("infovae", "infomaxvae")
        for d in ("mnist", "emnist", "fashion-mnist")
    },
    "infovae-cifar10": (3, 32, 32),
    "infomaxvae-cifar10": (3, 32, 32),
    "simclr-cifar10": (3, 32, 32),
}


@pytest.mark.parametrize(
    "name",
    [  # the CIFAR-10 networks take seconds just to build: integration tier
        pytest.param(n, marks=pytest.mark.integration) if n.endswith("cifar10") else n
        for n in sorted(PRESETS)
    ],
)
def test_new_presets_resolve_build_and_take_a_step(name):
    torch.manual_seed(0)
    shape = PRESETS[name]
    cfg = resolve(load_preset(name), shape)
    assert cfg.method == name.split("-")[0] and cfg.preset == name
    m = build_method(cfg, shape)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in m.model.encoder.parameters()]
    out = m(images(4, shape), torch.Generator().manual_seed(1))
    out["loss"].backward()
    opt.step()
    assert torch.isfinite(out["loss"])
    assert any(
        not torch.equal(a, b) for a, b in zip(before, m.model.encoder.parameters(), strict=True)
    )


def small(epochs: int) -> RunConfig:
    cfg = RunConfig(method="infomaxvae")
    cfg.data.dataset = "digits"
    cfg.model.channels = [8, 16]
    cfg.loss.terms.infomax.hidden = 16
    cfg.train.batch_size = 64
    cfg.train.epochs = epochs
    cfg.train.threads = 1
    cfg.train.progress = False
    cfg.train.tensorboard = False
    return cfg


def test_infomaxvae_resume_is_exact_with_the_critic_in_the_checkpoint(tmp_path):
    cvae.train(small(2), tmp_path / "whole")
    cvae.train(small(1), tmp_path / "split")
    cvae.train(small(2), tmp_path / "split", resume=True)
    whole = load_checkpoint(tmp_path / "whole" / CHECKPOINT)["method"]
    split = load_checkpoint(tmp_path / "split" / CHECKPOINT)["method"]
    assert any(k.startswith("terms.infomax.critic.") for k in whole)
    assert whole.keys() == split.keys()
    for k in whole:
        assert torch.equal(whole[k], split[k]), k
