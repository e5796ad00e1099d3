"""Run configuration: the schema (typed dataclasses), YAML presets and ``key=value`` overrides.

One :class:`RunConfig` drives the CLI and the Python API alike. This package imports nothing
from cvae but :mod:`cvae.errors`; resolving ``auto`` values and the checks that need the method,
term or dataset registries live beside :func:`cvae.methods.build_method`.

Layout: :mod:`~cvae.config.schema` (the dataclasses), :mod:`~cvae.config.values` (dotted keys
and coercion), :mod:`~cvae.config.checks` (per-field validation), :mod:`~cvae.config.migrate`
(old key names), :mod:`~cvae.config.files` (YAML and presets).
"""

from cvae.config.checks import schedule_spec, validate
from cvae.config.files import (
    changed_keys,
    from_dict,
    from_plain,
    load_preset,
    load_yaml,
    migrate,
    parse_overrides,
    preset_names,
    save_yaml,
)
from cvae.config.migrate import OLD_KEYS
from cvae.config.schema import (
    TERM_NAMES,
    Activation,
    BarlowConfig,
    DataConfig,
    InfoMaxConfig,
    InfoNCEConfig,
    KLConfig,
    LossConfig,
    MMDConfig,
    ModelConfig,
    NTXentConfig,
    ReconConfig,
    RunConfig,
    Stage,
    TermConfig,
    TermName,
    TermsConfig,
    TrainConfig,
    ValueRange,
)
from cvae.config.values import flatten, get_value, set_value

__all__ = [
    "OLD_KEYS",
    "TERM_NAMES",
    "Activation",
    "BarlowConfig",
    "DataConfig",
    "InfoMaxConfig",
    "InfoNCEConfig",
    "KLConfig",
    "LossConfig",
    "MMDConfig",
    "ModelConfig",
    "NTXentConfig",
    "ReconConfig",
    "RunConfig",
    "Stage",
    "TermConfig",
    "TermName",
    "TermsConfig",
    "TrainConfig",
    "ValueRange",
    "changed_keys",
    "from_dict",
    "flatten",
    "from_plain",
    "get_value",
    "load_preset",
    "load_yaml",
    "migrate",
    "parse_overrides",
    "preset_names",
    "save_yaml",
    "schedule_spec",
    "set_value",
    "validate",
]
