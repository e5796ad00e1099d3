"""Barlow Twins, InfoNCE (queue and in-batch), the key queue and EMA, against values by hand."""

import io
import math

import pytest
import torch
from torch import nn

from cvae.objectives.barlow import barlow_twins
from cvae.objectives.ema import ema_update, make_ema_copy
from cvae.objectives.infonce import KeyQueue, info_nce_in_batch, info_nce_queue

# ---------------------------------------------------------------------------------- Barlow Twins

# Two centred, orthogonal +-1 columns: mean 0, biased variance 1, cross-product 0.
A = torch.tensor([1.0, 1.0, -1.0, -1.0])
B = torch.tensor([1.0, -1.0, 1.0, -1.0])


def test_bt_original_identical_inputs_exact_with_eps():
    z = torch.stack([A, B], dim=1)  # [4, 2]; C = diag(var / (var + eps)), off-diagonal 0
    for eps in (0.25, 1e-5):
        c_ii = 1.0 / (1.0 + eps)
        expect = 2 * (1 - c_ii) ** 2
        got = barlow_twins(z, z.clone(), eps=eps).item()
        assert got == pytest.approx(expect, rel=2e-2, abs=1e-12)
    assert barlow_twins(z, z, eps=0.25).item() == pytest.approx(2 * 0.2**2, rel=1e-6)
    assert barlow_twins(z, z).item() < 1e-9  # ~0 with the default eps


def test_bt_original_hand_built_cross_correlation():
    eps, w = 1e-5, 5e-3
    z1 = torch.stack([A, B], dim=1)
    # column 0: a + b (mean 0, biased var 2); column 1: 5a + 7 (mean 7, biased var 25)
    z2 = torch.stack([A + B, 5 * A + 7], dim=1)
    # C = z1n^T z2n / 4:
    c00 = 1 / math.sqrt((1 + eps) * (2 + eps))  # a.(a+b)/4 = 1
    c01 = 5 / math.sqrt((1 + eps) * (25 + eps))  # a.5a/4 = 5
    c10 = 1 / math.sqrt((1 + eps) * (2 + eps))  # b.(a+b)/4 = 1
    c11 = 0.0  # b.5a = 0
    expect = (1 - c00) ** 2 + (1 - c11) ** 2 + w * (c01**2 + c10**2)
    assert barlow_twins(z1, z2, offdiag_weight=w, eps=eps).item() == pytest.approx(expect, rel=1e-6)
    # eps = 0: (1 - 1/sqrt 2)^2 + 1 + w (1 + 1/2)
    zero_eps = (1 - 2**-0.5) ** 2 + 1 + w * 1.5
    assert barlow_twins(z1, z2, offdiag_weight=w, eps=0.0).item() == pytest.approx(zero_eps)


def _loss_from_c(c: torch.Tensor, w: float) -> float:
    off = c - torch.diag(torch.diagonal(c))
    return float(((1 - torch.diagonal(c)) ** 2).sum() + w * (off**2).sum())


def _pearson_cross(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    d = z1.shape[1]
    return torch.corrcoef(torch.cat([z1, z2], dim=1).double().T)[:d, d:]


def test_bt_original_eps0_is_pearson_and_reference_is_rescaled():
    gen = torch.Generator().manual_seed(1)
    n, d, w = 16, 3, 0.1
    z1 = torch.randn(n, d, generator=gen)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=gen)
    corr = _pearson_cross(z1, z2)
    got = barlow_twins(z1, z2, offdiag_weight=w, eps=0.0).item()
    assert got == pytest.approx(_loss_from_c(corr, w), rel=1e-5)
    # reference: unbiased std and / 64, so C = corr * (N - 1) / 64 (mis-scaled when N != 64)
    ref = barlow_twins(z1, z2, offdiag_weight=w, normalization="reference").item()
    assert ref == pytest.approx(_loss_from_c(corr * (n - 1) / 64, w), rel=1e-5)
    # dividing by N - 1 instead recovers the Pearson correlation
    fixed = barlow_twins(z1, z2, offdiag_weight=w, normalization="reference", reference_batch=n - 1)
    assert fixed == pytest.approx(got, rel=1e-5)


