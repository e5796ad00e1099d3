"""Sanity ranking of the domain-classifier FID on MNIST: noise > 1-epoch VAE > 10-epoch VAE > real.

Trains (or loads from the cache) the domain classifier on the MNIST train split, trains the CVAE
paper's code-faithful MNIST VAE (``vae-mnist-code``, lr raised to 1e-3, batch 128) for 1 epoch,
then resumes it to 10, and prints ``fid_domain`` against the 10k MNIST test images for:
uniform noise, the 1-epoch and 10-epoch models (``n`` decoded prior samples), and ``n`` real
train-split images. Results go to ``--out``/fid_ranking.json.

    PYTHONPATH=src python benchmarks/fid_ranking.py --data /work/shared/data/mnist --out /tmp/fidr
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import cvae
from cvae.evaluation.fid import (
    DomainFeatures,
    classifier_accuracy,
    domain_classifier,
    fid_metrics,
    torchmetrics_fid,
)
from cvae.training.trainer import data_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    cfg = cvae.load_preset("vae-mnist-code")
    cfg.data.data_dir = args.data
    cfg.train.lr, cfg.train.batch_size, cfg.train.epochs = 1e-3, 128, 1
    cfg.train.progress = cfg.train.tensorboard = False
    data = data_from_config(cfg)
    test = data.test
    assert test is not None

    t0 = time.perf_counter()
    model, info = domain_classifier(data.train, dataset="mnist", cache_dir=args.cache_dir)
    results: dict = {
        "classifier": {
            **info,
            "test_accuracy": classifier_accuracy(model, test),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    }
    feats = DomainFeatures(model)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (args.n, 1, 28, 28), generator=gen, dtype=torch.uint8)
    results["noise"] = torchmetrics_fid(feats, test.images, noise)["value"]
    idx = torch.randperm(len(data.train), generator=gen)[: args.n]
    results["real_train_images"] = torchmetrics_fid(feats, test.images, data.train.images[idx])[
        "value"
    ]
    run_dir = args.out / "vae-run"
    for epochs in (1, 10):
        cfg.train.epochs = epochs
        t0 = time.perf_counter()
        cvae.train(cfg, run_dir, data=data, resume=epochs > 1)
        seconds = time.perf_counter() - t0
        run = cvae.load(run_dir)
        fid = fid_metrics(run, test, data.train, n=args.n, cache_dir=args.cache_dir)["fid_domain"]
        results[f"vae_{epochs}_epochs"] = fid["value"]
        results[f"vae_{epochs}_epochs_train_seconds"] = round(seconds, 1)
    print(json.dumps(results, indent=2))
    (args.out / "fid_ranking.json").write_text(json.dumps(results, indent=2))
    order = ["noise", "vae_1_epochs", "vae_10_epochs", "real_train_images"]
    values = [results[k] for k in order]
    print("ranking holds:", all(a > b for a, b in zip(values, values[1:], strict=False)))


if __name__ == "__main__":
    main()
