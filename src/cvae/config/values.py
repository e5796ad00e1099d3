"""Dotted keys (``train.lr``, ``loss.terms.kl.weight``): setting a value with type coercion, and
flattening a nested mapping into dotted keys along the schema's sections."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from cvae.config.migrate import OLD_KEYS
from cvae.config.schema import RunConfig
from cvae.errors import ConfigError

_NULLS = ("", "null", "none", "~")
_HINTS: dict[type, dict[str, Any]] = {}


def type_hints(cls: type) -> dict[str, Any]:
    """``cls``'s field types, evaluated once."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def set_value(cfg: RunConfig, key: str, value: Any) -> None:
    """Set a dotted key with type coercion; an old key (:data:`OLD_KEYS`) sets its new name.

    Strings (``--set`` values) are parsed as YAML against the field's type, so
    ``data.value_range=01`` stays the string "01" while ``train.lr=1e-3`` becomes a float.
    Unknown keys, sections, wrong types and values outside a ``Literal`` raise ConfigError.
    """
    key = OLD_KEYS.get(key, key)
    *parents, leaf = key.split(".")
    obj: Any = cfg
    for part in parents:
        obj = _field(obj, part, key)
    if dataclasses.is_dataclass(_field(obj, leaf, key)):
        raise ConfigError(f"'{key}' is a section; set its fields, e.g. {key}.<field>=...")
    setattr(obj, leaf, coerce(key, value, type_hints(type(obj))[leaf]))


def get_value(cfg: RunConfig, key: str) -> Any:
    """The value of a dotted key (an old key reads its new name)."""
    key = OLD_KEYS.get(key, key)
    obj: Any = cfg
    for part in key.split("."):
        obj = _field(obj, part, key)
    return obj


def _field(obj: Any, name: str, key: str) -> Any:
    if not dataclasses.is_dataclass(obj) or name not in type_hints(type(obj)):
        raise ConfigError(f"unknown config key '{key}'")
    return getattr(obj, name)


def flatten(data: Mapping[str, Any], cls: type = RunConfig, prefix: str = "") -> dict[str, Any]:
    """``{train: {lr: 1}, loss: {terms: {kl: {weight: 0}}}}`` -> ``{"train.lr": 1,
    "loss.terms.kl.weight": 0}``: mappings under sections are descended, mapping-valued fields
    (``loss.schedules``) and unknown keys stay whole."""
    out: dict[str, Any] = {}
    hints = type_hints(cls)
    for key, value in data.items():
        sub = hints.get(key)
        if isinstance(value, Mapping) and isinstance(sub, type) and dataclasses.is_dataclass(sub):
            out.update(flatten(value, sub, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# --------------------------------------------------------------------------- coercion


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` (YAML or a ``--set`` string) as the annotated type: int -> float is fine,
    str -> int is not, a ``Literal`` takes one of its values, ``X | None`` takes null."""
    target, optional = _optional(hint)
    if isinstance(value, str) and not _is_text(target):
        value = None if optional and value.lower() in _NULLS else _parse(key, value)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} cannot be null")
    return _coerce_to(key, value, target)


def _optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; any other type -> ``(type, False)``."""
    args = get_args(hint)
    if type(None) not in args:
        return hint, False
    return next(a for a in args if a is not type(None)), True


def _is_text(target: Any) -> bool:
    return target is str or get_origin(target) is Literal


def _parse(key: str, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{key}: cannot parse '{text}'") from None


def _coerce_to(key: str, value: Any, target: Any) -> Any:
    origin = get_origin(target)
    if origin is Literal:
        return _choice(key, value, get_args(target))
    if origin is dict:
        return _mapping(key, value, *get_args(target))
    if origin is list:
        return _list(key, value, get_args(target)[0])
    if dataclasses.is_dataclass(target):
        return _record(key, value, target)
    if target not in _SCALARS:
        raise ConfigError(f"{key}: unsupported type {target}")
    return _SCALARS[target](key, value)


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")
    return str(value)


def _mapping(key: str, value: Any, key_hint: Any, item: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} expects a mapping, got {value!r}")
    if get_origin(key_hint) is Literal:
        unknown = [k for k in value if k not in get_args(key_hint)]
        if unknown:
            choices = ", ".join(get_args(key_hint))
            raise ConfigError(f"{key}: unknown key {unknown[0]!r}; choose from {choices}")
    return {str(k): coerce(f"{key}.{k}", v, item) for k, v in value.items()}


def _list(key: str, value: Any, item: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key} expects a list, got {value!r}")
    return [coerce(f"{key}[{i}]", v, item) for i, v in enumerate(value)]


def _record(key: str, value: Any, cls: Any) -> Any:
    """A mapping as the dataclass ``cls`` (e.g. a stage); every field without a default is
    required."""
    if isinstance(value, cls):
        value = dataclasses.asdict(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} expects a mapping, got {value!r}")
    _check_record_keys(key, value, cls)
    hints = type_hints(cls)
    return cls(**{k: coerce(f"{key}.{k}", v, hints[k]) for k, v in value.items()})


def _check_record_keys(key: str, value: Mapping[str, Any], cls: Any) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ConfigError(f"{key}: unknown key {unknown[0]!r}; keys: {', '.join(names)}")
    missing = [f.name for f in dataclasses.fields(cls) if _required(f) and f.name not in value]
    if missing:
        raise ConfigError(f"{key} needs {missing[0]}")


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{key} expects true/false, got {value!r}")


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"{key} expects an integer, got {value!r}")


def _to_float(key: str, value: Any) -> float:
    """A number, or a string such as ``1e-3`` (which YAML 1.1 reads as a string)."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{key} expects a number, got {value!r}")


def _to_str(key: str, value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key} expects a string, got {value!r}")


_SCALARS: dict[Any, Callable[[str, Any], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
}