def test_bt_reference_identical_gaussian_n64():
    z = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    # C_ii = 63/64 exactly in exact arithmetic: diagonal term 128 * (1/64)^2 = 1/32
    diag = barlow_twins(z, z, normalization="reference", offdiag_weight=0.0).item()
    assert diag == pytest.approx(128 * (1 / 64) ** 2, rel=1e-4)
    # spec 4.1: BT(z, z) = 1.27 for 64x128 Gaussian z (E ~ 1/32 + 5e-3*128*127*63/64^2 = 1.28,
    # seed-to-seed sd ~ 0.02)
    full = barlow_twins(z, z, normalization="reference").item()
    assert abs(full - 1.27) < 0.06


def test_bt_reference_other_batch_sizes_mis_scaled():
    d = 5
    for n in (16, 64, 100):
        z = torch.randn(n, d)
        diag = barlow_twins(z, z, normalization="reference", offdiag_weight=0.0).item()
        assert diag == pytest.approx(d * (1 - (n - 1) / 64) ** 2, rel=1e-4)
        # the original normalisation is right for every N
        assert barlow_twins(z, z, offdiag_weight=0.0).item() < 1e-6


def test_bt_offdiag_weight_scales_linearly():
    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    for norm in ("original", "reference"):
        base = barlow_twins(z1, z2, normalization=norm, offdiag_weight=0.0).item()
        one = barlow_twins(z1, z2, normalization=norm, offdiag_weight=1.0).item()
        three = barlow_twins(z1, z2, normalization=norm, offdiag_weight=3.0).item()
        assert one > base
        assert three - base == pytest.approx(3 * (one - base), rel=1e-5)


