"""The papers, one module each (grid of runs, budgets, published numbers, notes), and the lookup
of the published number a run should be compared with.

To add a paper: a module ``<name>.py`` here (``-`` as ``_``) defining ``PAPER``
(:class:`cvae.experiments.paper.Paper`), and its entry in :data:`PAPERS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cvae.config import RunConfig
from cvae.errors import ConfigError
from cvae.experiments.claims import Claim
from cvae.experiments.paper import Paper, PaperNumber
from cvae.experiments.papers import aavae_paper, btvae_paper, crvae_paper, cvae_paper

PAPERS: dict[str, Paper] = {
    p.name: p for p in (cvae_paper.PAPER, btvae_paper.PAPER, crvae_paper.PAPER, aavae_paper.PAPER)
}
CLAIMS: dict[str, tuple[Claim, ...]] = {
    p.PAPER.name: p.CLAIMS for p in (cvae_paper, btvae_paper, crvae_paper, aavae_paper)
}
"""Each paper's claim checks (:mod:`cvae.experiments.claims`), run by ``--budget cpu``."""
PAPER_NUMBERS: tuple[PaperNumber, ...] = tuple(n for p in PAPERS.values() for n in p.numbers)
PRESET_SUFFIXES = ("", "-paper", "-code")
"""A preset ``P``, ``P-paper`` or ``P-code`` matches an entry listing ``P``."""


def get_paper(name: str) -> Paper:
    """The paper called ``name``; :class:`ConfigError` naming the choices otherwise."""
    if name not in PAPERS:
        raise ConfigError(f"unknown paper {name!r}; choose from {', '.join(PAPERS)}")
    return PAPERS[name]


def _config_dict(config: RunConfig | Mapping[str, Any]) -> Mapping[str, Any]:
    return config.to_dict() if isinstance(config, RunConfig) else config


def _get(config: Mapping[str, Any], key: str) -> Any:
    obj: Any = config
    for part in key.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    return bool(a == b)


def preset_matches(preset: str | None, entry: PaperNumber) -> bool:
    """Whether ``preset`` is one of the entry's presets, possibly with a -paper/-code suffix."""
    return preset is not None and preset in {p + s for p in entry.presets for s in PRESET_SUFFIXES}


def candidates(config: RunConfig | Mapping[str, Any], metric: str) -> list[PaperNumber]:
    """Entries for ``metric`` whose presets match the run's preset (conditions not checked)."""
    preset = _get(_config_dict(config), "preset")
    return [e for e in PAPER_NUMBERS if e.metric == metric and preset_matches(preset, e)]


def condition_mismatches(config: RunConfig | Mapping[str, Any], entry: PaperNumber) -> list[str]:
    """``["loss.terms.kl.weight=1e-05 (paper 0.001)", ...]``: each condition the run does not
    meet."""
    cfg = _config_dict(config)
    wanted = {"data.dataset": entry.dataset, **entry.conditions}
    return [
        f"{key}={_get(cfg, key)!r} (paper {value!r})"
        for key, value in wanted.items()
        if not _same(_get(cfg, key), value)
    ]


def paper_number(config: RunConfig | Mapping[str, Any], metric: str) -> PaperNumber | None:
    """The published number a run with this config should reproduce for ``metric``, or None.

    ``config`` is a :class:`RunConfig` or its dict (``config.yaml``). A run matches when its
    preset is one the entry names (plus ``-paper``/``-code``) and every condition (dataset,
    latent dim, beta, lambda, ...) holds; e.g. ``cvae-mnist-paper`` with
    ``loss.terms.kl.weight=1e-5`` matches CVAE Table 2's mid-beta FID but no Table 1 entry.
    """
    for entry in candidates(config, metric):
        if not condition_mismatches(config, entry):
            return entry
    return None
