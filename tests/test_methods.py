"""Methods as weighted sums of terms: which terms run, which views, which parameters learn."""

import pytest
import torch

from cvae.config import RunConfig, set_value
from cvae.methods import METHODS, build_method, resolve
from cvae.objectives import kl_loss, mse


def make(method: str, shape=(1, 28, 28), **loss):
    """``make("cvae", ntxent={"weight": 0.1}, views_regularised="all")``: per-term sub-configs
    by term name, shared loss options by name."""
    cfg = RunConfig(method=method)
    for k, v in loss.items():
        for key, value in v.items() if isinstance(v, dict) else [("", v)]:
            set_value(cfg, f"loss.terms.{k}.{key}" if key else f"loss.{k}", value)
    return build_method(resolve(cfg, shape), shape)


def batch(n=8, shape=(1, 28, 28)):
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8)


def test_registry_and_views_follow_active_terms():
    assert {"vae", "cvae", "btvae", "crvae", "aavae", "ae", "aaae"} <= set(METHODS)
    assert make("vae").num_views == 1 and make("cvae").num_views == 2
    assert make("crvae").num_views == 2 and make("btvae").num_views == 1
    assert make("vae", ntxent={"weight": 0.1}).num_views == 2  # a term switched on adds views


def test_vae_loss_is_recon_plus_beta_kl():
    torch.manual_seed(0)
    m = make("vae", kl={"weight": 0.5})
    x = batch()
    out = m(x, torch.Generator().manual_seed(1))
    assert set(out) == {"recon", "kl", "loss", "sigma"}
    assert out["loss"].item() == pytest.approx(
        out["recon"].item() + 0.5 * out["kl"].item(), rel=1e-6
    )
    # recompute by hand with the same noise: clean input, per-pixel mean MSE, KL sum/B
    xf = x.float() / 255
    mu, logvar = m.model.encode(xf)
    z = m.model.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert out["recon"].item() == pytest.approx(mse(m.model.decode(z), xf).item(), rel=1e-5)
    assert out["kl"].item() == pytest.approx(kl_loss(mu, logvar).item(), rel=1e-5)


def test_cvae_has_three_terms_and_zero_weight_skips():
    m = make("cvae", ntxent={"weight": 0.1})
    out = m(batch(), torch.Generator().manual_seed(0))
    assert set(out) == {"recon", "kl", "ntxent", "loss", "sigma"}
    expected = out["recon"] + 1e-3 * out["kl"] + 0.1 * out["ntxent"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    off = make("cvae", ntxent={"weight": 0.0}, kl={"weight": 0.0})
    assert set(off(batch(), torch.Generator().manual_seed(0))) == {"recon", "loss", "sigma"}


def test_cvae_views_are_augmented_independently_and_val_is_clean():
    m = make("cvae")
    step = m.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    assert len(step.views) == 2 and not torch.equal(step.views[0], step.views[1])
    assert not torch.equal(step.views[0], step.clean)
    clean = m.make_step(batch(), torch.Generator().manual_seed(0), train=False)
    assert torch.equal(clean.views[0], clean.clean) and torch.equal(clean.views[1], clean.clean)


def test_recon_target_clean_vs_view():
    x = batch()
    for target in ("view", "clean"):
        m = make("cvae", recon={"target": target})
        step = m.make_step(x, torch.Generator().manual_seed(0), train=True)
        x_hat = m.model.activate(step.logits(0))
        want = mse(x_hat, step.clean if target == "clean" else step.views[0])
        assert m.terms["recon"](step).item() == pytest.approx(want.item(), rel=1e-6)


def test_views_regularised_all_averages_both_views():
    m = make("cvae", views_regularised="all")
    step = m.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    both = [kl_loss(step.posterior(v).mu, step.posterior(v).logvar) for v in (0, 1)]
    assert m.terms["kl"](step).item() == pytest.approx(sum(both).item() / 2, rel=1e-6)


def test_gradient_flow_per_term():
    m = make("cvae")
    step = m.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    m.terms["ntxent"](step).backward()
    assert all(p.grad is not None for p in m.model.head.parameters())
    assert all(p.grad is not None for p in m.model.encoder.parameters())
    assert all(p.grad is None for p in m.model.decoder.parameters())  # NT-Xent never decodes
    m.zero_grad(set_to_none=True)
    step = m.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    m.terms["kl"](step).backward()
    assert all(p.grad is None for p in m.model.decoder.parameters())
    assert all(p.grad is None for p in m.model.head.parameters())


def test_learned_gaussian_scale_is_a_parameter():
    m = make("vae", recon={"likelihood": "gaussian", "reduction": "sum", "learn_scale": True})
    names = [n for n, _ in m.named_parameters()]
    assert "terms.recon.log_scale" in names
    fixed = make("vae", recon={"likelihood": "gaussian", "reduction": "sum"})
    assert "terms.recon.log_scale" not in [n for n, _ in fixed.named_parameters()]


def test_pm1_range_maps_views():
    m = make("vae", shape=(3, 8, 8))
    step = m.make_step(torch.full((2, 3, 8, 8), 255, dtype=torch.uint8), torch.Generator(), False)
    assert torch.equal(step.clean, torch.ones(2, 3, 8, 8))
    step = m.make_step(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.Generator(), False)
    assert torch.equal(step.clean, -torch.ones(2, 3, 8, 8))
