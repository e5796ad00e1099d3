"""Image folders, decoded once with Pillow into a uint8 cache file (see :mod:`cvae.data.memmap`).

Two layouts, as torchvision's ``ImageFolder``:

* split folders: ``root/train/`` (required), ``root/val/`` and ``root/test/`` (optional), each
  holding class folders (the same classes in each) or images directly (unlabeled);
* one set: ``root/class_name/...`` (labels from the sorted class names) or a flat folder of
  images (unlabeled); :func:`cvae.data.load_data` carves the seeded val and test splits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvae.data.base import ImageDataset, Loaded
from cvae.data.download import default_data_root
from cvae.data.memmap import cache_key, read_cache, write_cache
from cvae.errors import ConfigError, DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_FOLDERS = ("train", "val", "test")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass
class _Split:
    """The images of one split (or of the whole folder), with labels and class names (``None``
    for a flat, unlabeled folder)."""

    paths: list[Path]
    labels: list[int] | None
    classes: list[str] | None


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _visible_dirs(entries: list[Path]) -> list[Path]:
    return [d for d in entries if d.is_dir() and not d.name.startswith(".")]


def _scan_layout(root: Path) -> dict[str, _Split]:
    """``{"train": ..., ["val": ..., "test": ...]}`` for split folders, else ``{"all": ...}``."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    entries = sorted(root.iterdir())
    names = [d.name for d in _visible_dirs(entries)]
    if "train" not in names:
        return {"all": _scan(root, entries)}
    others = [n for n in names if n not in SPLIT_FOLDERS]
    flat = [p.name for p in entries if _is_image(p)]
    if others or flat:
        raise DataError(
            f"{root}: has a train/ folder and also {(others + flat)[0]!r}; split folders "
            "(train/, val/, test/) hold everything (rename a class folder named train)"
        )
    splits = {n: _scan(root / n, sorted((root / n).iterdir())) for n in SPLIT_FOLDERS if n in names}
    classes = splits["train"].classes
    for name, split in splits.items():
        if split.classes != classes:
            raise DataError(f"{root / name}: {_class_difference(split.classes, classes)}")
    return splits


def _class_difference(have: list[str] | None, want: list[str] | None) -> str:
    if have is None or want is None:
        labelled = "class folders" if have is not None else "no class folders (flat images)"
        return f"has {labelled}, unlike train/; every split needs the same layout"
    extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    parts = [f"classes not in train/: {', '.join(extra[:3])}" if extra else "",
             f"lacks train/'s classes {', '.join(missing[:3])}" if missing else ""]  # fmt: skip
    return "; ".join(p for p in parts if p) + " (every split needs the same class folders)"


def _scan(root: Path, entries: list[Path]) -> _Split:
    """The images of one folder: flat, or one class per sub-folder."""
    flat = [p for p in entries if _is_image(p)]
    class_dirs = _class_folders(entries)
    if flat and class_dirs:
        raise DataError(
            f"{root}: mixes images ({flat[0].name}) and class folders ({class_dirs[0][0].name}); "
            "use either class_name/image files or a flat folder of images"
        )
    if flat:
        return _Split(flat, None, None)
    if not class_dirs:
        raise DataError(f"{root}: no images ({', '.join(EXTENSIONS)}) in it or its sub-folders")
    paths = [p for _, files in class_dirs for p in files]
    labels = [i for i, (_, files) in enumerate(class_dirs) for _ in files]
    return _Split(paths, labels, [d.name for d, _ in class_dirs])


def _class_folders(entries: list[Path]) -> list[tuple[Path, list[Path]]]:
    """The visible sub-folders among ``entries`` that hold images (at any depth), each with
    its sorted image paths."""
    found = [(d, sorted(p for p in d.rglob("*") if _is_image(p))) for d in _visible_dirs(entries)]
    return [(d, files) for d, files in found if files]


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and mode from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from err


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """Decode as ``mode`` ("L"/"RGB") at ``size`` (width, height) -> ``[H, W]`` or ``[H, W, 3]``."""
    try:
        with Image.open(path) as opened:
            im = opened.convert(mode)
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            return np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from err


def _geometry(
    paths: list[Path], image_size: int | None, channels: int | None
) -> tuple[tuple[int, int], int]:
    """(width, height) and channels of the decoded images, from the headers."""
    headers = [_probe(p) for p in paths]
    if image_size is None:
        size = headers[0][0]
        for path, (other, _) in zip(paths, headers, strict=True):
            if other != size:
                raise DataError(
                    f"{path}: size {other[0]}x{other[1]} differs from {paths[0].name} "
                    f"({size[0]}x{size[1]}); set image_size to resize all images"
                )
    else:
        size = (image_size, image_size)
    if channels is None:
        channels = 1 if all(mode in _GRAY_MODES for _, mode in headers) else 3
    return size, channels


def _decoded(paths: list[Path], size: tuple[int, int], channels: int) -> Iterator[np.ndarray]:
    mode = "L" if channels == 1 else "RGB"
    for path in paths:
        pixels = _decode(path, mode, size)
        yield pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def load_folder(
    root: Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    cache_root: Path | None = None,
) -> Loaded:
    """The images under ``root`` as uint8 ``[N, C, H, W]`` splits (layouts: module docstring).

    Images are resized (bilinear) to ``image_size`` x ``image_size``, which is required when sizes
    differ (default: keep the common size). ``channels`` is 1 if every image is grayscale, else 3,
    unless forced. The images are decoded once, one at a time, into
    ``<cache_root>/folders/<key>.npy`` (key: the folder, its files' names, mtimes and sizes, and
    the options); the splits returned are memory-mapped views of it (:class:`MemmapImages`).
    ``extra["split_folders"]`` names the split folders found (``[]``: one set of images).
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be positive, got {image_size}")
    root = Path(root).expanduser().resolve()
    splits = _scan_layout(root)
    first = next(iter(splits))  # "train" or "all"
    paths = [p for split in splits.values() for p in split.paths]
    stats = [(str(p.relative_to(root)), (st := p.stat()).st_mtime_ns, st.st_size) for p in paths]
    key = cache_key([str(root), list(splits), stats, image_size, channels])
    cache = (cache_root or default_data_root()) / "folders" / f"{key}.npy"
    found = read_cache(cache)
    hit = found is not None
    if found is None:
        size, channels = _geometry(paths, image_size, channels)
        ranges, start = {}, 0
        for name, part in splits.items():
            ranges[name], start = (start, start + len(part.paths)), start + len(part.paths)
        labelled = splits[first].labels is not None
        all_labels = [i for s in splits.values() for i in s.labels or []] if labelled else None
        header = {"count": len(paths), "ranges": ranges, "labels": all_labels}
        write_cache(cache, (channels, size[1], size[0]), len(paths),
                    _decoded(paths, size, channels), header)  # fmt: skip
        found = read_cache(cache)
        if found is None:
            raise DataError(f"{cache}: the cache just written cannot be read back")
    images, meta = found
    classes = splits[first].classes
    labels = None if meta["labels"] is None else torch.tensor(meta["labels"], dtype=torch.int64)

    def view(name: str) -> ImageDataset:
        rows = torch.arange(*meta["ranges"][name])
        return ImageDataset(images.take(rows), None if labels is None else labels[rows], classes)

    extra = {
        "images": len(paths),
        "classes": classes,
        "split_folders": [n for n in splits if n != "all"],
        "cache": str(cache),
        "cache_hit": hit,
    }
    val, test = (view(n) if n in splits else None for n in ("val", "test"))
    return Loaded(view(first), test, str(root), val=val, extra=extra)
