"""Mirror-aware downloads, md5 checks, safe archive extraction and the default data location."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO

from cvae.errors import DataError

_CHUNK = 1 << 20


def default_data_root() -> Path:
    """``$CVAE_DATA`` if set, else ``~/.cache/cvae/data``."""
    return Path(os.environ.get("CVAE_DATA") or "~/.cache/cvae/data").expanduser()


def md5_file(path: Path, decompress_gz: bool = False) -> str:
    """md5 hex digest of a file's bytes, or of its decompressed bytes with ``decompress_gz``."""
    digest = hashlib.md5()
    try:
        with gzip.open(path, "rb") if decompress_gz else open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from err
    return digest.hexdigest()


def _accepted(md5: str | set[str] | None) -> set[str] | None:
    return {md5} if isinstance(md5, str) else md5


def _fetch(url: str, tmp: Path, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; return the md5 of the bytes written."""
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def download(
    urls: list[str], dest: Path, md5: str | set[str] | None, *, timeout: float = 60
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that serves it with an accepted md5.

    ``md5`` is one checksum or a set of accepted ones (``None`` skips the check); for a ``.gz``
    destination the md5 of the decompressed bytes is accepted too. The file is streamed into a
    temporary file beside ``dest`` and moved into place atomically, so ``dest`` is never partial.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    accepted = _accepted(md5)
    failures = []
    for url in urls:
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            got = _fetch(url, tmp, timeout)
            if (
                accepted is not None
                and got not in accepted
                and not (dest.suffix == ".gz" and md5_file(tmp, decompress_gz=True) in accepted)
            ):
                failures.append(f"{url}: md5 {got} not in {sorted(accepted)}")
                continue
            os.replace(tmp, dest)
            return dest
        except urllib.error.HTTPError as err:
            failures.append(f"{url}: HTTP {err.code} {err.reason}")
        except urllib.error.URLError as err:
            failures.append(f"{url}: {err.reason}")
        except (OSError, ValueError, http.client.HTTPException, DataError) as err:
            failures.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(f"could not download {dest.name}: " + "; ".join(failures))


def resolve_folder(root: Path, sub: str, markers: list[str]) -> Path:
    """``root`` itself if it holds any of ``markers`` (relative paths), else ``root / sub``.

    A loader's ``root`` may be the dataset's own folder or a data root with one folder per dataset.
    """
    root = Path(root)
    return root if any((root / m).exists() for m in markers) else root / sub


def verify_md5(path: Path, expected: str) -> None:
    """Raise a one-line :class:`DataError` naming ``path`` unless its md5 is ``expected``."""
    got = md5_file(path)
    if got != expected:
        raise DataError(
            f"{path}: checksum mismatch: md5 {got}, expected {expected}; delete it and try again"
        )


def _members(archive: Path) -> Iterator[tuple[str, bool, Callable[[], IO[bytes]]]]:
    """(name, is a regular file, opener) for each member of a .zip or .tar(.gz) ``archive``."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield info.filename, not info.is_dir(), partial(zf.open, info)
    else:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                yield member.name, member.isfile(), partial(tar.extractfile, member)


def extract(archive: Path, wanted: list[str], dest: Path) -> Path:
    """Extract the members named ``wanted`` of a .zip/.tar(.gz) ``archive`` flat into ``dest``.

    Each member is written under its base name only, through a temporary file and
    ``os.replace``, so no member can escape ``dest`` and no output file is ever partial; links and
    other non-regular members raise. Raises :class:`DataError` if a wanted member is missing.
    """
    dest.mkdir(parents=True, exist_ok=True)
    want = set(wanted)
    try:
        for name, regular, opener in _members(archive):
            if name not in want:
                continue
            if not regular:
                raise DataError(f"{archive}: {name} is not a regular file")
            fd, tmp = tempfile.mkstemp(prefix=".extract.", dir=dest)
            try:
                with opener() as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
                os.replace(tmp, dest / Path(name).name)
            finally:
                Path(tmp).unlink(missing_ok=True)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{archive}: cannot extract ({err})") from err
    missing = [name for name in wanted if not (dest / Path(name).name).is_file()]
    if missing:
        raise DataError(f"{archive}: missing {', '.join(missing)}")
    return dest
