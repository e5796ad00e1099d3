"""Each loss against values computed by hand on tiny tensors, reductions included."""

import math

import pytest
import torch

from cvae.objectives import bernoulli_nll, gaussian_kl, gaussian_nll, kl_loss, mse, nt_xent


def test_mse_reductions():
    x = torch.ones(2, 1, 2, 2)
    x_hat = torch.zeros(2, 1, 2, 2)
    x_hat[0, 0, 0, 0] = 1.0  # image 0: three errors of 1; image 1: four errors of 1
    assert mse(x_hat, x, "mean").item() == pytest.approx(7 / 8)  # over B*D = 8 values
    assert mse(x_hat, x, "sum").item() == pytest.approx((3 + 4) / 2)  # per-image SSE, mean over B


def test_bernoulli_from_logits():
    logits = torch.zeros(3, 1, 2, 2)
    x = torch.rand(3, 1, 2, 2)
    # sigmoid(0) = 1/2: every pixel costs log 2 whatever x is
    assert bernoulli_nll(logits, x, "sum").item() == pytest.approx(4 * math.log(2), rel=1e-6)
    assert bernoulli_nll(logits, x, "mean").item() == pytest.approx(math.log(2), rel=1e-6)
    # stable for huge logits (a probability-space BCE would give inf/nan)
    big = torch.full((1, 1, 1, 1), 200.0)
    assert bernoulli_nll(big, torch.ones_like(big)).item() == pytest.approx(0.0, abs=1e-6)


def test_gaussian_nll_fixed_and_scaled():
    x = torch.zeros(2, 3, 1, 1)
    per_pixel = 0.5 * math.log(2 * math.pi)
    assert gaussian_nll(x, x, torch.tensor(0.0), "sum").item() == pytest.approx(3 * per_pixel)
    # error 2, sigma = e: 4 / (2 e^2) + 1 + log(2 pi)/2 per value
    x_hat = torch.full_like(x, 2.0)
    expect = 4 / (2 * math.e**2) + 1 + per_pixel
    assert gaussian_nll(x_hat, x, torch.tensor(1.0), "mean").item() == pytest.approx(expect)


def test_gaussian_kl_values_and_reduction():
    mu = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(2.0), 0.0]])
    per_dim = gaussian_kl(mu, logvar)
    assert per_dim[0].tolist() == pytest.approx([0.0, 0.5])
    assert per_dim[1, 0].item() == pytest.approx(0.5 * (2 - 1 - math.log(2)))
    # sum over dims, mean over batch
    assert kl_loss(mu, logvar).item() == pytest.approx((0.5 + 0.5 * (1 - math.log(2))) / 2)


def test_nt_xent_orthogonal_pairs_by_hand():
    p = torch.eye(2)  # two samples, each view identical to its pair, orthogonal across samples
    tau = 0.5
    # each of the 4 anchors: positive similarity 1/tau, two negatives with similarity 0
    expect = math.log(math.exp(1 / tau) + 2) - 1 / tau
    assert nt_xent(p, p.clone(), tau).item() == pytest.approx(expect, rel=1e-6)


def test_nt_xent_matches_explicit_sum():
    gen = torch.Generator().manual_seed(0)
    p1, p2 = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    tau = 0.3
    z = torch.cat([p1, p2])
    z = z / z.norm(dim=1, keepdim=True)
    n2 = len(z)
    total = 0.0
    for a in range(n2):
        pos = (a + 3) % n2
        sims = [float(z[a] @ z[c]) / tau for c in range(n2)]
        denom = sum(math.exp(s) for c, s in enumerate(sims) if c != a)
        total += -sims[pos] + math.log(denom)
    assert nt_xent(p1, p2, tau).item() == pytest.approx(total / n2, rel=1e-5)


def test_nt_xent_fp32_and_scale_invariant():
    p1, p2 = torch.randn(4, 3), torch.randn(4, 3)
    ref = nt_xent(p1, p2, 0.5)
    assert ref.dtype == torch.float32
    assert nt_xent(5 * p1, 0.1 * p2, 0.5).item() == pytest.approx(ref.item(), rel=1e-5)
    assert nt_xent(p1.bfloat16(), p2.bfloat16(), 0.5).dtype == torch.float32
    with pytest.raises(ValueError):
        nt_xent(p1, p2[:3])