def test_bt_reference_zero_std_dimension():
    n = 8
    z = torch.randn(n, 3)
    z[:, 1] = 1.0  # constant: std 0 -> divided by 1, centred column is exactly 0 -> C_11 = 0
    got = barlow_twins(z, z, normalization="reference", offdiag_weight=0.0).item()
    assert got == pytest.approx(2 * (1 - (n - 1) / 64) ** 2 + 1.0, rel=1e-5)
    # forward equals the BTVAE code's torch.std/torch.where formula
    std = torch.std(z, dim=0)
    zn = (z - z.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    c = zn.T @ zn / 64
    assert barlow_twins(z, z, normalization="reference").item() == pytest.approx(
        _loss_from_c(c, 5e-3), rel=1e-6
    )
    # and the gradient stays finite (torch.std itself would back-propagate 0/0 there)
    z1 = z.clone().requires_grad_(True)
    z2 = (z + 0.1 * torch.randn(n, 3)).requires_grad_(True)
    barlow_twins(z1, z2, normalization="reference").backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()


@pytest.mark.parametrize("normalization", ["original", "reference"])
def test_bt_gradient_reaches_both_inputs(normalization):
    z1 = torch.randn(12, 4, requires_grad=True)
    z2 = torch.randn(12, 4, requires_grad=True)
    loss = barlow_twins(z1, z2, normalization=normalization)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    loss.backward()
    for g in (z1.grad, z2.grad):
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0


def test_bt_float32_and_validation():
    z = torch.randn(6, 3, dtype=torch.float64)
    assert barlow_twins(z, z).dtype == torch.float32
    with pytest.raises(ValueError):
        barlow_twins(torch.randn(6, 3), torch.randn(6, 4))
    with pytest.raises(ValueError):
        barlow_twins(torch.randn(6), torch.randn(6))
    with pytest.raises(ValueError):
        barlow_twins(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError):
        barlow_twins(z, z, normalization="batchnorm")
    with pytest.raises(ValueError):
        barlow_twins(z, z, normalization="reference", reference_batch=0)


# --------------------------------------------------------------------------------------- InfoNCE

QUEUE = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # columns [0, 1] and [-1, 0]


def test_info_nce_queue_known_value():
    q = k = torch.tensor([[1.0, 0.0]])
    # logits [1, 0, -1] with the positive first
    expect = -1 + math.log(math.e + 1 + math.exp(-1))
    assert info_nce_queue(q, k, QUEUE, temperature=1.0).item() == pytest.approx(expect, rel=1e-6)
    # q and k are normalised inside (the queue is assumed normalised)
    got = info_nce_queue(3 * q, 0.5 * k, QUEUE, temperature=1.0).item()
    assert got == pytest.approx(expect, rel=1e-6)
    # temperature divides the logits: [2, 0, -2]
    expect_t = -2 + math.log(math.exp(2) + 1 + math.exp(-2))
    assert info_nce_queue(q, k, QUEUE, temperature=0.5).item() == pytest.approx(expect_t, rel=1e-6)


def test_info_nce_queue_mean_over_batch():
    q = k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    row0 = -1 + math.log(math.e + 1 + math.exp(-1))  # logits [1, 0, -1]
    row1 = -1 + math.log(2 * math.e + 1)  # logits [1, 1, 0]
    got = info_nce_queue(q, k, QUEUE, temperature=1.0)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_info_nce_queue_matches_explicit_sum():
    gen = torch.Generator().manual_seed(2)
    q, k = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    queue = nn.functional.normalize(torch.randn(4, 5, generator=gen), dim=0)
    tau = 0.2
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    total = 0.0
    for i in range(3):
        logits = [float(qn[i] @ kn[i]) / tau] + [float(qn[i] @ queue[:, j]) / tau for j in range(5)]
        total += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert info_nce_queue(q, k, queue, tau).item() == pytest.approx(total / 3, rel=1e-5)


def test_info_nce_queue_gradient_to_q_only_and_enqueue_before_backward():
    queue = KeyQueue(4, 8, seed=0)
    q = torch.randn(4, 4, requires_grad=True)
    with torch.no_grad():
        k = torch.randn(4, 4)
    loss = info_nce_queue(q, k, queue.queue)
    queue.enqueue(k)  # in-place queue update before backward (as in the CR-VAE code)
    loss.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    assert k.grad is None and not queue.queue.requires_grad


def test_info_nce_queue_validation():
    q = torch.randn(2, 2)
    with pytest.raises(ValueError):
        info_nce_queue(q, torch.randn(2, 3), QUEUE)
    with pytest.raises(ValueError):
        info_nce_queue(q, q, torch.randn(3, 4))
    with pytest.raises(ValueError):
        info_nce_queue(q, q, QUEUE, temperature=0.0)


def test_info_nce_in_batch_orthogonal_pairs():
    for n, tau in ((3, 0.5), (4, 1.0), (2, 0.1)):
        p = torch.eye(n)
        expect = math.log(math.exp(1 / tau) + (n - 1)) - 1 / tau
        assert info_nce_in_batch(p, p.clone(), tau).item() == pytest.approx(
            expect, rel=1e-5, abs=1e-6
        )


def test_info_nce_in_batch_positive_is_same_row():
    q = torch.eye(3)
    k = torch.eye(3)[[1, 2, 0]]  # every positive now orthogonal, one negative aligned
    expect = math.log(math.e + 2) - 0.0  # T = 1: each row has one logit 1 (a negative), two 0s
    assert info_nce_in_batch(q, k, 1.0).item() == pytest.approx(expect, rel=1e-6)
    assert info_nce_in_batch(q, k, 1.0) > info_nce_in_batch(q, torch.eye(3), 1.0)


def test_info_nce_in_batch_gradient_and_scale_invariance():
    q = torch.randn(5, 3, requires_grad=True)
    k = torch.randn(5, 3)
    loss = info_nce_in_batch(q, k, 0.3)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0
    scaled = info_nce_in_batch(2 * q.detach(), 7 * k, 0.3)
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-6)


# -------------------------------------------------------------------------------------- KeyQueue


def _unit(angle_deg: float, scale: float = 1.0) -> list[float]:
    a = math.radians(angle_deg)
    return [scale * math.cos(a), scale * math.sin(a)]


