"""The figures of ``cvae eval`` as a registry: each :class:`FigureSpec` draws into the run's
``figures/`` folder from the shared :class:`~cvae.evaluation.registry.EvalContext` and returns
its ``metrics.json`` entries (``{key: file name or protocol}``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cvae.evaluation.plots import (
    save_curves,
    save_embedding_plot,
    save_image_grid,
    save_interpolations,
    save_kl_per_dim,
    save_similarity_matrix,
    umap_missing,
)
from cvae.evaluation.registry import EvalContext, Need

# Test images shown in the reconstruction figure of the CVAE code's analysis notebook (cell 3).
RECON_INDICES = [50, 70, 90, 110, 132, 0, 1, 2, 3, 4]


@dataclass(frozen=True)
class FigureSpec:
    """``draw(ctx, folder) -> {key: entry}`` (empty when there is nothing to draw), drawn when
    the evaluation meets ``needs``."""

    draw: Callable[[EvalContext, Path], dict[str, Any]]
    needs: tuple[Need, ...] = ()


def _recon_indices(c: EvalContext) -> list[int]:
    return [i for i in RECON_INDICES if i < len(c.eval_split)]


def _reconstructions(c: EvalContext, folder: Path) -> dict[str, Any]:
    originals = c.eval_split.tensor[_recon_indices(c)]
    recons = c.run.to_unit(c.run.reconstruct(originals)).cpu()
    path = save_image_grid(
        [originals.float() / 255, recons],
        folder / "reconstructions.png",
        row_titles=["original", "reconstruction"],
        title=f"{c.run.config.method}: posterior-mean reconstructions",
    )
    return {"reconstructions": path.name}


def _samples(c: EvalContext, folder: Path) -> dict[str, Any]:
    samples = c.run.to_unit(c.run.sample(64, seed=c.seed)).cpu()
    path = save_image_grid(
        list(samples.view(8, 8, *samples.shape[1:])),
        folder / "samples.png",
        title=f"{c.run.config.method}: decoded N(0, I) samples (seed {c.seed})",
    )
    return {"samples": path.name}


def _curves(c: EvalContext, folder: Path) -> dict[str, Any]:
    metrics_csv = c.run.run_dir / "metrics.csv"
    if not metrics_csv.is_file():
        return {}
    return {"curves": save_curves(metrics_csv, folder / "curves.png").name}


def _interpolations(c: EvalContext, folder: Path) -> dict[str, Any]:
    idx = _recon_indices(c)
    pairs = idx[: 2 * (len(idx) // 2)]
    if not pairs:
        return {}
    images = c.eval_split.tensor
    path = save_interpolations(
        c.run,
        images[pairs[0::2]],
        images[pairs[1::2]],
        folder / "interpolations.png",
        title=f"{c.run.config.method}: decoded linear interpolations in mu",
    )
    return {"interpolations": path.name}


def _embeddings(c: EvalContext, folder: Path) -> dict[str, Any]:
    """``--embedding``: UMAP and/or t-SNE of the evaluation mu (t-SNE when umap-learn is
    missing, with a note)."""
    chosen = c.config.embedding
    methods: list[Literal["umap", "tsne"]] = (
        ["umap", "tsne"] if chosen == "both" else [] if chosen == "none" else [chosen]
    )
    missing = umap_missing() if "umap" in methods else None
    if missing is not None:
        c.notes.lines.append(missing)
        methods = [m for m in methods if m != "umap"] or ["tsne"]
    labels = None if c.eval_split.labels is None else c.eval_split.labels.numpy()
    info: dict[str, Any] = {}
    for method in methods:
        protocol = save_embedding_plot(
            c.posterior[0].numpy(),
            labels,
            folder / f"{method}.png",
            method=method,
            seed=c.seed,
            max_points=10_000,  # the CVAE notebook fits UMAP on all 10k test mu
            title=f"{c.run.config.method}: {method.upper()} of test mu (seed {c.seed})",
        )
        info[method] = {k: (str(v) if isinstance(v, Path) else v) for k, v in protocol.items()}
    return info


def _kl_per_dim(c: EvalContext, folder: Path) -> dict[str, Any]:
    variance = c.results["active_units"].protocol["per_dim_variance"]
    active = [v >= 0.01 for v in variance]
    path = save_kl_per_dim(
        c.results["kl"].extra["per_dim"],
        folder / "kl_per_dim.png",
        active,
        title=f"{c.run.config.method}: KL per latent dimension ({c.eval_name} split; "
        f"{sum(active)} of {len(active)} active)",
    )
    return {"kl_per_dim": path.name}


def _view_similarity(c: EvalContext, folder: Path) -> dict[str, Any]:
    protocol = c.views["protocol"]
    path = save_similarity_matrix(
        c.views["matrix"],
        protocol["n_views"],
        folder / "view_similarity.png",
        title=f"{c.run.config.method}: cosine similarity of {c.feature} over "
        f"{protocol['augment']} views (seed {c.seed})",
    )
    return {"view_similarity": path.name}


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(_reconstructions, ("decoder",)),
    FigureSpec(_samples, ("decoder",)),
    FigureSpec(_curves),
    FigureSpec(_interpolations, ("decoder",)),
    FigureSpec(_embeddings),
    FigureSpec(_kl_per_dim),
    FigureSpec(_view_similarity, ("views",)),
)
"""Every figure of ``cvae eval``, in the order drawn."""
