"""``cvae eval RUN_DIR``: encode each split once, run the probes, draw the figures and write
``metrics.json``, every number with the protocol that produced it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvae.api import Run, dataset_sha256, load, read_data_info
from cvae.data import DataSplits, ImageDataset
from cvae.data.base import IN_MEMORY
from cvae.errors import CvaeError
from cvae.evaluation.collapse import active_units, marginal_kl, mean_kl, mutual_information
from cvae.evaluation.fid import fid_metrics
from cvae.evaluation.knn import knn_uniform_euclidean, knn_weighted_cosine
from cvae.evaluation.likelihood import iwae_nll, recon_nll, run_likelihood
from cvae.evaluation.linear import linear_adam, linear_sgd
from cvae.evaluation.options import EvalConfig
from cvae.evaluation.plots import (
    save_curves,
    save_embedding_plot,
    save_image_grid,
    save_interpolations,
    save_kl_per_dim,
    save_similarity_matrix,
    umap_missing,
)
from cvae.evaluation.probes import (
    logistic_regression_paper,
    logistic_regression_standard,
    perceptron_probe,
)
from cvae.evaluation.views import view_cosine_similarity
from cvae.training.trainer import data_from_config

# Test images shown in the CVAE notebook's reconstruction figure ([CE] analysis nb cell 3).
RECON_INDICES = [50, 70, 90, 110, 132, 0, 1, 2, 3, 4]


def evaluate(
    run_dir: str | Path,
    config: EvalConfig | None = None,
    *,
    data: DataSplits | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate the last checkpoint of ``run_dir``; writes ``metrics.json`` and ``figures/``.

    ``config`` (default :class:`EvalConfig`), with ``options`` (its field names) replaced, says
    what to compute; it is checked before any work (one-line :class:`CvaeError`). Collapse and
    likelihood metrics use the evaluation split (test, else val). Every metric carries its
    wall-clock ``seconds``.

    ``data``: the splits to evaluate on (default: the run's configured dataset). A run trained
    on data handed to the Python API needs them again; when the run recorded the sha256 of its
    training split, other data is refused (from the config) or noted (given here).

    ``metrics.json`` is rewritten (atomically) after every metric, with ``complete: false``
    until the end, so an interruption or a failure in the figures loses no number; a previous
    ``metrics.json`` is kept as ``metrics.previous.json``.
    """
    cfg = (config or EvalConfig()).replace(**options)
    seed = cfg.seed
    t0 = time.perf_counter()
    run = load(run_dir, device=cfg.device)
    data, provenance, notes = _eval_data(run, data)
    eval_split, eval_name = (data.test, "test") if data.test is not None else (data.val, "val")
    figures = run.run_dir / "figures"
    figures.mkdir(exist_ok=True)
    feature = _feature_name(run, cfg.feature)
    result: dict[str, Any] = {
        "run_dir": str(run.run_dir),
        "method": run.config.method,
        "preset": run.config.preset,
        "dataset": run.config.data.dataset,
        "checkpoint_epoch": run.epoch,
        "feature": FEATURES[feature],
        "eval_split": {"name": eval_name, "n": len(eval_split)},
        "data": {
            "train_split_n": len(data.train),
            "val_fraction": run.config.data.val_fraction,
            "split_seed": run.config.data.split_seed,
            "value_range": run.value_range,
            **provenance,
        },
        "seed": seed,
        "metrics": {},
        "figures": {},
        "notes": notes,
        "seconds": None,
        "complete": False,
    }
    out = _MetricsFile(run.run_dir / "metrics.json", result)
    metrics: dict[str, Any] = out.metrics

    eval_mu, eval_logvar = (t.cpu() for t in run.encode(eval_split.images))
    _collapse(run, eval_split, eval_mu, eval_logvar, cfg, out.put)
    if eval_split.labels is not None and data.train.labels is not None:
        train_f = run.features(data.train.images, feature).cpu()
        eval_f = eval_mu if feature == "mu" else run.features(eval_split.images, feature).cpu()
        split = f"fit on train split, score on {eval_name} split"

        def probe(name: str, metric: dict[str, Any]) -> None:
            metric["protocol"]["feature_name"] = feature
            out.put(name, metric)

        _probes(train_f, data.train, eval_f, eval_split, eval_name, cfg, probe)
        if cfg.linear_epochs > 0:
            adam = _timed(
                linear_adam,
                train_f,
                data.train.labels,
                eval_f,
                eval_split.labels,
                epochs=cfg.linear_epochs,
                seed=seed,
            )
            adam["protocol"]["split"] = split
            probe("linear_adam", adam)
        run_linear_sgd = cfg.run_linear_sgd
        if run_linear_sgd is None:
            run_linear_sgd = run.config.method in AAVAE_FAMILY
        if run_linear_sgd:
            sgd = _timed(
                linear_sgd,
                lambda images: run.features(images, feature),
                data.train.images,
                data.train.labels,
                eval_f,
                eval_split.labels,
                epochs=cfg.linear_sgd_epochs,
                seed=seed,
            )
            sgd["protocol"]["split"] = split
            probe("linear_sgd", sgd)
        else:
            notes.append("linear_sgd (AAVAE protocol) skipped: enable with --linear-sgd")
    else:
        notes.append("unlabeled dataset: probes and KNN skipped")
    if cfg.fid_n > 0:
        fid = fid_metrics(
            run,
            eval_split,
            data.train,
            n=min(cfg.fid_n, len(eval_split)),
            seed=seed,
            split_name=eval_name,
            inception_weights=cfg.fid_weights,
            inception_dims=cfg.fid_dims,
        )
        for name, metric in fid.items():
            out.put(name, metric)
    else:
        notes.append("FID skipped (--fid-n 0)")
    notes.extend(m["unavailable"] for m in metrics.values() if "unavailable" in m)
    views = None
    if len(eval_split) >= 8:
        views = view_cosine_similarity(run, eval_split.images, seed=seed, feature=feature)
        out.put("view_cosine_within", views["view_cosine_within"])
        out.put("view_cosine_between", views["view_cosine_between"])

    fig_info = result["figures"]
    fig_info.update(_figures(run, eval_split, eval_mu, figures, cfg.embedding, seed, notes))
    fig_info["kl_per_dim"] = save_kl_per_dim(
        metrics["kl"]["per_dim"],
        figures / "kl_per_dim.png",
        [v >= 0.01 for v in metrics["active_units"]["protocol"]["per_dim_variance"]],
        title=f"{run.config.method}: KL per latent dimension ({eval_name} split; blue = active)",
    ).name
    if views is not None:
        fig_info["view_similarity"] = save_similarity_matrix(
            views["matrix"],
            views["protocol"]["n_views"],
            figures / "view_similarity.png",
            title=f"{run.config.method}: cosine similarity of {feature} over "
            f"{views['protocol']['augment']} views (seed {seed})",
        ).name
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["complete"] = True
    out.write()
    return result


