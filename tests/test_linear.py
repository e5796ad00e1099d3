"""Torch linear probes: separable and non-separable toy data, determinism, augmentation."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cvae.cli import main
from cvae.evaluation.linear import fit_linear, linear_adam, linear_sgd, pad_crop_flip


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    return centres[y] + 0.5 * torch.randn(n, 2, generator=g), y


def test_linear_adam_separable_reaches_one_and_is_deterministic() -> None:
    (tr_x, tr_y), (te_x, te_y) = _blobs(600, 0), _blobs(300, 1)
    out = linear_adam(tr_x, tr_y, te_x, te_y, epochs=20, lr=1e-2, batch_size=64, seed=3)
    assert out["value"] == 1.0
    again = linear_adam(tr_x, tr_y, te_x, te_y, epochs=20, lr=1e-2, batch_size=64, seed=3)
    assert again == out
    p = out["protocol"]
    assert (p["n_train"], p["n_test"], p["feature_dim"], p["num_classes"]) == (600, 300, 2, 3)
    assert (p["epochs"], p["batch_size"], p["lr"], p["seed"]) == (20, 64, 1e-2, 3)
    assert p["optimizer"].startswith("Adam")


def test_linear_adam_random_labels_chance_level() -> None:
    g = torch.Generator().manual_seed(0)
    tr_x, te_x = torch.randn(1000, 4, generator=g), torch.randn(2000, 4, generator=g)
    tr_y = torch.randint(0, 2, (1000,), generator=g)
    te_y = torch.randint(0, 2, (2000,), generator=g)
    acc = linear_adam(tr_x, tr_y, te_x, te_y, epochs=5, batch_size=100)["value"]
    assert abs(acc - 0.5) < 0.05  # binomial std of 2000 coin flips: 0.011


def test_linear_adam_rejects_mismatched_shapes() -> None:
    x, y = _blobs(10, 0)
    with pytest.raises(ValueError, match="labels"):
        linear_adam(x, y[:5], x, y, epochs=1)
    with pytest.raises(ValueError, match="test features"):
        linear_adam(x, y, x[:, :1], y, epochs=1)


def test_pad_crop_flip_is_a_reflect_padded_shift_or_mirror() -> None:
    img = torch.arange(2 * 6 * 6, dtype=torch.uint8).view(1, 2, 6, 6).repeat(64, 1, 1, 1)
    out = pad_crop_flip(img, torch.Generator().manual_seed(0), padding=2)
    assert out.dtype == torch.uint8 and out.shape == img.shape
    padded = torch.nn.functional.pad(img[:1].float(), (2, 2, 2, 2), mode="reflect")[0]
    crops = {(dy, dx): padded[:, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)}
    windows = {
        (dy, dx, f): crops[dy, dx].flip(-1) if f else crops[dy, dx]
        for dy in range(5)
        for dx in range(5)
        for f in (0, 1)
    }
    seen = set()
    for view in out.float():
        match = [key for key, w in windows.items() if torch.equal(view, w)]
        assert match, "every view is one crop of the padded image, optionally mirrored"
        seen.add(match[0][2])
    assert seen == {0, 1}  # both flipped and unflipped views occur in 64 draws
    same = pad_crop_flip(img, torch.Generator().manual_seed(0), padding=0, flip_p=0)
    assert torch.equal(same, img)


def test_linear_sgd_reencodes_augmented_batches() -> None:
    # images whose mean brightness is the class: crops and flips keep it separable
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 2
    images = y[:, None, None, None] * 150 + torch.randint(0, 50, (300, 1, 8, 8), generator=g)
    images = images.to(torch.uint8)
    calls = []

    def encode(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        flat = batch.float().flatten(1) / 255
        return torch.stack([10 * (flat.mean(1) - 0.4), flat.std(1)], dim=1)

    test_x = encode(images)
    calls.clear()
    out = linear_sgd(encode, images, y, test_x, y, epochs=3, batch_size=64, seed=0)
    assert out["value"] == 1.0
    assert calls == [64, 64, 64, 64, 44] * 3  # every epoch re-encodes every training image
    p = out["protocol"]
    assert p["lr"] == pytest.approx(0.1 * 64 / 256)  # float scaling, not int(64/256) = 0
    assert p["epochs"] == 3 and "Nesterov" in p["optimizer"]
    assert linear_sgd(encode, images, y, test_x, y, epochs=3, batch_size=64, seed=0) == out


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_fit_linear_matches_autograd_and_torch_optim(optimizer: str) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=g), torch.randint(0, 3, (30,), generator=g)
    epochs, batch, lr = 3, 8, 0.05
    theta = fit_linear(
        lambda idx: x[idx], y, 4, 3, optimizer=optimizer, lr=lr, epochs=epochs,
        batch_size=batch, generator=torch.Generator().manual_seed(5), cosine=optimizer == "sgd",
    )  # fmt: skip
    ref_gen = torch.Generator().manual_seed(5)
    layer = nn.Linear(4, 3)
    init = (torch.rand(3, 5, generator=ref_gen) * 2 - 1) / 2
    with torch.no_grad():
        layer.weight.copy_(init[:, :4])
        layer.bias.copy_(init[:, 4])
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(layer.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(layer.parameters(), lr=lr, momentum=0.9, nesterov=True)
    total = epochs * math.ceil(30 / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total)) if optimizer == "sgd" else 1.0
    )
    for _ in range(epochs):
        perm = torch.randperm(30, generator=ref_gen)
        for start in range(0, 30, batch):
            idx = perm[start : start + batch]
            opt.zero_grad()
            F.cross_entropy(layer(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    ref = torch.cat([layer.weight, layer.bias[:, None]], dim=1).detach()
    torch.testing.assert_close(theta, ref, rtol=1e-5, atol=1e-6)


def test_eval_runs_linear_sgd_for_aavae_family_and_skips_posterior_metrics(tmp_path) -> None:
    run = tmp_path / "ae"
    train = ["train", "--method", "ae", "--dataset", "digits", "--epochs", "1", "--no-progress"]
    assert main([*train, "--set", "model.channels=[8,16]", "--out", str(run)]) == 0
    flags = ["--embedding", "none", "--fid-n", "0", "--linear-epochs", "2"]
    flags += ["--linear-sgd-epochs", "1"]
    assert main(["eval", str(run), *flags, "--knn-k", "5"]) == 0
    result = json.loads((run / "metrics.json").read_text())
    m = result["metrics"]
    assert m["linear_sgd"]["protocol"]["epochs"] == 1 and 0 <= m["linear_sgd"]["value"] <= 1
    assert m["linear_sgd"]["protocol"]["feature_name"] == "h"
    assert m["linear_adam"]["protocol"]["epochs"] == 2
    for name in ("mutual_information_batch", "marginal_kl", "nll_iwae"):
        assert m[name]["value"] is None and "deterministic" in m[name]["unavailable"]
    assert any("nll_iwae" in note for note in result["notes"])
    assert main(["eval", str(run), *flags, "--no-linear", "--knn-k", "5"]) == 0
    m = json.loads((run / "metrics.json").read_text())["metrics"]
    assert "linear_sgd" not in m and "linear_adam" not in m
