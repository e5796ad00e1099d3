"""``cvae export RUN --out DIR``: a run's weights in a folder a model hub accepts.

The folder holds ``model.safetensors`` (the method's state dict, tensors only), the resolved
``config.yaml``, ``meta.json`` (image shape, epoch, cvae version, data provenance) and a model
card ``README.md`` with the YAML front matter of the Hugging Face Hub. ``cvae.load(DIR)`` rebuilds
the same model from it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from cvae import __version__
from cvae.api import EXPORT_WEIGHTS, Run, load, read_data_info
from cvae.config import flatten, save_yaml
from cvae.errors import CvaeError
from cvae.training.checkpoint import CHECKPOINTS

PUBLIC_DATASETS = frozenset(
    {"mnist", "fashion-mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn", "stl10",
     "celeba", "dsprites", "digits"}
)  # fmt: skip
"""Dataset names a model card lists under ``datasets`` (the others are the user's own data)."""


def export(run_dir: str | Path, out: str | Path, checkpoint: str = "last") -> Path:
    """Write the export folder ``out`` (new or empty) from ``run_dir``'s ``checkpoint``.

    Refused with a one-line :class:`CvaeError`, writing nothing: a non-empty ``out``, a run
    without that checkpoint, a checkpoint with non-finite weights.
    """
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CvaeError(f"{out}: exists and is not empty; export into a new or empty folder")
    if (run_dir / EXPORT_WEIGHTS).is_file():
        raise CvaeError(f"{run_dir}: already an export folder; export a run directory")
    if not (run_dir / CHECKPOINTS[checkpoint]).is_file() and run_dir.is_dir():
        hint = " (it is kept when the run has a validation split)" if checkpoint == "best" else ""
        raise CvaeError(f"{run_dir / CHECKPOINTS[checkpoint]}: checkpoint not found{hint}")
    run = load(run_dir, checkpoint=checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write(run, run_dir, checkpoint, tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write(run: Run, run_dir: Path, checkpoint: str, folder: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in run.method.state_dict().items()}
    save_file(state, str(folder / EXPORT_WEIGHTS), metadata={"format": "pt", "cvae": __version__})
    save_yaml(run.config, folder / "config.yaml")
    meta = {
        "cvae_version": __version__,
        "method": run.config.method,
        "image_shape": list(run.image_shape),
        "epoch": run.epoch,
        "checkpoint": checkpoint,
        "value_range": run.value_range,
        "data": read_data_info(run_dir),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    metrics = _metrics(run_dir)
    (folder / "README.md").write_text(model_card(run, meta, metrics, run_dir, checkpoint))


def _metrics(run_dir: Path) -> dict[str, Any]:
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def model_card(
    run: Run, meta: dict[str, Any], metrics: dict[str, Any], run_dir: Path, checkpoint: str
) -> str:
    """The model card: Hub front matter, then method, data, metrics with protocols, commands."""
    cfg, dataset = run.config, run.dataset_name
    front: dict[str, Any] = {
        "library_name": "cvae",
        "license": "mit",
        "tags": list(
            dict.fromkeys(
                ["cvae", "vae", "self-supervised-learning", "representation-learning", cfg.method]
            )
        ),
    }
    if dataset in PUBLIC_DATASETS:
        front["datasets"] = [dataset]
    flat = flatten(cfg.to_dict())
    weights = ", ".join(
        f"{key.split('.')[2]} {value:g}"
        for key, value in flat.items()
        if key.startswith("loss.terms.") and key.endswith(".weight") and value
    )
    data = meta["data"]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).strip(),
        "---",
        "",
        f"# {cfg.method} on {dataset}",
        "",
        f"A `{cfg.method}` variational autoencoder trained with cvae {meta['cvae_version']}; "
        "`cvae.load` rebuilds it from this folder.",
        "",
        "## Method",
        "",
        f"- method: `{cfg.method}` (preset: {cfg.preset or 'none'})",
        f"- network: `{cfg.model.arch}`{_from_module(cfg.model.module)}, "
        f"latent size {cfg.model.latent_dim}",
        f"- loss terms (weight): {weights or 'none'}",
        f"- training: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, "
        f"lr {cfg.train.lr:g}, seed {cfg.train.seed}",
        f"- weights: `{checkpoint}` checkpoint, after epoch {run.epoch}",
        "",
        "## Data",
        "",
        f"- dataset: `{dataset}`, images {'x'.join(map(str, run.image_shape))}, "
        f"value range {run.value_range}",
        *(
            f"- {key}: {_cell(data[key])}"
            for key in ("source", "sizes", "split_seed", "val_fraction", "sha256")
            if key in data
        ),
        "",
        "## Metrics",
        "",
        *_metric_lines(metrics, run.epoch, run_dir),
        "",
        "## Use",
        "",
        "```python",
        "import cvae",
        'run = cvae.load("path/to/this/folder")',
        "mu, logvar = run.encode(images)  # uint8 [N, C, H, W] or floats in the value range",
        "samples = run.to_unit(run.sample(16))",
        "```",
        "",
        "## How it was made",
        "",
        "```",
        f"cvae train --config config.yaml --out {run_dir}",
        *([f"cvae eval {run_dir}"] if metrics else []),
        f"cvae export {run_dir} --out EXPORT_DIR --checkpoint {checkpoint}",
        "```",
        "",
        "`config.yaml` is the run's resolved config: training with it repeats the run.",
        "",
    ]
    return "\n".join(lines)


def _from_module(module: str | None) -> str:
    """Where a user's architecture comes from: loading needs its module on the Python path."""
    return "" if module is None else f" from module `{module}` (importable: on PYTHONPATH)"


def _metric_lines(metrics: dict[str, Any], epoch: int, run_dir: Path) -> list[str]:
    table = metrics.get("metrics")
    if not isinstance(table, dict) or not table:
        return [f"Not evaluated (`cvae eval {run_dir}` writes metrics.json)."]
    lines = []
    evaluated = metrics.get("checkpoint_epoch")
    if evaluated != epoch:
        lines += [f"Computed on the checkpoint of epoch {evaluated}, not these weights.", ""]
    lines += ["| metric | value | protocol |", "|---|---|---|"]
    for name, m in table.items():
        value = m.get("value") if isinstance(m, dict) else None
        shown = "n/a" if not isinstance(value, (int, float)) else f"{value:.4g}"
        protocol = m.get("protocol", {}) if isinstance(m, dict) else {}
        lines.append(f"| {name} | {shown} | {_cell(protocol)} |")
    return lines


def _cell(value: Any) -> str:
    """A value on one Markdown table line (pipes escaped)."""
    if isinstance(value, dict):
        text = "; ".join(f"{k}: {v}" for k, v in value.items() if k != "name")
    else:
        text = str(value)
    return " ".join(text.split()).replace("|", "\\|")
