"""Omniglot (Lake et al. 2015): 105x105 handwritten characters of 50 alphabets, read from the
official PNG zips and resized to 28x28 as in the CR-VAE paper."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from cvae.data.base import ImageDataset, Loaded
from cvae.data.cache import cache_file, load_cache, save_cache
from cvae.data.download import (
    Remote,
    dataset_folder,
    default_data_root,
    fetch_missing,
    verify_md5,
)
from cvae.errors import DataError

URL_PREFIX = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
# official zips (as in torchvision's Omniglot): background = train, evaluation = test
CHECKSUMS = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
SIZE = 28
_CACHE_VERSION = 1


def _read_zip(archive: Path, size: int) -> tuple[list[str], np.ndarray, list[str]]:
    """(character names ``alphabet/character`` sorted, uint8 ``[N, size, size]``, each image's
    character). Images are resized (bilinear, antialiased) and inverted: strokes 255 on 0."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = sorted(
                n for n in zf.namelist() if n.lower().endswith(".png") and n.count("/") == 3
            )
            if not members:
                raise DataError(f"{archive}: no <set>/<alphabet>/<character>/*.png images")
            pixels = np.empty((len(members), size, size), dtype=np.uint8)
            owners = []
            for i, member in enumerate(members):
                owners.append("/".join(PurePosixPath(member).parts[1:3]))
                try:
                    with Image.open(io.BytesIO(zf.read(member))) as image:
                        small = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
                except (OSError, ValueError, Image.DecompressionBombError) as err:
                    raise DataError(f"{archive / member}: unreadable image ({err})") from err
                pixels[i] = 255 - np.asarray(small)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: corrupt zip ({err})") from err
    return sorted(set(owners)), pixels, owners


def remotes() -> list[Remote]:
    """The official background (train) and evaluation (test) zips."""
    return [Remote(name, md5, (URL_PREFIX + name,)) for name, md5 in CHECKSUMS.items()]


def load_omniglot(
    root: Path | None,
    *,
    download: bool = False,
    size: int = SIZE,
    cache_root: Path | None = None,
) -> Loaded:
    """Omniglot background (train, 19280) and evaluation (test, 13180) sets as uint8
    ``[N, 1, size, size]``, inverted so strokes are bright on black like MNIST.

    Labels index the 1623 characters (``classes``: ``alphabet/character``, the 964 background
    characters first); train and test characters are disjoint, as in the official split.
    ``root``: the folder with ``images_background.zip`` and ``images_evaluation.zip`` or a data
    root holding ``omniglot/``; ``download`` fetches missing zips. Both are md5-checked; the
    decoded tensors are cached under ``<cache_root or the data root>/omniglot/``.
    """
    folder = dataset_folder(root, "omniglot", list(CHECKSUMS))
    downloaded = fetch_missing(folder, remotes(), download=download, title="Omniglot")
    for name, md5 in CHECKSUMS.items():
        if name not in downloaded:  # download() already checked the others
            verify_md5(folder / name, md5)

    cache = cache_file(
        cache_root or default_data_root(), "omniglot", [_CACHE_VERSION, CHECKSUMS, size]
    )
    cached = load_cache(cache)
    extra = {
        "transform": f"bilinear resize 105 -> {size}, inverted (255 - x)",
        "cache": str(cache),
        "cache_hit": cached is not None,
    }
    if cached is None:
        parts = [_read_zip(folder / name, size) for name in CHECKSUMS]
        classes = [c for names, _, _ in parts for c in names]
        index = {c: i for i, c in enumerate(classes)}
        cached = {
            "images": torch.from_numpy(np.concatenate([p for _, p, _ in parts])).unsqueeze(1),
            "labels": torch.tensor([index[o] for _, _, owners in parts for o in owners]),
            "n_train": len(parts[0][1]),
            "classes": classes,
        }
        save_cache(cache, cached)
    images, labels, n, classes = (cached[k] for k in ("images", "labels", "n_train", "classes"))
    train = ImageDataset(images[:n], labels[:n], classes)
    test = ImageDataset(images[n:], labels[n:], classes)
    return Loaded(
        train, test, str(folder.resolve()), dict(CHECKSUMS), True, downloaded, extra=extra
    )
