"""Decoded-image caches: tensors saved once under the data root, keyed by their sources."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import torch


def cache_file(cache_root: Path, kind: str, key: object) -> Path:
    """``<cache_root>/<kind>/<sha1 of the JSON of key>.pt``."""
    text = json.dumps(key, separators=(",", ":"))
    return cache_root / kind / f"{hashlib.sha1(text.encode()).hexdigest()}.pt"


def load_cache(path: Path) -> dict | None:
    """The cached payload, or ``None`` if absent or unreadable (then rebuilt, never trusted)."""
    if not path.is_file():
        return None
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt or foreign cache file is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable cache {path} ({err})", stacklevel=3)
        return None
    return cached if isinstance(cached, dict) and "images" in cached else None


def save_cache(path: Path, payload: dict) -> None:
    """Write ``payload`` atomically; a failure only warns (the data is still returned)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as err:
        warnings.warn(f"could not write cache {path} ({err})", stacklevel=3)
