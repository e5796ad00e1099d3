"""BTVAE, CR-VAE and AAVAE terms inside methods: gradient flow, state updates, composition,
schedules and stages, and a short real-MNIST run per method (larger ones: integration; the
seed-averaged kNN claim: slow)."""

import pytest
import torch
from learning import built_untrained, mse_ratio

import cvae
from cvae.config import RunConfig, Stage, set_value
from cvae.errors import ConfigError
from cvae.evaluation.knn import knn_weighted_cosine
from cvae.methods import build_method, resolve
from cvae.methods.schedules import WeightPlan, parse_schedule

SHAPE = (1, 28, 28)


def make(method: str, shape=SHAPE, **terms):
    """``make("btvae", barlow={"weight": 1.0})``: per-term sub-config values by term name."""
    cfg = RunConfig(method=method)
    cfg.loss.terms.infonce.queue_size = 64
    for term, values in terms.items():
        for key, value in values.items():
            set_value(cfg, f"loss.terms.{term}.{key}", value)
    return build_method(resolve(cfg, shape), shape)


def batch(n=16, shape=SHAPE):
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8)


def test_crvae_key_encoder_gets_no_gradient_and_follows_ema():
    m = make("crvae")
    term = m.terms["infonce"]
    assert not any(p.requires_grad for p in term.key_encoder.parameters())
    before = [p.clone() for p in term.key_encoder.parameters()]
    out = m(batch(), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert all(p.grad is None for p in term.key_encoder.parameters())
    assert all(p.grad is not None for p in m.model.encoder.parameters())
    online = list(m.model.encoder.parameters())
    # EMA ran before the keys (per step, code): key = 0.99 * key + 0.01 * online
    for b, k, o in zip(before, term.key_encoder.parameters(), online, strict=True):
        torch.testing.assert_close(k, 0.99 * b + 0.01 * o.detach())


def test_crvae_queue_updates_in_training_only():
    m = make("crvae")
    queue = m.terms["infonce"].queue
    ptr0 = int(queue.ptr)
    m(batch(), torch.Generator().manual_seed(0), train=False)
    assert int(queue.ptr) == ptr0
    m(batch(), torch.Generator().manual_seed(0), train=True)
    assert int(queue.ptr) == (ptr0 + 16) % 64


def test_crvae_paper_variant_ema_per_epoch_in_batch_negatives():
    m = make("crvae", infonce={"ema_every": "epoch", "negatives": "in_batch"})
    term = m.terms["infonce"]
    before = [p.clone() for p in term.key_encoder.parameters()]
    ptr0 = int(term.queue.ptr)
    m(batch(), torch.Generator().manual_seed(0))["loss"].backward()
    assert all(
        torch.equal(b, k) for b, k in zip(before, term.key_encoder.parameters(), strict=True)
    )
    assert int(term.queue.ptr) == ptr0  # no queue with in-batch negatives
    with torch.no_grad():
        for p in m.model.encoder.parameters():
            p.add_(1.0)
    m.after_epoch()
    assert not all(
        torch.equal(b, k) for b, k in zip(before, term.key_encoder.parameters(), strict=True)
    )


@pytest.mark.parametrize("epoch_momentum", [None, 0.5])
def test_crvae_per_epoch_ema_keeps_what_per_step_updates_would(epoch_momentum):
    m = make("crvae", (1, 8, 8), infonce={"ema_every": "epoch", "epoch_momentum": epoch_momentum})
    term = m.terms["infonce"]
    before = [p.clone() for p in term.key_encoder.parameters()]
    for seed in range(3):  # 3 training steps, one evaluation step: 3 counted
        m(batch(shape=(1, 8, 8)), torch.Generator().manual_seed(seed))
    m(batch(shape=(1, 8, 8)), torch.Generator().manual_seed(9), train=False)
    assert int(term.epoch_steps) == 3
    with torch.no_grad():
        for p in m.model.encoder.parameters():
            p.add_(1.0)
    online = [p.detach().clone() for p in m.model.encoder.parameters()]
    m.after_epoch()
    keep = 0.99**3 if epoch_momentum is None else epoch_momentum  # derived: m_step ** steps
    for b, k, o in zip(before, term.key_encoder.parameters(), online, strict=True):
        torch.testing.assert_close(k, keep * b + (1 - keep) * o)
    assert int(term.epoch_steps) == 0


def test_btvae_gradient_reaches_decoder_through_reconstruction():
    m = make("btvae", barlow={"weight": 1.0}, recon={"weight": 0.0}, kl={"weight": 0.0})
    assert set(m.terms) == {"barlow"}
    m(batch(), torch.Generator().manual_seed(0))["loss"].backward()
    assert all(p.grad is not None for p in m.model.decoder.parameters())
    assert all(p.grad is not None for p in m.model.encoder.parameters())


def test_btvae_z_variant_and_negative_lambda_allowed():
    m = make("btvae", barlow={"features": "z", "weight": -2.5e-4})
    out = m(batch(), torch.Generator().manual_seed(0))
    assert out["loss"].item() == pytest.approx(
        (out["recon"] + 2.5e-4 * out["kl"] - 2.5e-4 * out["barlow"]).item(), rel=1e-5
    )


def test_aavae_reconstructs_clean_from_augmented_and_ae_is_deterministic():
    m = make("aavae")
    assert set(m.terms) == {"recon"} and m.augment is not None
    step = m.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    assert not torch.equal(step.views[0], step.clean)
    x_hat = m.model.activate(step.logits(0))
    want = torch.nn.functional.mse_loss(x_hat, step.clean)
    assert m.terms["recon"](step).item() == pytest.approx(want.item(), rel=1e-6)
    ae = make("ae")
    step = ae.make_step(batch(), torch.Generator().manual_seed(0), train=True)
    assert torch.equal(step.posterior(0).z, step.posterior(0).mu)
    assert ae.augment is None


def test_any_term_on_any_method():
    m = make("vae", ntxent={"weight": 0.1}, barlow={"weight": 0.01}, infonce={"weight": 0.5})
    out = m(batch(), torch.Generator().manual_seed(0))
    assert {"recon", "kl", "ntxent", "barlow", "infonce"} <= set(out)
    assert m.num_views == 2 and m.model.head is not None


def test_schedules():
    assert parse_schedule("constant")(7.0) == 1.0
    lin = parse_schedule("linear:10")
    assert (lin(0.0), lin(5.0), lin(10.0), lin(30.0)) == (0.0, 0.5, 1.0, 1.0)
    cyc = parse_schedule("cyclical:4:0.5")  # ramp over 2 epochs, hold for 2, repeat
    assert [cyc(t) for t in (0.0, 1.0, 2.0, 3.5, 4.0, 5.0)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]
    for bad in ("linear", "linear:x", "cyclical:4:2", "cosine:3"):
        with pytest.raises(ConfigError):
            parse_schedule(bad)


def test_stages_override_weights_and_build_staged_terms():
    plan = WeightPlan(
        {"recon": 1.0, "kl": 1e-3, "ntxent": 0.1},
        {"kl": "linear:2"},
        [
            Stage(epochs=3, weights={"recon": 0.0, "kl": 0.0, "ntxent": 1.0}),
            Stage(epochs=2, weights={"ntxent": 0.01}),
        ],
    )
    assert plan.weights(1.0) == {"recon": 0.0, "kl": 0.0, "ntxent": 1.0}
    assert plan.weights(4.0) == {"recon": 1.0, "kl": 1e-3, "ntxent": 0.01}
    assert plan.weights(9.0) == {"recon": 1.0, "kl": 1e-3, "ntxent": 0.1}
    cfg = RunConfig(method="vae")
    cfg.loss.stages = [Stage(epochs=1, weights={"ntxent": 1.0})]
    m = build_method(resolve(cfg, SHAPE), SHAPE)
    assert "ntxent" in m.terms and m.num_views == 2
    out = m(batch(), torch.Generator().manual_seed(0))
    assert "ntxent" in out
    m.epoch_progress = 1.5  # after the stage: vae weights, ntxent off and not computed
    assert "ntxent" not in m(batch(), torch.Generator().manual_seed(0))


def test_schedule_drives_training_weights(tmp_path):
    cfg = RunConfig(method="vae")
    cfg.data.dataset = "digits"
    cfg.model.channels = [16, 32]
    cfg.loss.terms.kl.weight = 1.0
    cfg.loss.schedules = {"kl": "linear:2"}
    cfg.train.epochs, cfg.train.threads = 2, 1
    cfg.train.progress = cfg.train.tensorboard = False
    rows = cvae.train(cfg, tmp_path / "run").history
    # epoch 1 starts with KL weight 0 (warm-up): the total is below recon + KL
    assert rows[0]["train_loss"] < rows[0]["train_recon"] + rows[0]["train_kl"]


# Per method, the settings that train it on MNIST digits (the SimCLR crops of CIFAR flip and
# shrink digits too much for AAVAE; CR-VAE's summed likelihood needs beta 1).
MNIST_METHODS = [
    ("vae", {}),
    ("cvae", {}),
    ("btvae", {"loss.terms.kl.weight": 1e-3}),
    (
        "crvae",
        {"model.latent_dim": 16, "loss.terms.recon.reduction": "sum", "loss.terms.kl.weight": 1.0},
    ),
    (
        "aavae",
        {
            "loss.terms.recon.likelihood": "gaussian",
            "loss.terms.recon.reduction": "sum",
            "data.augment": "cvae-mnist",
        },
    ),
]


def mnist_config(method: str, overrides: dict, **train) -> RunConfig:
    cfg = RunConfig(method=method)
    cfg.data.dataset = "mnist"
    cfg.train.batch_size, cfg.train.threads = 64, 1
    cfg.train.progress = cfg.train.tensorboard = False
    for key, value in {**overrides, **{f"train.{k}": v for k, v in train.items()}}.items():
        cvae.config.set_value(cfg, key, value)
    return cfg


@pytest.mark.parametrize(("method", "overrides"), MNIST_METHODS)
def test_short_mnist_run_learns(tmp_path, mnist_small, method, overrides):
    """Two epochs on 2048 real MNIST images (64 steps at lr 1e-2): the train loss falls and the
    held-out reconstruction error is far below that of the same network built untrained.
    Measured ratios 0.30-0.37 (0.34-0.50 at lr 5e-3; an untrained decoder outputs ~0.5 grey)."""
    cfg = mnist_config(
        method, {**overrides, "loss.terms.infonce.queue_size": 256}, epochs=2, lr=1e-2
    )
    rows = cvae.train(cfg, tmp_path / "run", data=mnist_small).history
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ratio = mse_ratio(cvae.load(tmp_path / "run"), mnist_small.test.images)
    assert ratio < 0.6, ratio


@pytest.mark.integration
@pytest.mark.parametrize("method", ["crvae", "aavae"])
def test_mnist_paper_scale_methods_learn(tmp_path, mnist, method):
    """CR-VAE's medium network and the AAVAE on 4000 real MNIST images, two epochs at lr 1e-3:
    the held-out reconstruction error is far below the built-untrained network's (measured
    ratios 0.19 and 0.36 with 8000 images)."""
    overrides = dict(MNIST_METHODS)[method]
    if method == "crvae":
        overrides = {
            **overrides,
            "model.arch": "crvae-medium",
            "loss.terms.infonce.queue_size": 1024,
        }
    cfg = mnist_config(method, overrides, epochs=2, lr=1e-3, batch_size=128, threads=2)
    data = cvae.data.DataSplits(
        "mnist",
        mnist.train.subset(torch.arange(4000)),
        mnist.val.subset(torch.arange(500)),
        mnist.test.subset(torch.arange(1000)),
    )
    rows = cvae.train(cfg, tmp_path / "run", data=data).history
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    ratio = mse_ratio(cvae.load(tmp_path / "run"), data.test.images)
    assert ratio < 0.75, ratio


SEEDS = range(5)


BTVAE_KNN = pytest.mark.xfail(
    strict=True,
    reason="measured: BTVAE (beta 1e-3) kNN falls below its untrained encoder's after 10 epochs "
    "(gain -0.077, standard error 0.038); VAE: +0.232, standard error 0.025",
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "overrides"),
    [pytest.param(*p, marks=BTVAE_KNN) if p[0] == "btvae" else p for p in MNIST_METHODS],
)
def test_training_improves_knn_over_untrained_across_seeds(tmp_path, mnist, method, overrides):
    """The statistical claim (representations improve over the untrained encoder, as measured by
    test kNN) needs seeds: ten epochs on 4000 images per seed, and the mean improvement must
    exceed 4 standard errors (one-sided t with 4 dof at 0.99: 3.75). After two epochs it does
    not hold (VAE: gains +0.10, +0.04, +0.07, +0.02, -0.03; mean 0.041, standard error 0.022)."""
    data = cvae.data.DataSplits(
        "mnist",
        mnist.train.subset(torch.arange(4000)),
        mnist.val.subset(torch.arange(500)),
        mnist.test.subset(torch.arange(2000)),
    )

    def knn(run: cvae.Run) -> float:
        bank, query = run.encode(data.train.images)[0], run.encode(data.test.images)[0]
        return knn_weighted_cosine(bank, data.train.labels, query, data.test.labels)["value"]

    gains = []
    for seed in SEEDS:
        cfg = mnist_config(method, overrides, epochs=10, lr=1e-3, batch_size=128, seed=seed)
        cvae.train(cfg, tmp_path / str(seed), data=data)
        run = cvae.load(tmp_path / str(seed))
        gains.append(knn(run) - knn(built_untrained(run)))
    gain = torch.tensor(gains, dtype=torch.float64)
    mean, se = gain.mean().item(), (gain.std() / len(gains) ** 0.5).item()
    assert mean > 4 * se, (mean, se, gains)


def test_crvae_epoch_step_count_is_checkpointed_and_old_states_load():
    """The per-epoch EMA's step count is a buffer (a mid-epoch resume restores it); a state dict
    written before it existed loads with the count at 0."""
    m = make("crvae", infonce={"ema_every": "epoch"})
    term = dict(m.terms)["infonce"]
    term.epoch_steps.fill_(7)
    state = m.state_dict()
    key = next(k for k in state if k.endswith("epoch_steps"))
    assert int(state[key]) == 7
    fresh = make("crvae", infonce={"ema_every": "epoch"})
    fresh.load_state_dict(state)
    assert int(dict(fresh.terms)["infonce"].epoch_steps) == 7
    old = {k: v for k, v in state.items() if k != key}
    fresh.load_state_dict(old)  # strict: no missing-key error
    assert int(dict(fresh.terms)["infonce"].epoch_steps) == 0
