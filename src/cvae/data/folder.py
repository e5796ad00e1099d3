"""Image folders (``class_name/*.png`` or flat), decoded once with Pillow and cached as tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvae.data.base import ImageDataset, Loaded
from cvae.data.cache import cache_file, load_cache, save_cache
from cvae.data.download import default_data_root
from cvae.errors import ConfigError, DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_CACHE_VERSION = 1


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _scan(root: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Image paths, their labels and class names (``None`` for a flat, unlabeled folder)."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    entries = sorted(root.iterdir())
    flat = [p for p in entries if _is_image(p)]
    class_dirs = _class_folders(entries)
    if flat and class_dirs:
        raise DataError(
            f"{root}: mixes images ({flat[0].name}) and class folders ({class_dirs[0][0].name}); "
            "use either class_name/image files or a flat folder of images"
        )
    if flat:
        return flat, None, None
    if not class_dirs:
        raise DataError(f"{root}: no images ({', '.join(EXTENSIONS)}) in it or its sub-folders")
    return _labelled(class_dirs)


def _class_folders(entries: list[Path]) -> list[tuple[Path, list[Path]]]:
    """The visible sub-folders among ``entries`` that hold images (at any depth), each with
    its sorted image paths."""
    folders = [d for d in entries if d.is_dir() and not d.name.startswith(".")]
    found = [(d, sorted(p for p in d.rglob("*") if _is_image(p))) for d in folders]
    return [(d, files) for d, files in found if files]


def _labelled(
    class_dirs: list[tuple[Path, list[Path]]],
) -> tuple[list[Path], list[int], list[str]]:
    """Paths, labels (the class folder's index) and class names, class by class."""
    paths = [p for _, files in class_dirs for p in files]
    labels = [i for i, (_, files) in enumerate(class_dirs) for _ in files]
    return paths, labels, [d.name for d, _ in class_dirs]


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


def _cache_path(
    root: Path, paths: list[Path], image_size: int | None, channels: int | None, cache_root: Path
) -> Path:
    stats = [(str(p.relative_to(root)), (st := p.stat()).st_mtime_ns, st.st_size) for p in paths]
    return cache_file(
        cache_root, "folders", [_CACHE_VERSION, str(root), stats, image_size, channels]
    )


def load_folder(
    root: Path,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    cache_root: Path | None = None,
) -> Loaded:
    """Every image under ``root`` as one uint8 ``[N, C, H, W]`` train set (no test set).

    ``root/class_name/*`` gives labels from the sorted class names; a flat folder is unlabeled.
    Images are resized (bilinear) to ``image_size`` x ``image_size``, which is required when sizes
    differ (default: keep the common size). ``channels`` is 1 if every image is grayscale, else 3,
    unless forced. The decoded tensors are cached under ``<cache_root>/folders/`` keyed by the
    folder, its files' names, mtimes and sizes, and the options.
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be positive, got {image_size}")
    root = Path(root).expanduser().resolve()
    paths, labels, classes = _scan(root)
    cache = _cache_path(root, paths, image_size, channels, cache_root or default_data_root())
    cached = load_cache(cache)
    extra = {
        "images": len(paths),
        "classes": classes,
        "cache": str(cache),
        "cache_hit": cached is not None,
    }
    if cached is None:
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
        mode = "L" if channels == 1 else "RGB"
        pixels = np.stack([_decode(p, mode, size) for p in paths])
        images = torch.from_numpy(pixels.reshape(len(paths), size[1], size[0], channels))
        cached = {"images": images.permute(0, 3, 1, 2).contiguous()}
        if labels is not None:
            cached["labels"] = torch.tensor(labels, dtype=torch.int64)
        save_cache(cache, cached)
    train = ImageDataset(cached["images"], cached.get("labels"), classes)
    return Loaded(train, None, str(root), extra=extra)