class _MetricsFile:
    """``metrics.json`` rewritten atomically after every metric (``complete`` false until the
    end); a previous file is kept as ``metrics.previous.json`` at the first write."""

    def __init__(self, path: Path, result: dict[str, Any]) -> None:
        self.path, self.result = path, result
        self.metrics: dict[str, Any] = result["metrics"]
        self._kept = False

    def put(self, name: str, metric: dict[str, Any]) -> None:
        self.metrics[name] = metric
        self.write()

    def write(self) -> None:
        if not self._kept and self.path.is_file():
            os.replace(self.path, self.path.with_name("metrics.previous.json"))
        self._kept = True
        _write_json(self.result, self.path)


def _eval_data(run: Run, data: DataSplits | None) -> tuple[DataSplits, dict[str, Any], list[str]]:
    """The splits to evaluate on, what they are (for metrics.json) and notes about them."""
    trained = read_data_info(run.run_dir)
    recorded = (trained.get("sha256") or {}).get("train")
    notes: list[str] = []
    given = data is not None
    if data is None:
        if run.config.data.dataset == IN_MEMORY:
            digest = f" (train sha256 {recorded[:12]})" if recorded else ""
            raise CvaeError(
                f"{run.run_dir} was trained on data handed to the Python API{digest}; evaluate "
                "it from Python with the same data: evaluate(run_dir, data=DataSplits(...))"
            )
        data = data_from_config(run.config)
        source = f"dataset '{run.config.data.dataset}' loaded from the run's config"
    else:
        source = "splits handed to evaluate(data=...)"
    provenance: dict[str, Any] = {"source": source}
    if recorded or given:
        digest = dataset_sha256(data.train)
        provenance["train_sha256"] = digest
        if recorded:
            provenance["train_sha256_matches_training"] = digest == recorded
        if recorded and digest != recorded:
            if not given:
                raise CvaeError(
                    f"{run.run_dir} was trained on other data than its config's dataset "
                    f"'{run.config.data.dataset}' now loads (train sha256 differs); evaluate "
                    "it from Python with the training data: evaluate(run_dir, data=...)"
                )
            notes.append(
                "the train split given differs from the run's training data (sha256): probes "
                "fit on other data than the model saw"
            )
    return data, provenance, notes


