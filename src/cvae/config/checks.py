"""Per-field checks of a config: types and choices, numeric bounds, finiteness, schedule syntax.

Checks that need the method, term or dataset registries live beside them
(:func:`cvae.methods.check`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, get_args

from cvae.config.schema import Bound, RunConfig, bound_of
from cvae.config.values import flatten, set_value, type_hints
from cvae.errors import ConfigError

ScheduleKind = Literal["constant", "linear", "cyclical"]


def validate(cfg: RunConfig) -> RunConfig:
    """Raise :class:`ConfigError` (one line) on the first bad value; return ``cfg``.

    Every value is coerced again (so attributes assigned directly are type-checked too), every
    float must be finite and every bounded field inside its interval.
    """
    checked = RunConfig()
    for key, value in flatten(cfg.to_dict()).items():
        set_value(checked, key, value)
    for key, value, f, hint in _leaves(checked):
        _check_finite(key, value)
        _check_bound(key, value, f, type(None) in get_args(hint))
        _check_pattern(key, value, f)
    for term, text in checked.loss.schedules.items():
        schedule_spec(text, f"loss.schedules.{term}")
    _check_combinations(checked)
    return cfg


Leaf = tuple[str, Any, "dataclasses.Field[Any]", Any]


def _leaves(obj: Any, prefix: str = "") -> Iterator[Leaf]:
    """``(dotted key, value, field, type)`` of every leaf, descending into sections and records."""
    hints = type_hints(type(obj))
    for f in dataclasses.fields(obj):
        key, value = f"{prefix}{f.name}", getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{key}.")
        elif isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                yield from _leaves(item, f"{key}[{i}].")
        else:
            yield key, value, f, hints[f.name]


def _numbers(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, float):
        yield value


def _check_finite(key: str, value: Any) -> None:
    if not all(math.isfinite(x) for x in _numbers(value)):
        raise ConfigError(f"{key} must be a finite number, got {value}")


def _check_pattern(key: str, value: Any, f: dataclasses.Field[Any]) -> None:
    pattern = f.metadata.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise ConfigError(f"{key} '{value}' is not one of {f.metadata['choices']}")


def _check_combinations(cfg: RunConfig) -> None:
    """Checks between fields of the schema (registry-dependent ones: :mod:`cvae.methods`)."""
    tc = cfg.train
    if tc.optimizer == "sgd" and tc.nesterov and tc.momentum == 0:
        raise ConfigError("train.nesterov needs train.momentum > 0")


def _check_bound(key: str, value: Any, f: dataclasses.Field[Any], optional: bool) -> None:
    bound = bound_of(f)
    if bound is None or value is None:
        return
    if isinstance(value, list):
        _check_list_bound(key, value, bound, f.metadata)
    elif not bound.holds(value):
        null = " or null" if optional else ""
        raise ConfigError(f"{key} must be {bound}{null}, got {value}")


def _check_list_bound(
    key: str, value: list[float], bound: Bound, metadata: Mapping[str, Any]
) -> None:
    if metadata.get("nonempty") and not value:
        raise ConfigError(f"{key} must not be empty")
    length = metadata.get("length")
    if length is not None and len(value) != length:
        raise ConfigError(f"{key} must have {length} entries, got {value}")
    if not all(bound.holds(x) for x in value):
        raise ConfigError(f"each entry of {key} must be {bound}, got {value}")


_SCHEDULE_ARGS: dict[ScheduleKind, Callable[[tuple[float, ...]], bool]] = {
    "constant": lambda args: not args,
    "linear": lambda args: len(args) == 1 and args[0] > 0,  # epochs
    "cyclical": lambda args: len(args) == 2 and args[0] > 0 and 0 < args[1] <= 1,  # period, ratio
}


def schedule_spec(text: str, key: str = "schedule") -> tuple[ScheduleKind, tuple[float, ...]]:
    """``"linear:10"`` -> ``("linear", (10.0,))``, refusing anything but ``constant``,
    ``linear:EPOCHS`` (> 0) and ``cyclical:PERIOD:RATIO`` (period > 0, ratio in (0, 1])."""
    kind, *args = str(text).split(":")
    try:
        values = tuple(float(a) for a in args)
    except ValueError:
        raise ConfigError(f"{key} '{text}': arguments must be numbers") from None
    for name, valid in _SCHEDULE_ARGS.items():
        if kind == name and valid(values):
            return name, values
    raise ConfigError(
        f"{key} '{text}' is not one of constant, linear:EPOCHS, cyclical:PERIOD:RATIO"
    )
