"""Configs from and to YAML: packaged presets, config files, run directories' ``config.yaml``.

Every mapping read here goes through the key migration (:data:`cvae.config.OLD_KEYS`), so a
run directory written before the per-term sub-configs loads, evaluates and resumes.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cvae.config.migrate import SAVED_WITHOUT, nest, rename_old_keys
from cvae.config.schema import RunConfig
from cvae.config.values import flatten, set_value
from cvae.errors import ConfigError


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A nested config mapping with every old key under its new name."""
    return nest(rename_old_keys(flatten(data)))


def from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Overlay a nested mapping (from YAML, old keys allowed) onto ``base`` (defaults if None),
    type-checked."""
    cfg = from_plain(base.to_dict()) if base is not None else RunConfig()
    for key, value in rename_old_keys(flatten(data)).items():
        set_value(cfg, key, value)
    return cfg


def from_plain(data: dict[str, Any]) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict` (rebuilds a run's saved config, old keys too; a key
    the run was saved without gets the value that reproduces it, :data:`SAVED_WITHOUT`)."""
    cfg = from_dict(data)
    saved = rename_old_keys(flatten(data))
    for key, value in SAVED_WITHOUT.items():
        if key not in saved:
            set_value(cfg, key, value)
    return cfg


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["train.lr=1e-3", "model.channels=[8,16]"]`` -> ``{key: raw string}``; the raw strings
    are parsed against the field's type by :func:`cvae.config.set_value`."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        out[key.strip()] = raw.strip()
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping, old keys migrated."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return migrate(data)


def preset_names() -> list[str]:
    files = resources.files("cvae") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name: str) -> RunConfig:
    """Build a config from a packaged preset (``cvae-mnist-paper``) or a YAML file path."""
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return from_dict(load_yaml(name))
    path = resources.files("cvae") / "presets" / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset '{name}'; available: {', '.join(preset_names())}")
    data = yaml.safe_load(path.read_text())
    data.setdefault("preset", name)
    return from_dict(data)


def changed_keys(a: RunConfig, b: RunConfig) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    flat_a, flat_b = flatten(a.to_dict()), flatten(b.to_dict())
    return [k for k in flat_a if flat_a[k] != flat_b[k]]


def save_yaml(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
