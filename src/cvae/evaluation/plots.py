"""PNG figures: image grids, latent interpolations, 2-D embeddings of latent features, training
curves, KL per latent dimension and view-similarity matrices.

All figures use matplotlib's Agg backend (no display needed) and carry a title (wrapped to the
figure's width, never clipped), axis labels and, where classes are shown, a legend, so each PNG
is readable on its own.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

if TYPE_CHECKING:
    from cvae.api import Run

_GRID_PAD = 2  # pixels between tiles in an image grid
_GRID_TITLED_PX = 360  # the narrowest titled image grid (8x8 digits would clip their title)
TITLE_PT = 11  # font size of figure titles


def _subplots(*args: Any, figsize: tuple[float, float], dpi: int = 100, **kwargs: Any) -> Any:
    """``(figure, axes)`` on a bare :class:`Figure`: no pyplot, no global backend, no figure
    registry to close, so importing this module changes nothing for the caller."""
    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(*args, **kwargs)


def text_width(text: str, fontsize: float, dpi: int = 100) -> float:
    """Pixels that one line of ``text`` takes at ``fontsize`` points (matplotlib's font)."""
    width, _, _ = RendererAgg(1, 1, dpi).get_text_width_height_descent(
        text, FontProperties(size=fontsize), ismath=False
    )
    return float(width)


def wrap_text(text: str, width_px: float, fontsize: float = TITLE_PT, dpi: int = 100) -> str:
    """``text`` broken at spaces into lines at most ``width_px`` wide (a longer word stays
    whole); existing line breaks are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split(" ")
        lines.append(words[0])
        for word in words[1:]:
            if text_width(f"{lines[-1]} {word}", fontsize, dpi) <= width_px:
                lines[-1] += f" {word}"
            else:
                lines.append(word)
    return "\n".join(lines)


def _suptitle(fig: Figure, title: str, fontsize: float = TITLE_PT) -> None:
    """``title`` centred over the whole figure, wrapped to its width less a margin (an axes
    title is centred over its axes and clips when they sit off-centre, e.g. beside a colour
    bar); ``tight_layout`` then makes room for it."""
    width_px = fig.get_figwidth() * fig.dpi - 24
    fig.suptitle(wrap_text(title, width_px, fontsize, int(fig.dpi)), fontsize=fontsize)


def _save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _row_to_strip(row: torch.Tensor, n_cols: int) -> np.ndarray:
    """``[N, C, H, W]`` in [0, 1] -> ``[H, n_cols*(W+pad)-pad, 3]`` RGB strip (blank-padded)."""
    if row.ndim != 4 or row.shape[1] not in (1, 3):
        raise ValueError(f"each row must be [N, C, H, W] with C in (1, 3), got {tuple(row.shape)}")
    x = row.detach().float().cpu().clamp(0.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    strip = np.ones((h, n_cols * (w + _GRID_PAD) - _GRID_PAD, 3), dtype=np.float32)
    imgs = x.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        strip[:, i * (w + _GRID_PAD) : i * (w + _GRID_PAD) + w] = imgs[i]
    return strip


def save_image_grid(
    rows: list[torch.Tensor],
    path: str | Path,
    *,
    row_titles: list[str] | None = None,
    title: str | None = None,
    scale: int = 2,
) -> Path:
    """Save rows of images as one PNG, e.g. originals above their reconstructions.

    Args:
        rows: list of ``[N_r, C, H, W]`` float tensors in [0, 1] (C=1 grey, C=3 RGB); all rows
            share H and W; shorter rows are padded with white.
        path: output PNG path (parent folders are created).
        row_titles: one label per row, drawn to its left.
        title: figure title.
        scale: screen pixels per image pixel (nearest-neighbour).

    Returns:
        The PNG path. Pixel height is ``top + len(rows) * (H * scale + 4) - 4 + 4`` with
        ``top`` = 36 with a one-line title (18 more per wrapped line), else 6. A titled grid is
        at least 360 px wide (the images centred), its title wrapped to that width.
    """
    if not rows:
        raise ValueError("rows is empty")
    if row_titles is not None and len(row_titles) != len(rows):
        raise ValueError(f"{len(row_titles)} row_titles for {len(rows)} rows")
    shapes = {tuple(r.shape[-2:]) for r in rows}
    if len(shapes) != 1:
        raise ValueError(f"all rows must share H and W, got {sorted(shapes)}")
    n_cols = max(int(r.shape[0]) for r in rows)
    if n_cols == 0:
        raise ValueError("rows contain no images")
    strips = [_row_to_strip(r, n_cols) for r in rows]
    h, strip_w = strips[0].shape[:2]

    # geometry in pixels: height = top + len(rows) * (tile + gap) + bottom
    dpi = 100
    label_px = 120 if row_titles else 6
    gap_px, bottom_px, right_px = 4, 4, 6
    row_px, strip_px = h * scale, strip_w * scale
    content_px = label_px + strip_px + right_px
    width_px = max(content_px, _GRID_TITLED_PX) if title else content_px
    left_px = label_px + (width_px - content_px) // 2
    title = wrap_text(title, width_px - 12, 10, dpi) if title else title
    top_px = 36 + 18 * title.count("\n") if title else 6
    height_px = top_px + len(rows) * (row_px + gap_px) - gap_px + bottom_px
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    if title:
        fig.suptitle(title, y=1 - 4 / height_px, va="top", fontsize=10)
    for i, strip in enumerate(strips):
        bottom = height_px - top_px - (i + 1) * row_px - i * gap_px
        ax = fig.add_axes(
            (left_px / width_px, bottom / height_px, strip_px / width_px, row_px / height_px)
        )
        ax.imshow(strip, interpolation="nearest", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if row_titles:
            ax.set_ylabel(row_titles[i], rotation=0, ha="right", va="center", fontsize=9)
    return _save(fig, path, dpi=dpi)


def _class_colours(n: int) -> list[Any]:
    cmap = matplotlib.colormaps.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    if n <= 20:
        return [cmap(i) for i in range(n)]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def umap_missing() -> str | None:
    """None when umap-learn imports, else a one-line note naming the fallback and the extra."""
    try:
        import umap  # noqa: F401  (lazy: slow import and first-call JIT compilation)
    except ImportError as err:
        return (
            f"UMAP unavailable ({err}): drew a t-SNE embedding instead; for UMAP: "
            "pip install 'cvae[plots]'"
        )
    return None


def save_embedding_plot(
    features: np.ndarray,
    labels: np.ndarray | None,
    path: str | Path,
    *,
    method: Literal["umap", "tsne"] = "umap",
    seed: int = 0,
    max_points: int = 5000,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    perplexity: float = 30.0,
    title: str | None = None,
) -> dict[str, Any]:
    """2-D UMAP or t-SNE of ``features`` as a scatter plot coloured by class.

    Args:
        features: ``[N, d]`` latent features (numpy or torch).
        labels: ``[N]`` integer classes, or None for a single-colour plot.
        path: output PNG path.
        method: ``"umap"`` (umap-learn, euclidean, ``random_state=seed``) or ``"tsne"``
            (sklearn ``TSNE(init="pca", perplexity=min(perplexity, n-1), random_state=seed)``).
        seed: seeds both the subsample and the embedding.
        max_points: when ``N > max_points`` a seeded random subset of this size is used.
        n_neighbors, min_dist: UMAP parameters (CVAE paper's analysis code: 15, 0.1).
        perplexity: t-SNE perplexity (default 30), clipped below ``n_points``.
        title: figure title (a default naming the method is used when None).

    Returns:
        Protocol dict: ``method``, ``params``, ``n_points``, ``n_total``, ``seed``, ``path``.
    """
    x, y = _embedding_inputs(features, labels)
    n_total = x.shape[0]
    x, y = _subsample(x, y, max_points, seed)
    n = x.shape[0]
    if method == "umap":
        emb, params = _umap(x, seed, n_neighbors, min_dist)
    elif method == "tsne":
        emb, params = _tsne(x, seed, perplexity)
    else:
        raise ValueError(f"method must be 'umap' or 'tsne', got {method!r}")
    axis = "UMAP" if method == "umap" else "t-SNE"
    title = title or f"{axis} of latent features (n={n}, seed={seed})"
    out = _plot_embedding(emb, y, path, axis=axis, title=title)
    return {
        "method": method,
        "params": params,
        "n_points": int(n),
        "n_total": int(n_total),
        "subsampled": bool(n_total > max_points),
        "max_points": int(max_points),
        "seed": int(seed),
        "path": str(out),
    }


def _numpy(a: Any) -> Any:
    """``a`` itself, or a torch tensor's values on the CPU."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") else a


def _embedding_inputs(features: Any, labels: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """``features`` as float32 ``[N, d]`` and ``labels`` as ``[N]`` (or None), checked."""
    x = np.asarray(_numpy(features), dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must have shape [N, d], got {x.shape}")
    y = None
    if labels is not None:
        y = np.asarray(_numpy(labels)).reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"labels has {y.shape[0]} entries, features has {x.shape[0]} rows")
    if x.shape[0] < 3:
        raise ValueError(f"need at least 3 points for an embedding, got {x.shape[0]}")
    return x, y


def _subsample(
    x: np.ndarray, y: np.ndarray | None, max_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """A seeded random subset of ``max_points`` rows (in their order) when there are more."""
    if x.shape[0] <= max_points:
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_points, replace=False))
    return x[idx], (y[idx] if y is not None else None)


def _umap(
    x: np.ndarray, seed: int, n_neighbors: int, min_dist: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """UMAP embedding of ``x`` and its protocol parameters."""
    import umap  # lazy: slow import and first-call JIT compilation

    params = {
        "n_neighbors": int(min(n_neighbors, x.shape[0] - 1)),
        "min_dist": float(min_dist),
        "metric": "euclidean",
        "n_components": 2,
        "random_state": seed,
        "n_jobs": 1,
        "umap_version": getattr(umap, "__version__", "unknown"),
    }
    reducer = umap.UMAP(
        n_neighbors=params["n_neighbors"],
        min_dist=min_dist,
        metric="euclidean",
        n_components=2,
        random_state=seed,
    )
    with warnings.catch_warnings():  # seeding forces n_jobs=1; that is intended
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return np.asarray(reducer.fit_transform(x)), params


def _tsne(x: np.ndarray, seed: int, perplexity: float) -> tuple[np.ndarray, dict[str, Any]]:
    """t-SNE embedding of ``x`` and its protocol parameters."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    params = {
        "perplexity": float(min(perplexity, x.shape[0] - 1)),
        "init": "pca",
        "n_components": 2,
        "random_state": seed,
    }
    # one OpenMP thread: with torch's and numba's runtimes loaded, more threads contend
    # (t-SNE on 200 points went from ~1 s to ~40 s on a busy 2-core machine)
    with threadpool_limits(1, user_api="openmp"):
        emb = TSNE(
            n_components=2, init="pca", perplexity=params["perplexity"], random_state=seed
        ).fit_transform(x)
    return np.asarray(emb), params


def _plot_embedding(
    emb: np.ndarray, y: np.ndarray | None, path: str | Path, *, axis: str, title: str
) -> Path:
    """Scatter ``emb`` coloured by class ``y`` (one colour when None) and save it to ``path``."""
    fig, ax = _subplots(figsize=(7.5, 6.5), dpi=100)
    if y is None:
        ax.scatter(emb[:, 0], emb[:, 1], s=3, c="tab:blue", alpha=0.7, linewidths=0)
    else:
        _scatter_classes(ax, emb, y)
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    _suptitle(fig, title)
    fig.tight_layout()
    return _save(fig, path)


def _scatter_classes(ax: Any, emb: np.ndarray, y: np.ndarray) -> None:
    """One colour per class of ``y``, with a legend right of the axes."""
    classes = np.unique(y)
    for colour, cls in zip(_class_colours(len(classes)), classes, strict=True):
        m = y == cls
        ax.scatter(emb[m, 0], emb[m, 1], s=3, color=colour, alpha=0.7, linewidths=0, label=str(cls))
    ax.legend(
        title="class",
        markerscale=4,
        fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        frameon=False,
        ncol=1 if len(classes) <= 20 else 2,
    )


def _read_curves_csv(csv_path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read a CSV with an ``epoch`` column; non-numeric or empty cells become NaN."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    if "epoch" not in header:
        raise ValueError(f"{csv_path} has no 'epoch' column (columns: {header})")

    def num(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    data = {c: np.array([num(r.get(c)) for r in rows], dtype=float) for c in header}
    return header, data


def _group_panels(columns: list[str]) -> dict[str, list[str]]:
    """Map panel name -> columns; ``train_X``/``val_X`` pairs share panel ``X``, order kept."""
    panels: dict[str, list[str]] = {}
    for c in columns:
        for prefix, other_prefix in (("train_", "val_"), ("val_", "train_")):
            if c.startswith(prefix) and other_prefix + c[len(prefix) :] in columns:
                panels.setdefault(c[len(prefix) :], []).append(c)
                break
        else:
            panels.setdefault(c, []).append(c)
    return panels


def save_curves(
    csv_path: str | Path,
    path: str | Path,
    *,
    columns: list[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot per-epoch training curves from a CSV with an ``epoch`` column.

    One subplot per metric; ``train_X`` and ``val_X`` share the subplot titled ``X`` when both
    exist. Columns that are entirely non-numeric are skipped.

    Args:
        csv_path: CSV file, one row per epoch.
        path: output PNG path.
        columns: metric columns to plot (default: every numeric column except ``epoch``).
        title: figure title (default: the CSV file name).

    Returns:
        The PNG path.
    """
    header, data = _read_curves_csv(csv_path)
    if columns is None:
        columns = [c for c in header if c != "epoch" and np.isfinite(data[c]).any()]
    else:
        missing = [c for c in columns if c not in data]
        if missing:
            raise ValueError(f"columns not in {csv_path}: {missing}")
    if not columns:
        raise ValueError(f"{csv_path} has no numeric metric columns to plot")

    panels = _group_panels(columns)
    n = len(panels)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), dpi=100, squeeze=False)
    epoch = data["epoch"]
    for ax, (name, cols) in zip(axes.flat, panels.items(), strict=False):
        for c in sorted(cols, key=lambda s: not s.startswith("train_")):
            v = data[c]
            ok = np.isfinite(v) & np.isfinite(epoch)
            ax.plot(epoch[ok], v[ok], marker="o" if ok.sum() <= 30 else None, ms=3, label=c)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    _suptitle(fig, title or f"Training curves: {Path(csv_path).name}")
    fig.tight_layout()
    return _save(fig, path)


def save_interpolations(
    run: Run,
    starts: torch.Tensor,
    ends: torch.Tensor,
    path: str | Path,
    *,
    steps: int = 10,
    title: str | None = None,
    scale: int | None = None,
) -> Path:
    """Latent interpolations between pairs of images, one row per pair.

    Each row is ``[start, decode(mu_t) for t in linspace(0, 1, steps), end]`` with
    ``mu_t = (1 - t) mu(start) + t mu(end)`` (posterior means, eval mode, so deterministic): the
    outer columns are the original images, the first and last decodes their reconstructions.

    Args:
        run: a loaded run (:func:`cvae.load`).
        starts, ends: uint8 images ``[P, C, H, W]`` (or floats in the run's value range).
        steps: decoded points per row, endpoints included (>= 2).
        scale: screen pixels per image pixel; default ``max(2, ceil(48 / W))`` so small images
            (8x8 digits) stay legible.
    """
    if starts.shape != ends.shape or starts.ndim != 4:
        raise ValueError(f"starts and ends must be [P, C, H, W], got {starts.shape}, {ends.shape}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    path_imgs = run.to_unit(run.interpolate(starts, ends, steps=steps)).cpu()
    a, b = (run.to_unit(run.to_input(x)).cpu() for x in (starts, ends))
    rows = [torch.cat([a[i : i + 1], path_imgs[i], b[i : i + 1]]) for i in range(len(a))]
    return save_image_grid(
        rows,
        path,
        row_titles=[f"pair {i}" for i in range(len(rows))],
        title=title
        or f"{run.config.method}: interpolation in mu, {steps} steps (outer columns: originals)",
        scale=scale or max(2, math.ceil(48 / starts.shape[-1])),
    )


def save_kl_per_dim(
    per_dim_kl: Sequence[float],
    path: str | Path,
    active_mask: Sequence[bool] | None = None,
    *,
    sort: bool = False,
    title: str | None = None,
) -> Path:
    """Bar chart of the mean KL(q(z_j|x) || N(0, 1)) of each latent dimension j (nats).

    Args:
        per_dim_kl: ``[d]`` mean KL per dimension (e.g. the ``kl`` metric's ``per_dim``).
        active_mask: ``[d]`` active units (e.g. Var(mu_j) >= 0.01); active bars are blue,
            inactive grey, with a legend of the kinds present. None colours every bar alike.
        sort: order bars by decreasing KL (tick labels keep the dimension index).
        title: default ``"KL per latent dimension (total X nats, A of d active)"``.
    """
    kl = np.asarray(per_dim_kl, dtype=float)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(f"per_dim_kl must be a non-empty 1-D sequence, got shape {kl.shape}")
    active = None if active_mask is None else np.asarray(active_mask, dtype=bool)
    if active is not None and active.shape != kl.shape:
        raise ValueError(f"active_mask has {active.size} entries for {kl.size} dimensions")
    order = np.argsort(-kl, kind="stable") if sort else np.arange(kl.size)
    fig, ax = _subplots(figsize=(max(6.4, 0.25 * kl.size + 2), 3.6), dpi=100)
    x = np.arange(kl.size)
    if active is None:
        ax.bar(x, kl[order], color="tab:blue")
    else:
        for flag, colour, label in ((True, "tab:blue", "active"), (False, "0.6", "inactive")):
            m = active[order] == flag
            if m.any():  # no legend entry for a kind without bars
                ax.bar(x[m], kl[order][m], color=colour, label=label)
        ax.legend(fontsize=8)
    ax.set_xticks(x if kl.size <= 32 else x[:: math.ceil(kl.size / 32)])
    ax.set_xticklabels([str(i) for i in order[ax.get_xticks().astype(int)]], fontsize=7)
    ax.set_xlabel("latent dimension" + (" (sorted by KL)" if sort else ""))
    ax.set_ylabel("mean KL (nats)")
    n_active = "" if active is None else f", {int(active.sum())} of {kl.size} active"
    _suptitle(fig, title or f"KL per latent dimension (total {kl.sum():.3g} nats{n_active})")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


SIMILARITY_CMAP = "RdBu_r"  # -1 blue, 0 white, 1 red


def save_similarity_matrix(
    matrix: np.ndarray,
    n_views: int,
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """Heat map of a view cosine-similarity matrix ordered by image (see ``views.py``).

    Lines separate the ``n_views x n_views`` blocks of each image. The colour scale is fixed
    to cosine's range [-1, 1] (diverging, white at 0), so one colour is one similarity in the
    figures of every run.
    """
    sim = np.asarray(matrix, dtype=float)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1] or sim.shape[0] % n_views:
        raise ValueError(f"matrix must be square, rows a multiple of {n_views}; got {sim.shape}")
    n = sim.shape[0]
    fig, ax = _subplots(figsize=(6.4, 5.6), dpi=100)
    im = ax.imshow(sim, cmap=SIMILARITY_CMAP, vmin=-1.0, vmax=1.0, interpolation="nearest")
    for k in range(n_views, n, n_views):
        ax.axhline(k - 0.5, color="0.2", lw=0.6)
        ax.axvline(k - 0.5, color="0.2", lw=0.6)
    ticks = np.arange(n_views / 2 - 0.5, n, n_views)
    ax.set_xticks(ticks, [str(i) for i in range(n // n_views)])
    ax.set_yticks(ticks, [str(i) for i in range(n // n_views)])
    ax.set_xlabel(f"image ({n_views} views each)")
    ax.set_ylabel(f"image ({n_views} views each)")
    fig.colorbar(im, ax=ax, label="cosine similarity")
    _suptitle(fig, title or "Cosine similarity of augmented views")
    fig.tight_layout()
    return _save(fig, path)


def save_scatter(
    points: np.ndarray,
    labels: np.ndarray | None,
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """Scatter of ``[N, 2]`` ``points`` (e.g. a 2-D latent space), coloured by class with a
    colour bar when ``labels`` are given."""
    fig, ax = _subplots(figsize=(5, 5))
    drawn = ax.scatter(points[:, 0], points[:, 1], c=labels, s=2, cmap="tab10")
    if labels is not None:
        fig.colorbar(drawn, ax=ax, label="class")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    fig.tight_layout()
    return _save(fig, path)
