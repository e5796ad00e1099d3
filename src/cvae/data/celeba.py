"""CelebA aligned faces (Liu et al. 2015), cropped and resized as in the BTVAE reference.

The decoded images are cached once as uint8 tensors (decoding 202,599 JPEGs takes minutes).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cvae.data.base import ImageDataset, Loaded
from cvae.data.cache import cache_file, load_cache, save_cache
from cvae.data.download import (
    Remote,
    dataset_folder,
    default_data_root,
    describe,
    fetch_missing,
    md5_file,
    verify_md5,
)
from cvae.errors import DataError

ARCHIVE = "img_align_celeba.zip"
IMAGE_DIR = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
# Official Google Drive file ids and md5s (as in torchvision's CelebA).
DRIVE_URL = "https://drive.google.com/uc?export=download&id="
FILES = {
    ARCHIVE: ("0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
    PARTITION: ("0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"),
}
HOMEPAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
SPLITS = ("train", "valid", "test")  # partition ids 0, 1, 2
CROP = 148  # BTVAE / PyTorch-VAE: CenterCrop(148) then Resize(64)
SIZE = 64
_CACHE_VERSION = 1


def read_partition(path: Path) -> tuple[list[str], np.ndarray]:
    """``list_eval_partition.txt`` ("000001.jpg 0" per line) -> (file names, partition ids)."""
    names, parts = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{number}: expected '<image>.jpg <0|1|2>', got {line!r}")
        names.append(fields[0])
        parts.append(int(fields[1]))
    if not names:
        raise DataError(f"{path}: no images listed")
    return names, np.asarray(parts, dtype=np.int64)


def crop_resize(image: Image.Image, crop: int = CROP, size: int = SIZE) -> np.ndarray:
    """Centre crop ``crop`` x ``crop`` (offsets rounded as torchvision's CenterCrop), then a
    bilinear (antialiased, PIL) resize to ``size`` x ``size`` -> uint8 ``[size, size, 3]``."""
    width, height = image.size
    if width < crop or height < crop:
        raise DataError(f"image of {width}x{height} is smaller than the {crop}x{crop} crop")
    top, left = round((height - crop) / 2), round((width - crop) / 2)
    image = image.convert("RGB").crop((left, top, left + crop, top + crop))
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def _decode_all(
    names: list[str], read: Callable[[str], bytes], where: Path, size: int
) -> torch.Tensor:
    out = np.empty((len(names), size, size, 3), dtype=np.uint8)
    for i, name in enumerate(names):
        try:
            with Image.open(io.BytesIO(read(name))) as image:
                out[i] = crop_resize(image, CROP, size)
        except (OSError, KeyError, ValueError, zlib.error, Image.DecompressionBombError) as err:
            raise DataError(f"{where / name}: unreadable image ({err})") from err
        except DataError as err:
            raise DataError(f"{where / name}: {err}") from err
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def remotes() -> list[Remote]:
    """The aligned-faces zip and the partition file, on Google Drive."""
    return [Remote(name, md5, (DRIVE_URL + drive_id,)) for name, (drive_id, md5) in FILES.items()]


def by_hand(folder: Path, remotes: list[Remote]) -> str:
    """What to do when Google Drive refuses a scripted download."""
    return f"download {describe(remotes)} from Google Drive (see {HOMEPAGE}) into {folder}"


def load_celeba(
    root: Path | None,
    *,
    download: bool = False,
    size: int = SIZE,
    cache_root: Path | None = None,
) -> Loaded:
    """CelebA's official (train 162770, valid 19867, test 19962) splits, unlabeled, as uint8
    ``[N, 3, size, size]``: centre crop 148 then resize to ``size`` (BTVAE code, no flip); the
    official valid partition is ``val``.

    ``root``: the folder holding ``list_eval_partition.txt`` and ``img_align_celeba.zip`` (or the
    extracted ``img_align_celeba/``), or a data root holding ``celeba/``. The zip and the partition
    file are md5-checked; loose JPEGs cannot be. ``download`` tries Google Drive, which often
    refuses scripted downloads: then fetch the files by hand. The decoded tensors are cached
    under ``<cache_root or the data root>/celeba/``.
    """
    folder = dataset_folder(root, "celeba", [PARTITION, ARCHIVE, IMAGE_DIR])
    image_dir, archive, partition = folder / IMAGE_DIR, folder / ARCHIVE, folder / PARTITION
    wanted = [r for r in remotes() if r.name == PARTITION or not image_dir.is_dir()]
    absent = [r for r in wanted if not (folder / r.name).is_file()]
    downloaded = []
    if absent:
        hint = by_hand(folder, absent)
        downloaded = fetch_missing(folder, absent, download=download, title="CelebA", hint=hint)
    verify_md5(partition, FILES[PARTITION][1])
    names, parts = read_partition(partition)

    source = image_dir if image_dir.is_dir() else archive
    stat = source.stat()
    key = [_CACHE_VERSION, str(source.resolve()), stat.st_size, stat.st_mtime_ns, CROP, size]
    cache = cache_file(cache_root or default_data_root(), "celeba", [*key, md5_file(partition)])
    cached = load_cache(cache)
    files = {PARTITION: FILES[PARTITION][1]}
    if source == archive:
        files[ARCHIVE] = FILES[ARCHIVE][1]
    extra = {
        "transform": f"center crop {CROP}, bilinear resize {size}",
        "cache": str(cache),
        "cache_hit": cached is not None,
        "val_split": "official list_eval_partition valid (1)",
    }
    if cached is None:
        if source == archive:
            verify_md5(archive, FILES[ARCHIVE][1])
            try:
                with zipfile.ZipFile(archive) as zf:
                    images = _decode_all(
                        names, lambda n: zf.read(f"{IMAGE_DIR}/{n}"), archive, size
                    )
            except zipfile.BadZipFile as err:
                raise DataError(f"{archive}: corrupt zip ({err})") from err
        else:
            images = _decode_all(names, lambda n: (image_dir / n).read_bytes(), image_dir, size)
        cached = {"images": images, "partition": torch.from_numpy(parts)}
        save_cache(cache, cached)
    images, part = cached["images"], cached["partition"]
    train, valid, test = (ImageDataset(images[part == i]) for i in range(len(SPLITS)))
    return Loaded(
        train, test, str(source.resolve()), files, source == archive, downloaded, valid, extra
    )
