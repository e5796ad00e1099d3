"""Old config keys and their new names: run directories and ``--set`` keys written before the
per-term ``loss.terms`` sub-configs keep working (a key is renamed, its value kept)."""

from __future__ import annotations

from typing import Any

from cvae.errors import ConfigError

OLD_KEYS: dict[str, str] = {
    "loss.recon_weight": "loss.terms.recon.weight",
    "loss.beta": "loss.terms.kl.weight",
    "loss.contrastive_weight": "loss.terms.ntxent.weight",
    "loss.barlow_weight": "loss.terms.barlow.weight",
    "loss.infonce_weight": "loss.terms.infonce.weight",
    "loss.reconstruction": "loss.terms.recon.likelihood",
    "loss.reduction": "loss.terms.recon.reduction",
    "loss.log_scale": "loss.terms.recon.log_scale",
    "loss.learn_scale": "loss.terms.recon.learn_scale",
    "loss.recon_target": "loss.terms.recon.target",
    "loss.temperature": "loss.terms.ntxent.temperature",
    "loss.barlow_on": "loss.terms.barlow.features",
    "loss.barlow_norm": "loss.terms.barlow.norm",
    "loss.barlow_offdiag": "loss.terms.barlow.offdiag",
    "loss.infonce_temperature": "loss.terms.infonce.temperature",
    "loss.queue_size": "loss.terms.infonce.queue_size",
    "loss.momentum": "loss.terms.infonce.momentum",
    "loss.ema_every": "loss.terms.infonce.ema_every",
    "loss.negatives": "loss.terms.infonce.negatives",
    "loss.separate_query": "loss.terms.infonce.separate_query",
}
"""Old dotted key -> new dotted key."""

SAVED_WITHOUT: dict[str, Any] = {"data.test_fraction": 0.0}
"""Keys added since some runs were saved -> the value that reproduces such a run (a ``folder``
run then had no test split: its images were train and val only)."""


def rename_old_keys(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys with every old key renamed (order kept); an old key given together with its
    new name is refused."""
    for old, new in OLD_KEYS.items():
        if old in flat and new in flat:
            raise ConfigError(f"{old} is the old name of {new}; give only one of them")
    return {OLD_KEYS.get(key, key): value for key, value in flat.items()}


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"loss.terms.kl.weight": 1}`` -> ``{"loss": {"terms": {"kl": {"weight": 1}}}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