AAVAE_FAMILY = ("aavae", "ae", "aaae")

FEATURES = {
    "mu": "mu (posterior mean, eval mode)",
    "h": "h (encoder representation before the projection to mu/logvar, eval mode)",
}


def _feature_name(run: Run, feature: str) -> str:
    """auto: h for the AAVAE family when the encoder exposes it (spec 8.4), else mu."""
    if feature == "auto":
        aavae_family = run.config.method in AAVAE_FAMILY
        return "h" if aavae_family and hasattr(run.model.encoder, "features") else "mu"
    return feature


def _probes(
    train_mu: torch.Tensor,
    train: ImageDataset,
    eval_mu: torch.Tensor,
    evals: ImageDataset,
    eval_name: str,
    cfg: EvalConfig,
    put: Callable[[str, dict[str, Any]], None],
) -> None:
    """The logistic, perceptron and KNN probes, each handed to ``put`` once computed."""
    tr_x, tr_y = train_mu.numpy(), train.labels.numpy()  # type: ignore[union-attr]
    ev_x, ev_y = eval_mu.numpy(), evals.labels.numpy()  # type: ignore[union-attr]
    fitted = f"fit on train split, score on {eval_name} split"
    bank = f"bank: train split; queries: {eval_name} split"
    probes: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        (
            "logreg_paper",
            f"80/20 inside the {eval_name} split",
            lambda: logistic_regression_paper(ev_x, ev_y),
        ),
        ("logreg_standard", fitted, lambda: logistic_regression_standard(tr_x, tr_y, ev_x, ev_y)),
        ("perceptron_probe", fitted, lambda: perceptron_probe(tr_x, tr_y, ev_x, ev_y)),
        (
            "knn_weighted_cosine",
            bank,
            lambda: knn_weighted_cosine(
                train_mu,
                train.labels,
                eval_mu,
                evals.labels,
                k=cfg.knn_k,
                temperature=cfg.knn_temperature,
            ),
        ),
        (
            "knn_uniform_euclidean",
            bank,
            lambda: knn_uniform_euclidean(
                train_mu, train.labels, eval_mu, evals.labels, k=cfg.knn_k
            ),
        ),
    ]
    for name, split, compute in probes:
        metric = _timed(compute)
        metric["protocol"]["split"] = split
        put(name, metric)