def test_key_queue_init_seeded_and_normalised():
    qa = KeyQueue(3, 7, seed=5)
    expect = nn.functional.normalize(
        torch.randn(3, 7, generator=torch.Generator().manual_seed(5)), dim=0
    )
    assert torch.equal(qa.queue, expect)
    assert torch.equal(KeyQueue(3, 7, generator=torch.Generator().manual_seed(5)).queue, expect)
    assert qa.queue.dtype == torch.float32 and qa.queue.shape == (3, 7)
    assert torch.allclose(qa.queue.norm(dim=0), torch.ones(7))
    assert qa.ptr.dtype == torch.long and qa.ptr.ndim == 0 and int(qa.ptr) == 0
    assert (qa.dim, qa.size) == (3, 7)
    with pytest.raises(ValueError):
        KeyQueue(3, 7, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError):
        KeyQueue(0, 7)


def test_key_queue_fifo_and_wrap_when_n_divides_k():
    kq = KeyQueue(2, 6, seed=0)
    init = kq.queue.clone()
    batches = [torch.tensor([_unit(10 * (2 * b + i), 2.0 + i) for i in range(2)]) for b in range(4)]
    kq.enqueue(batches[0])
    assert int(kq.ptr) == 2
    assert torch.allclose(kq.queue[:, :2], torch.tensor([_unit(0), _unit(10)]).T)
    assert torch.equal(kq.queue[:, 2:], init[:, 2:])  # untouched
    kq.enqueue(batches[1])
    kq.enqueue(batches[2])
    assert int(kq.ptr) == 0  # (3 * 2) mod 6
    order = [_unit(10 * j) for j in range(6)]
    assert torch.allclose(kq.queue, torch.tensor(order).T)
    kq.enqueue(batches[3])  # overwrites the oldest two (columns 0, 1)
    assert int(kq.ptr) == 2
    assert torch.allclose(kq.queue[:, :2], torch.tensor([_unit(60), _unit(70)]).T)
    assert torch.allclose(kq.queue[:, 2:], torch.tensor(order[2:]).T)


def test_key_queue_wrap_when_n_does_not_divide_k():
    kq = KeyQueue(2, 5, seed=0)
    kq.enqueue(torch.tensor([_unit(a) for a in (0, 10, 20)]))
    assert int(kq.ptr) == 3
    kq.enqueue(torch.tensor([_unit(a) for a in (30, 40, 50)]))  # columns 3, 4, then 0
    assert int(kq.ptr) == 1
    expect = [_unit(a) for a in (50, 10, 20, 30, 40)]
    assert torch.allclose(kq.queue, torch.tensor(expect).T)


def test_key_queue_batch_larger_than_queue():
    kq = KeyQueue(2, 3, seed=0)
    kq.enqueue(torch.tensor([_unit(0)]))  # ptr 1
    # five keys written sequentially from column 1: columns 1, 2, 0, 1, 2 -> last writes win
    kq.enqueue(torch.tensor([_unit(a) for a in (10, 20, 30, 40, 50)]))
    assert int(kq.ptr) == (1 + 5) % 3
    expect = [_unit(a) for a in (30, 40, 50)]
    assert torch.allclose(kq.queue, torch.tensor(expect).T)


def test_key_queue_normalises_and_records_no_grad():
    kq = KeyQueue(3, 4, seed=0)
    keys = torch.tensor([[3.0, 0.0, 4.0], [0.0, -2.0, 0.0]], dtype=torch.float64)
    keys.requires_grad_(True)
    kq.enqueue(keys)
    assert torch.allclose(kq.queue[:, 0], torch.tensor([0.6, 0.0, 0.8]))
    assert torch.allclose(kq.queue[:, 1], torch.tensor([0.0, -1.0, 0.0]))
    assert torch.allclose(kq.queue.norm(dim=0), torch.ones(4))
    assert kq.queue.dtype == torch.float32 and not kq.queue.requires_grad
    assert kq.queue.grad_fn is None
    with pytest.raises(ValueError):
        kq.enqueue(torch.randn(2, 4))


