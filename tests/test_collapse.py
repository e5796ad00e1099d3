"""Collapse and likelihood metrics against analytic answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cvae.config import RunConfig
from cvae.evaluation.collapse import (
    active_units,
    log_aggregate_posterior,
    marginal_kl,
    mean_kl,
    mutual_information,
)
from cvae.evaluation.likelihood import Likelihood, iwae_nll, recon_nll, run_likelihood
from cvae.networks import VAE


def test_kl_hand_values_and_per_dim() -> None:
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(0, e^2) || N(0, 1)) = (e^2 - 1 - 2) / 2
    mu = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    logvar = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    out = mean_kl(mu, logvar)
    assert out["per_dim"] == pytest.approx([0.5, (math.e**2 - 3) / 2], abs=1e-6)
    assert out["value"] == pytest.approx(0.5 + (math.e**2 - 3) / 2, abs=1e-6)


def test_log_aggregate_posterior_matches_direct_sum_and_chunking() -> None:
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(50, 3, generator=g), torch.randn(50, 3, generator=g) * 0.5
    z = torch.randn(7, 3, generator=g)
    comp = torch.distributions.Normal(mu[None].double(), (0.5 * logvar[None].double()).exp())
    direct = torch.logsumexp(comp.log_prob(z[:, None].double()).sum(-1), 1) - math.log(50)
    for chunk in (50, 8, 1):
        torch.testing.assert_close(log_aggregate_posterior(z, mu, logvar, chunk), direct)


def test_tiny_variances_keep_the_aggregate_posterior_exact() -> None:
    """A posterior with variance e^-100 in one dimension: the expanded form cancels every digit
    (the MI was -7e25 on a BTVAE run); each point's own component is computed exactly."""
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(6, 3, generator=g) + 3.0, torch.zeros(6, 3)
    logvar[:, 1] = -100.0
    eps = torch.randn(6, 3, generator=g, dtype=torch.float64)
    z = mu.double() + eps * torch.exp(0.5 * logvar.double())
    own = -0.5 * (eps.pow(2) + logvar.double() + math.log(2 * math.pi)).sum(1)
    # the others are e^-100-variance components at least ~1e-3 away: exp(-1e40) = 0
    want = own - math.log(6)
    got = log_aggregate_posterior(z, mu, logvar, chunk=4, own_eps=eps)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(log_aggregate_posterior(z, mu, logvar, chunk=4), want)
    # each batch holds the 6 separate components: log q(z_i) = own_i - log 6, and
    # E_q[log q(z|x)] - own_i = sum_j (eps_ij^2 - 1) / 2, with the eps the estimator draws (seed 0)
    mi = mutual_information(mu.repeat(50, 1), logvar.repeat(50, 1), batch_size=6, seed=0)
    drawn = torch.randn((300, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want_mi = math.log(6) + float(0.5 * (drawn.pow(2) - 1).sum(1).mean())
    assert mi["value"] == pytest.approx(want_mi, abs=1e-9)


def test_mi_zero_when_posterior_ignores_x() -> None:
    n = 4096
    mu = torch.tensor([[0.3, -1.0, 2.0]]).repeat(n, 1)
    logvar = torch.tensor([[-1.0, 0.0, 0.5]]).repeat(n, 1)
    mi_b = mutual_information(mu, logvar, batch_size=256)
    mi_f = mutual_information(mu, logvar, batch_size=None)
    # MC noise of the entropy term: std sqrt(d/2)/sqrt(n) ~ 0.02
    assert abs(mi_b["value"]) < 0.06 and abs(mi_f["value"]) < 0.06
    kl = mean_kl(mu, logvar)
    marginal = marginal_kl(kl, mi_b, mi_f)
    assert marginal["value"] == pytest.approx(kl["value"] - mi_b["value"])
    assert marginal["value_full"] == pytest.approx(kl["value"], abs=0.06)  # q(z) = q(z|x)
    assert active_units(mu)["value"] == 0


def test_mi_linear_gaussian_encoder_matches_analytic() -> None:
    # x ~ N(0, I_2), q(z|x) = N(a x, v): q(z) = N(0, a^2 + v), I(x; z) = d/2 log((a^2 + v) / v)
    a, v, n = 1.0, 0.25, 4000
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(3))
    mu, logvar = a * x, torch.full((n, 2), math.log(v))
    analytic = 2 * 0.5 * math.log((a**2 + v) / v)  # 1.609
    full = mutual_information(mu, logvar, batch_size=None, chunk=1000)
    assert full["value"] == pytest.approx(analytic, abs=0.05)
    batch = mutual_information(mu, logvar, batch_size=256)
    assert batch["value"] < full["value"]  # a 256-component q(z) is sharper: biased low
    assert full["protocol"]["batch_size"] == n and batch["protocol"]["batch_size"] == 256


def test_mi_saturates_at_log_batch_for_separated_posteriors() -> None:
    n = 2048
    mu = torch.arange(n, dtype=torch.float32)[:, None] * 100.0
    logvar = torch.full((n, 1), -2.0)
    full = mutual_information(mu, logvar, batch_size=None)
    batch = mutual_information(mu, logvar, batch_size=256)
    # noise of the entropy term: sqrt(1/2)/sqrt(2048) ~ 0.016
    assert full["value"] == pytest.approx(math.log(n), abs=0.06)
    assert batch["value"] == pytest.approx(math.log(256), abs=0.06)


def test_active_units_collapsed_and_identity() -> None:
    assert active_units(torch.ones(100, 4))["value"] == 0
    x = torch.randn(100, 4, generator=torch.Generator().manual_seed(0))
    assert active_units(x)["value"] == 4
    # threshold is inclusive (CR-VAE code ">="): variance exactly 0.01 counts
    col = torch.tensor([[-0.1], [0.1]]) / math.sqrt(2)  # unbiased var = 0.01
    assert active_units(col)["value"] == 1


class _LinearGaussian(nn.Module):
    """Encoder of the exact posterior of x = W z + b + sigma e, z ~ N(0, I), with orthogonal
    columns of W: q(z_j|x) = N(v_j w_j.(x - b) / sigma^2, v_j), v_j = 1 / (1 + |w_j|^2/sigma^2)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, sigma: float, exact: bool) -> None:
        super().__init__()
        self.w, self.b, self.s2, self.exact = w, b, sigma**2, exact

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v = 1 / (1 + (self.w**2).sum(0) / self.s2)
        mu = (x - self.b) @ self.w * v / self.s2
        if not self.exact:  # a poor q: the prior
            return torch.zeros_like(mu), torch.zeros_like(mu)
        return mu, v.log().expand_as(mu)


def _linear_gaussian_model(exact: bool) -> tuple[VAE, torch.Tensor, torch.Tensor]:
    w = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    b, sigma = torch.tensor([0.5, -0.5, 1.0]), 0.5
    dec = nn.Linear(2, 3)
    with torch.no_grad():
        dec.weight.copy_(w)
        dec.bias.copy_(b)
    model = VAE(_LinearGaussian(w, b, sigma, exact), dec, 2, output_activation="identity")
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)) * 1.5
    cov = w @ w.T + sigma**2 * torch.eye(3)
    log_px = torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    return model, x, log_px


def test_iwae_exact_with_true_posterior_and_bound_otherwise() -> None:
    lik = Likelihood("gaussian", math.log(0.5))
    model, x, log_px = _linear_gaussian_model(exact=True)
    out = iwae_nll(model, x, lik, k=3, max_decode=16)
    assert out["value"] == pytest.approx(float(-log_px.mean()), abs=1e-4)  # exact for any k
    assert out["bits_per_dim"] == pytest.approx(out["value"] / (3 * math.log(2)))
    prior_q, _, _ = _linear_gaussian_model(exact=False)
    loose = iwae_nll(prior_q, x, lik, k=1, seed=1)["value"]
    tight = iwae_nll(prior_q, x, lik, k=2000, seed=1)["value"]
    assert tight == pytest.approx(float(-log_px.mean()), abs=0.05)
    assert loose > tight > float(-log_px.mean()) - 0.05


def test_iwae_bernoulli_with_prior_equal_posterior() -> None:
    # decoder ignores z: p(x|z) = Bernoulli(sigmoid(c)), q = prior, so every weight is p(x)
    dec = nn.Linear(2, 4)
    with torch.no_grad():
        dec.weight.zero_()
        dec.bias.copy_(torch.tensor([0.0, 1.0, -2.0, 3.0]))
    model = VAE(_LinearGaussian(torch.zeros(4, 2), torch.zeros(4), 1.0, False), dec, 2)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    p = torch.sigmoid(dec.bias.detach())
    expected = -float((x * p.log() + (1 - x) * (1 - p).log()).sum().detach())
    assert iwae_nll(model, x, Likelihood("bernoulli"), k=5)["value"] == pytest.approx(expected)
    rec = recon_nll(model, x, loss="bce")
    assert rec["value"] == pytest.approx(expected, rel=1e-6)
    sse = recon_nll(model, x, loss="mse")["value"]
    assert sse == pytest.approx(float(((p - x) ** 2).sum()), rel=1e-5)


def test_run_likelihood_choices() -> None:
    cfg = RunConfig()
    recon, kl = cfg.loss.terms.recon, cfg.loss.terms.kl
    recon.likelihood, recon.reduction = "mse", "mean"
    recon.weight, kl.weight = 1.0, 1e-3
    lik = run_likelihood(cfg, 784, None)
    assert isinstance(lik, Likelihood)
    assert math.exp(2 * lik.log_scale) == pytest.approx(784 * 1e-3 / 2)  # sigma^2 = D beta / 2
    recon.reduction, kl.weight = "sum", 1.0
    assert math.exp(2 * run_likelihood(cfg, 784, None).log_scale) == pytest.approx(0.5)
    kl.weight = 0.0
    assert isinstance(run_likelihood(cfg, 784, None), str)
    recon.likelihood, recon.learn_scale, recon.log_scale = "gaussian", True, 0.0
    assert run_likelihood(cfg, 784, -1.5).log_scale == -1.5
    recon.learn_scale = False
    assert run_likelihood(cfg, 784, -1.5).log_scale == 0.0
    recon.likelihood = "bce"
    assert run_likelihood(cfg, 784, None).kind == "bernoulli"
