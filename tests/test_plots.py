"""PNG figures (cvae.evaluation.plots)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from cvae.evaluation import plots
from cvae.evaluation.plots import (
    _group_panels,
    save_curves,
    save_embedding_plot,
    save_image_grid,
    save_kl_per_dim,
    save_similarity_matrix,
)
from cvae.evaluation.views import similarity_summary

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """t-SNE's OpenMP threads spin-wait badly on a busy 2-core machine (1 s -> 40 s)."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_MAGIC
    return mpimg.imread(path)


def test_image_grid_grey_height_scales_with_rows(tmp_path: Path) -> None:
    imgs = torch.rand(5, 1, 28, 28)
    heights, widths = [], []
    for n_rows in (1, 2, 3):
        out = save_image_grid(
            [imgs] * n_rows,
            tmp_path / f"grid{n_rows}.png",
            row_titles=[f"row {i}" for i in range(n_rows)],
            title="originals / reconstructions",
        )
        arr = _read_png(out)
        assert arr.ndim == 3 and arr.shape[2] in (3, 4)
        heights.append(arr.shape[0])
        widths.append(arr.shape[1])
    row_px = 28 * 2 + 4  # tile height at scale 2 plus the gap
    assert abs((heights[1] - heights[0]) - row_px) <= 1
    assert abs((heights[2] - heights[0]) - 2 * row_px) <= 1
    assert widths[0] == widths[1] == widths[2]
    assert widths[0] >= 5 * 28 * 2


def test_image_grid_rgb_and_content(tmp_path: Path) -> None:
    black = torch.zeros(4, 3, 16, 16)
    red = torch.zeros(3, 3, 16, 16)
    red[:, 0] = 1.0
    out = save_image_grid([black, red], tmp_path / "sub" / "rgb.png", scale=3)
    arr = _read_png(out)[..., :3]
    # no title / labels: top margin 6 px, left 6 px; first tile is black, second row is red
    assert np.allclose(arr[6 + 10, 6 + 10], 0.0, atol=0.02)
    red_px = arr[6 + 16 * 3 + 4 + 10, 6 + 10]
    assert red_px[0] > 0.95 and red_px[1] < 0.05 and red_px[2] < 0.05
    with pytest.raises(ValueError):
        save_image_grid([torch.rand(2, 2, 8, 8)], tmp_path / "bad.png")
    with pytest.raises(ValueError):
        save_image_grid([torch.rand(2, 1, 8, 8), torch.rand(2, 1, 9, 9)], tmp_path / "bad.png")


def test_embedding_tsne_writes_png_and_protocol(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=200)
    x = rng.normal(size=(200, 16)) + 5.0 * np.eye(4, 16)[y]
    proto = save_embedding_plot(x, y, tmp_path / "tsne.png", method="tsne", seed=3)
    assert proto["method"] == "tsne" and proto["n_points"] == 200 and proto["seed"] == 3
    assert proto["params"]["perplexity"] == 30.0 and proto["params"]["init"] == "pca"
    assert proto["subsampled"] is False
    assert Path(proto["path"]) == tmp_path / "tsne.png"
    assert _read_png(tmp_path / "tsne.png").shape[0] > 100


def test_embedding_tsne_subsample_unlabeled(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(300, 8))
    proto = save_embedding_plot(x, None, tmp_path / "u.png", method="tsne", max_points=20)
    assert proto["n_points"] == 20 and proto["n_total"] == 300 and proto["subsampled"]
    assert proto["params"]["perplexity"] == 19.0
    _read_png(tmp_path / "u.png")
    with pytest.raises(ValueError):
        save_embedding_plot(x, None, tmp_path / "v.png", method="pca")  # type: ignore[arg-type]