def _timed(fn: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """``fn(*args, **kwargs)`` with its wall-clock ``seconds`` added to the metric."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _unavailable(name: str, reason: str) -> dict[str, Any]:
    return {"value": None, "unavailable": f"{name}: {reason}", "protocol": {"name": name}}


def _collapse(
    run: Run,
    evals: ImageDataset,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    cfg: EvalConfig,
    put: Callable[[str, dict[str, Any]], None],
) -> None:
    """KL, MI, marginal KL, AU, reconstruction NLL and the IWAE bound on the evaluation split,
    each handed to ``put`` once computed. ``iwae_k = 0`` skips the IWAE bound, ``iwae_n = 0``
    uses every evaluation image (else a seeded random subset of ``iwae_n``)."""
    mi_batch, iwae_k, iwae_n, seed = cfg.mi_batch, cfg.iwae_k, cfg.iwae_n, cfg.seed
    kl = _timed(mean_kl, mu, logvar)
    put("kl", kl)
    deterministic = run.model.deterministic
    if deterministic:
        reason = "deterministic autoencoder (z = mu): no posterior to measure"
        for name in ("mutual_information_batch", "mutual_information_full", "marginal_kl"):
            put(name, _unavailable(name, reason))
    else:
        mi_b = _timed(mutual_information, mu, logvar, batch_size=mi_batch, seed=seed)
        mi_b["protocol"]["name"] = "mutual_information_batch"
        put("mutual_information_batch", mi_b)
        mi_f = _timed(mutual_information, mu, logvar, batch_size=None, seed=seed)
        mi_f["protocol"]["name"] = "mutual_information_full"
        put("mutual_information_full", mi_f)
        put("marginal_kl", marginal_kl(kl, mi_b, mi_f))
    put("active_units", _timed(active_units, mu))
    x = run.to_input(evals.images)
    recon = "bce" if run.config.loss.reconstruction == "bce" else "mse"
    put("recon_nll", _timed(recon_nll, run.model, x, loss=recon, seed=seed))
    learned = getattr(dict(run.method.terms).get("recon"), "log_scale", None)
    likelihood = run_likelihood(
        run.config, int(x[0].numel()), None if learned is None else float(learned)
    )
    if iwae_k <= 0:
        put("nll_iwae", _unavailable("nll_iwae", "skipped (--iwae-k 0)"))
    elif deterministic:
        put("nll_iwae", _unavailable("nll_iwae", "deterministic autoencoder: no q(z|x)"))
    elif isinstance(likelihood, str):
        put("nll_iwae", _unavailable("nll_iwae", likelihood))
    else:
        index = torch.arange(len(x))
        if 0 < iwae_n < len(x):
            gen = torch.Generator().manual_seed(seed)
            index = torch.randperm(len(x), generator=gen)[:iwae_n].sort().values
        iwae = _timed(iwae_nll, run.model, x[index], likelihood, k=iwae_k, seed=seed)
        iwae["protocol"]["subset"] = (
            "all images" if len(index) == len(x) else f"random subset (seed {seed})"
        )
        put("nll_iwae", iwae)


def _figures(
    run: Run,
    evals: ImageDataset,
    eval_mu: torch.Tensor,
    out: Path,
    embedding: str,
    seed: int,
    notes: list[str],
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    idx = [i for i in RECON_INDICES if i < len(evals)]
    originals = evals.images[idx]
    recons = run.to_unit(run.reconstruct(originals)).cpu()
    info["reconstructions"] = str(
        save_image_grid(
            [originals.float() / 255, recons],
            out / "reconstructions.png",
            row_titles=["original", "reconstruction"],
            title=f"{run.config.method}: posterior-mean reconstructions",
        ).name
    )
    samples = run.to_unit(run.sample(64, seed=seed)).cpu()
    info["samples"] = str(
        save_image_grid(
            list(samples.view(8, 8, *samples.shape[1:])),
            out / "samples.png",
            title=f"{run.config.method}: decoded N(0, I) samples (seed {seed})",
        ).name
    )
    metrics_csv = run.run_dir / "metrics.csv"
    if metrics_csv.is_file():
        info["curves"] = str(save_curves(metrics_csv, out / "curves.png").name)
    pairs = idx[: 2 * (len(idx) // 2)]
    if pairs:
        info["interpolations"] = save_interpolations(
            run,
            evals.images[pairs[0::2]],
            evals.images[pairs[1::2]],
            out / "interpolations.png",
            title=f"{run.config.method}: decoded linear interpolations in mu",
        ).name
    methods = {"none": [], "both": ["umap", "tsne"]}.get(embedding, [embedding])
    missing = umap_missing() if "umap" in methods else None
    if missing is not None:
        notes.append(missing)
        methods = [m for m in methods if m != "umap"] or ["tsne"]
    labels = None if evals.labels is None else evals.labels.numpy()
    for method in methods:
        protocol = save_embedding_plot(
            eval_mu.numpy(),
            labels,
            out / f"{method}.png",
            method=method,
            seed=seed,
            max_points=10_000,  # the CVAE notebook fits UMAP on all 10k test mu
            title=f"{run.config.method}: {method.upper()} of test mu (seed {seed})",
        )
        info[method] = {k: (str(v) if isinstance(v, Path) else v) for k, v in protocol.items()}
    return info


def _write_json(obj: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value)}")
