"""Where a dataset's files are, and getting them there: mirror-aware downloads, md5 checks, safe
archive extraction and the default data location. Every file-based loader goes through
:func:`dataset_folder`, then :func:`fetch_missing` (loose files) or :func:`from_archive` /
:func:`ensure_archive` (an official archive)."""

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
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO

from cvae.errors import DataError

_CHUNK = 1 << 20
MAX_DECOMPRESSED = 1 << 30
"""Most bytes a ``.gz`` is decompressed to while checking a download (a bomb stops there)."""

MD5 = str | frozenset[str] | None
"""One md5, a set of accepted ones, or ``None`` (unchecked)."""


@dataclass(frozen=True)
class Remote:
    """A published file: its name, accepted md5 and the URLs serving it, best first."""

    name: str
    md5: MD5
    urls: tuple[str, ...]


def default_data_root() -> Path:
    """``$CVAE_DATA`` if set, else ``~/.cache/cvae/data``."""
    return Path(os.environ.get("CVAE_DATA") or "~/.cache/cvae/data").expanduser()


def md5_file(path: Path, decompress_gz: bool = False, limit: int = MAX_DECOMPRESSED) -> str:
    """md5 hex digest of a file's bytes, or of its decompressed bytes with ``decompress_gz``
    (refused with a :class:`DataError` once they exceed ``limit`` bytes)."""
    digest, size = hashlib.md5(), 0
    try:
        with gzip.open(path, "rb") if decompress_gz else open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                if decompress_gz and size > limit:
                    raise DataError(f"{path}: decompresses to more than {limit} bytes")
                digest.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip data ({err})") from err
    return digest.hexdigest()


def _accepted(md5: MD5 | Collection[str]) -> set[str] | None:
    return {md5} if isinstance(md5, str) else None if md5 is None else set(md5)


def _fetch(url: str, tmp: Path, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; return the md5 of the bytes written."""
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
        while chunk := response.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def download(
    urls: Sequence[str], dest: Path, md5: MD5 | Collection[str], *, timeout: float = 60
) -> Path:
    """Download ``dest`` from the first mirror in ``urls`` that serves it with an accepted md5.

    ``md5`` is one checksum or a set of accepted ones (``None`` skips the check); for a ``.gz``
    destination the md5 of the decompressed bytes (at most :data:`MAX_DECOMPRESSED` of them) is
    accepted too. The file is streamed into a
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


_download = download  # for the functions below, whose ``download`` flag shadows it


def dataset_folder(root: Path | None, sub: str, markers: Iterable[str]) -> Path:
    """The folder a loader reads: ``root`` (``None``: :func:`default_data_root`) itself if it
    holds any of ``markers`` (relative paths), else ``root / sub``.

    So a loader's ``root`` may be the dataset's own folder or a data root with one folder per
    dataset.
    """
    base = default_data_root() if root is None else Path(root).expanduser()
    return base if any((base / m).exists() for m in markers) else base / sub


def verify_md5(path: Path, expected: MD5) -> None:
    """Raise a one-line :class:`DataError` naming ``path`` unless its md5 is ``expected`` (one
    md5 or a set of accepted ones; ``None`` accepts anything)."""
    accepted = _accepted(expected)
    if accepted is None:
        return
    got = md5_file(path)
    if got not in accepted:
        want = expected if isinstance(expected, str) else " or ".join(sorted(accepted))
        raise DataError(
            f"{path}: checksum mismatch: md5 {got}, expected {want}; delete it and try again"
        )


def describe(remotes: Sequence[Remote]) -> str:
    """What to download, for one-line messages: ``"a from URL"``; ``"a, b and c from
    https://host/dir/"`` when several share one location; else each with its URL."""
    if len(remotes) == 1:
        return f"{remotes[0].name} from {remotes[0].urls[0]}"
    names = [r.name for r in remotes]
    where = {r.urls[0].removesuffix(r.name) for r in remotes}
    if len(where) == 1 and all(r.urls[0].endswith("/" + r.name) for r in remotes):
        return f"{', '.join(names[:-1])} and {names[-1]} from {where.pop()}"
    return ", ".join(f"{r.name} ({r.urls[0]})" for r in remotes)


def fetch_missing(
    folder: Path,
    remotes: Sequence[Remote],
    *,
    download: bool,
    title: str,
    hint: str | None = None,
    instead: str | None = None,
) -> list[str]:
    """Download into ``folder`` each of ``remotes`` not there yet (md5-checked); their names.

    Without ``download`` a missing file raises one line naming the files (``instead``: what
    would have done as well), ``folder`` and ``hint`` (default: what to get from where). A
    failed download raises one line, with ``hint`` appended when given.
    """
    missing = [r for r in remotes if not (folder / r.name).is_file()]
    if not missing:
        return []
    advice = hint or f"pass --download or download {describe(missing)} into {folder}"
    if not download:
        names = ", ".join(r.name for r in missing) + (f" (or {instead})" if instead else "")
        raise DataError(f"{title} files missing in {folder}: {names}; {advice}")
    for remote in missing:
        try:
            _download(remote.urls, folder / remote.name, remote.md5)
        except DataError as err:
            if hint is None:
                raise
            raise DataError(f"{err}; {hint}") from err
    return [r.name for r in missing]


def ensure_archive(
    folder: Path, archive: Remote, *, download: bool, title: str, instead: str | None = None
) -> list[str]:
    """Make ``folder / archive.name`` present and md5-verified (downloaded when missing and
    ``download``, else a one-line :class:`DataError`); the names downloaded."""
    downloaded = fetch_missing(folder, [archive], download=download, title=title, instead=instead)
    if not downloaded:  # download() already checked the md5
        verify_md5(folder / archive.name, archive.md5)
    return downloaded


def from_archive(
    folder: Path,
    archive: Remote,
    member_dir: str,
    needed: Sequence[str],
    *,
    download: bool,
    title: str,
) -> list[str]:
    """Make ``folder / member_dir`` hold every file in ``needed``: if any is missing, extract
    them from ``archive`` in ``folder`` (see :func:`ensure_archive`); the names downloaded."""
    dest = folder / member_dir
    if all((dest / name).is_file() for name in needed):
        return []
    instead = f"{member_dir}/ with {', '.join(needed)}"
    downloaded = ensure_archive(folder, archive, download=download, title=title, instead=instead)
    extract(folder / archive.name, [f"{member_dir}/{name}" for name in needed], dest)
    return downloaded


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """The open member (only called for regular files, for which tarfile returns one)."""
    opened = tar.extractfile(member)
    if opened is None:
        raise DataError(f"{member.name} is not a regular file")
    return opened


def _members(archive: Path) -> Iterator[tuple[str, bool, Callable[[], IO[bytes]]]]:
    """(name, is a regular file, opener) for each member of a .zip or .tar(.gz) ``archive``."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                yield info.filename, not info.is_dir(), partial(zf.open, info)
    else:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                yield member.name, member.isfile(), partial(_extract_member, tar, member)


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