def test_key_queue_state_dict_round_trip_exact():
    kq = KeyQueue(4, 10, seed=0)
    kq.enqueue(torch.randn(3, 4))
    kq.enqueue(torch.randn(3, 4))
    assert set(kq.state_dict()) == {"queue", "ptr"}
    buf = io.BytesIO()
    torch.save(kq.state_dict(), buf)
    buf.seek(0)
    resumed = KeyQueue(4, 10, seed=123)
    resumed.load_state_dict(torch.load(buf))
    assert torch.equal(resumed.queue, kq.queue) and int(resumed.ptr) == int(kq.ptr) == 6
    more = torch.randn(3, 4)
    kq.enqueue(more)
    resumed.enqueue(more)
    assert torch.equal(resumed.queue, kq.queue) and int(resumed.ptr) == int(kq.ptr) == 9


# ------------------------------------------------------------------------------------------- EMA


def test_ema_update_arithmetic_by_hand():
    target, source = nn.Linear(3, 2), nn.Linear(3, 2)
    nn.init.zeros_(target.weight), nn.init.zeros_(target.bias)
    nn.init.ones_(source.weight), nn.init.ones_(source.bias)
    ema_update(target, source, 0.9)  # 0.9 * 0 + 0.1 * 1
    assert torch.allclose(target.weight, torch.full((2, 3), 0.1))
    assert torch.allclose(target.bias, torch.full((2,), 0.1))
    ema_update(target, source, 0.9)  # 0.9 * 0.1 + 0.1 * 1
    assert torch.allclose(target.weight, torch.full((2, 3), 0.19))
    assert torch.allclose(target.bias, torch.full((2,), 0.19))
    assert torch.equal(source.weight, torch.ones(2, 3))  # source untouched
    ema_update(target, source, 1.0)  # frozen
    assert torch.allclose(target.bias, torch.full((2,), 0.19))
    ema_update(target, source, 0.0)  # copy
    assert torch.equal(target.weight, source.weight)


def test_ema_update_leaves_buffers_alone():
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    target = make_ema_copy(source)
    source.train()
    source(torch.randn(16, 3) + 5.0)  # moves source's running stats
    bn_s, bn_t = source[1], target[1]
    assert not torch.allclose(bn_s.running_mean, bn_t.running_mean)
    with torch.no_grad():
        bn_s.weight.fill_(3.0)
    old_w = bn_t.weight.clone()
    ema_update(target, source, 0.5)
    assert torch.equal(bn_t.running_mean, torch.zeros(4))  # not averaged
    assert torch.equal(bn_t.running_var, torch.ones(4))
    assert int(bn_t.num_batches_tracked) == 0
    assert torch.allclose(bn_t.weight, 0.5 * old_w + 0.5 * 3.0)
    assert not bn_t.weight.requires_grad


def test_ema_update_runs_without_autograd_and_validates():
    source = nn.Linear(2, 2)
    target = make_ema_copy(source)
    loss = source(torch.randn(3, 2)).sum()
    ema_update(target, source, 0.99)
    loss.backward()  # source untouched in place, graph still valid
    assert target.weight.grad is None and target.weight.grad_fn is None
    with pytest.raises(ValueError):
        ema_update(target, source, 1.5)
    with pytest.raises(ValueError):
        ema_update(nn.Linear(2, 3), source, 0.9)
    with pytest.raises(ValueError):
        ema_update(nn.Sequential(nn.Linear(2, 2)), source, 0.9)


def test_make_ema_copy_is_frozen_deep_copy():
    source = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    source(torch.randn(8, 3)).sum().backward()
    twin = make_ema_copy(source)
    assert sum(p.numel() for p in twin.parameters() if p.requires_grad) == 0
    assert all(p.grad is None for p in twin.parameters())
    assert all(p.requires_grad for p in source.parameters())  # source unchanged
    twin_state = twin.state_dict()
    assert list(twin_state) == list(source.state_dict())
    for name, p_s in source.state_dict().items():
        p_t = twin_state[name]
        assert torch.equal(p_s, p_t), name
        assert p_s.data_ptr() != p_t.data_ptr(), name
    with torch.no_grad():
        source[0].weight.add_(1.0)
        source[1].running_mean.add_(1.0)
    assert not torch.allclose(source[0].weight, twin[0].weight)
    assert not torch.allclose(source[1].running_mean, twin[1].running_mean)