def test_curves_from_csv(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(
        "epoch,train_loss,val_loss,train_kl,lr,note\n"
        "1,10.0,11.0,1.0,0.001,start\n"
        "2,8.0,9.5,1.5,0.001,\n"
        "3,7.0,,1.7,0.0005,end\n"
    )
    out = save_curves(csv_path, tmp_path / "curves.png")
    assert _read_png(out).shape[1] > 200
    out2 = save_curves(csv_path, tmp_path / "loss.png", columns=["train_loss", "val_loss"])
    _read_png(out2)
    assert _group_panels(["train_loss", "val_loss", "train_kl", "lr"]) == {
        "loss": ["train_loss", "val_loss"],
        "train_kl": ["train_kl"],
        "lr": ["lr"],
    }
    with pytest.raises(ValueError):
        save_curves(csv_path, tmp_path / "x.png", columns=["nope"])
    bad = tmp_path / "bad.csv"
    bad.write_text("step,loss\n1,2\n")
    with pytest.raises(ValueError):
        save_curves(bad, tmp_path / "y.png")


def _colour_pixels(arr: np.ndarray, rgb: tuple[float, float, float]) -> int:
    return int((np.abs(arr[..., :3] - np.array(rgb)).max(axis=-1) < 0.02).sum())


def test_kl_per_dim_marks_active_units(tmp_path: Path) -> None:
    blue = (0x1F / 255, 0x77 / 255, 0xB4 / 255)  # matplotlib tab:blue
    grey = (0.6, 0.6, 0.6)
    kl = [0.5, 1.0, 2.0, 0.8]
    arr = _read_png(save_kl_per_dim(kl, tmp_path / "kl.png", [True, False, True, False]))
    only_blue = _read_png(save_kl_per_dim(kl, tmp_path / "all.png", sort=True))
    # half the bar area turns grey (grid lines and text antialiasing add a few grey pixels)
    assert _colour_pixels(arr, grey) > 1000 > 200 > _colour_pixels(only_blue, grey)
    assert _colour_pixels(only_blue, blue) > 1.5 * _colour_pixels(arr, blue) > 1000
    with pytest.raises(ValueError):
        save_kl_per_dim(kl, tmp_path / "bad.png", [True])
    with pytest.raises(ValueError):
        save_kl_per_dim([], tmp_path / "bad.png")


def test_similarity_summary_hand_computed() -> None:
    # image 0: views (1, 0) and (1, 1); image 1: two views (0, 1)
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0]])
    sim, within, between = similarity_summary(f, n_images=2, n_views=2)
    r = 1 / np.sqrt(2)
    expected = torch.tensor([[1, r, 0, 0], [r, 1, r, r], [0, r, 1, 1], [0, r, 1, 1]])
    torch.testing.assert_close(sim, expected.float())
    assert within == pytest.approx((r + 1) / 2)  # pairs (0,1) and (2,3), both orders
    assert between == pytest.approx(r / 2)  # (0,2)=(0,3)=0, (1,2)=(1,3)=r
    # identical views of orthogonal images: within 1, between 0
    _, within, between = similarity_summary(torch.eye(3).repeat_interleave(4, dim=0), 3, 4)
    assert (within, between) == (pytest.approx(1.0), pytest.approx(0.0))
    with pytest.raises(ValueError):
        similarity_summary(f, n_images=3, n_views=2)


def test_similarity_matrix_png(tmp_path: Path) -> None:
    sim, _, _ = similarity_summary(torch.eye(3).repeat_interleave(4, dim=0), 3, 4)
    arr = _read_png(save_similarity_matrix(sim.numpy(), 4, tmp_path / "sim.png", title="t"))
    assert arr.shape[0] > 300 and arr.shape[1] > 300
    with pytest.raises(ValueError):
        save_similarity_matrix(np.zeros((6, 6)), 4, tmp_path / "bad.png")


@pytest.mark.slow
def test_embedding_umap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=150)
    x = rng.normal(size=(150, 8)) + 6.0 * np.eye(3, 8)[y]
    proto = save_embedding_plot(x, y, tmp_path / "umap.png", method="umap", seed=0)
    assert proto["method"] == "umap" and proto["n_points"] == 150
    p = proto["params"]
    assert p["n_neighbors"] == 15 and p["min_dist"] == 0.1 and p["metric"] == "euclidean"
    assert p["random_state"] == 0
    _read_png(tmp_path / "umap.png")


def _figure(monkeypatch: pytest.MonkeyPatch, draw: Callable[[], Path]) -> Figure:
    """The figure ``draw`` would save (nothing is written)."""
    saved: list[Figure] = []

    def capture(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
        saved.append(fig)
        return Path(path)

    monkeypatch.setattr(plots, "_save", capture)
    draw()
    return saved[0]


def _inside(fig: Figure, text: Any) -> bool:
    """Whether ``text`` of ``fig`` (drawn by Agg) lies inside the figure."""
    box = text.get_window_extent(FigureCanvasAgg(fig).get_renderer())
    width, height = fig.get_size_inches() * fig.dpi
    return bool(text.get_text()) and box.x0 >= 0 and box.x1 <= width and box.y1 <= height


LONG = "cvae: cosine similarity of mu over cvae-mnist views of the test split (seed 12345)"


def test_titles_wrap_inside_the_figure_and_the_similarity_scale_is_fixed(
    tmp_path: Path, monkeypatch
) -> None:
    digits = list(torch.rand(64, 1, 8, 8).view(8, 8, 1, 8, 8))  # samples of an 8x8 digits run
    grid = _figure(monkeypatch, lambda: save_image_grid(digits, tmp_path / "s.png", title=LONG))
    assert _inside(grid, grid._suptitle) and "\n" in grid._suptitle.get_text()
    high = np.full((8, 8), 0.9) + 0.1 * np.eye(8)  # an invariant run: all similarities >= 0.9
    mixed = np.eye(8) * 2 - 1  # another run: -1 off the diagonal
    path = tmp_path / "v.png"
    for sim in (high, mixed):
        fig = _figure(monkeypatch, lambda s=sim: save_similarity_matrix(s, 2, path, title=LONG))
        assert _inside(fig, fig._suptitle)
        assert fig.axes[0].images[0].get_clim() == (-1.0, 1.0)  # one colour, one similarity
    assert plots.wrap_text("a b", 1e6) == "a b" and plots.wrap_text("a b", 1) == "a\nb"


def test_kl_legend_lists_only_the_kinds_present(tmp_path: Path, monkeypatch) -> None:
    def legend(mask: list[bool]) -> list[str]:
        fig = _figure(monkeypatch, lambda: save_kl_per_dim([1.0, 2.0], tmp_path / "k.png", mask))
        return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]

    assert legend([True, True]) == ["active"]  # every unit active: no "inactive" entry
    assert legend([True, False]) == ["active", "inactive"]
