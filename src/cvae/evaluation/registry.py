"""The metrics of ``cvae eval`` as a registry: each :class:`MetricSpec` names the metrics one
computation produces, what they need, whether the :class:`EvalConfig` turns them on, and a
``compute`` over the shared :class:`EvalContext`. Results are :class:`Metric` records.

To add a metric: write its function (returning ``{"value", "protocol", ...}``, the protocol
complete), then one :class:`MetricSpec` in :data:`METRICS`. :func:`measure` checks, times and
records it; ``evaluate()`` writes it to ``metrics.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import torch

from cvae.api import Run
from cvae.data import DataSplits, ImageDataset
from cvae.evaluation.collapse import active_units, marginal_kl, mean_kl, mutual_information
from cvae.evaluation.fid import fid_metrics
from cvae.evaluation.knn import (
    clip_k,
    cosine_neighbours,
    knn_uniform_euclidean,
    knn_weighted_cosine,
)
from cvae.evaluation.likelihood import Likelihood, iwae_nll, recon_nll, run_likelihood
from cvae.evaluation.linear import linear_adam, linear_sgd
from cvae.evaluation.options import EvalConfig
from cvae.evaluation.probes import (
    logistic_regression_paper,
    logistic_regression_standard,
    perceptron_probe,
)
from cvae.evaluation.views import view_cosine_similarity
from cvae.methods import METHODS
from cvae.methods.resolve import trains_decoder
from cvae.methods.specs import ProbeFeature

FeatureName = ProbeFeature
Need = Literal["labels", "posterior", "decoder", "likelihood", "views"]
Better = Literal["higher", "lower"]
VIEW_IMAGES = 8  # images of the view-similarity matrix (AAVAE Fig. 5)
KNN_SMALL_K = 20  # the second weighted kNN (knn_weighted_cosine_k20), beside --knn-k

FEATURES: dict[FeatureName, str] = {
    "mu": "mu (posterior mean, eval mode)",
    "h": "h (encoder representation before the projection to mu/logvar, eval mode)",
}


def probe_feature(method: str) -> FeatureName:
    """The representation ``method``'s probes read by default (``MethodSpec.probe_feature``)."""
    return METHODS[method].probe_feature


def linear_sgd_default(method: str) -> bool:
    """Whether the AAVAE linear evaluation runs by default (``MethodSpec.linear_sgd``)."""
    return METHODS[method].linear_sgd


@dataclass
class Metric:
    """One entry of ``metrics.json``: the number, the protocol that produced it, the wall-clock
    ``seconds`` of its computation, its ``unit``, why it is missing (``unavailable``, with
    ``value`` None) and ``extra`` numbers of the same computation (e.g. ``per_dim``)."""

    value: float | int | None
    protocol: dict[str, Any]
    seconds: float | None = None
    unit: str | None = None
    unavailable: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Metric:
        """The record of a metric function's ``{"value", "protocol", ...}`` (other keys: extra)."""
        own = ("value", "protocol", "seconds", "unit", "unavailable")
        extra = {k: v for k, v in raw.items() if k not in own}
        return cls(
            raw["value"],
            dict(raw["protocol"]),
            raw.get("seconds"),
            raw.get("unit"),
            raw.get("unavailable"),
            extra,
        )

    @classmethod
    def missing(cls, name: str, reason: str) -> Metric:
        return cls(None, {"name": name}, unavailable=reason)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, **self.extra}
        if self.unit is not None:
            out["unit"] = self.unit
        if self.unavailable is not None:
            out["unavailable"] = self.unavailable
        out["protocol"] = self.protocol
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out


@dataclass
class Notes:
    """The ``notes`` of ``metrics.json``: free ``lines``, then one line per reason that metrics
    were skipped or are unavailable, naming them all."""

    lines: list[str] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, names: Sequence[str], reason: str) -> None:
        self.skipped.setdefault(reason, []).extend(names)

    def to_json(self) -> list[str]:
        return [*self.lines, *(f"{', '.join(n)}: {why}" for why, n in self.skipped.items())]


@dataclass
class EvalContext:
    """What the metrics and figures share: the run, the splits, the options, the probe feature,
    the notes and the metrics computed so far; the encodings are computed once, when first
    read."""

    run: Run
    config: EvalConfig
    data: DataSplits
    feature: FeatureName
    notes: Notes
    results: dict[str, Metric] = field(default_factory=dict)

    @property
    def eval_name(self) -> str:
        """The evaluation split: val when asked for (``split``) or when there is no test split,
        else test."""
        return "test" if self.config.split == "test" and self.data.test is not None else "val"

    @property
    def eval_split(self) -> ImageDataset:
        split = self.data.test if self.eval_name == "test" else self.data.val
        assert split is not None  # evaluate() refuses a val split that is absent
        return split

    @property
    def seed(self) -> int:
        return self.config.seed

    def generator(self) -> torch.Generator:
        """A CPU generator seeded with the evaluation seed."""
        return torch.Generator().manual_seed(self.seed)

    def encode(self) -> None:
        """Compute the encodings the metrics share: the posterior of the evaluation split, and
        the probe features of both splits when they are labelled."""
        _ = self.posterior
        if self.unmet(("labels",)) is None:
            _ = self.train_features, self.eval_features

    @cached_property
    def posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of the evaluation split, ``[N, d]`` on the CPU."""
        mu, logvar = self.run.encode(self.eval_split.tensor)
        return mu.cpu(), logvar.cpu()

    @cached_property
    def train_features(self) -> torch.Tensor:
        return self.run.features(self.data.train.tensor, self.feature).cpu()

    @cached_property
    def eval_features(self) -> torch.Tensor:
        if self.feature == "mu":
            return self.posterior[0]
        return self.run.features(self.eval_split.tensor, self.feature).cpu()

    @cached_property
    def neighbours(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cosine neighbours of the evaluation features in the train bank, for the largest
        ``k`` of the weighted kNN probes (each reads its first ``k`` columns)."""
        labels = self.data.train.labels
        assert labels is not None  # the "labels" need
        k = clip_k(max(self.config.knn_k, KNN_SMALL_K), labels.long())[0]
        return cosine_neighbours(self.train_features.float(), self.eval_features.float(), k)

    @cached_property
    def inputs(self) -> torch.Tensor:
        """The evaluation images in the model's value range."""
        return self.run.to_input(self.eval_split.tensor)

    @cached_property
    def likelihood(self) -> Likelihood | str:
        """The decoder likelihood the run's loss corresponds to, or why there is none."""
        learned = getattr(dict(self.run.method.terms).get("recon"), "log_scale", None)
        dim = int(self.inputs[0].numel())
        return run_likelihood(self.run.config, dim, None if learned is None else float(learned))

    @cached_property
    def views(self) -> dict[str, Any]:
        """:func:`view_cosine_similarity` of the first images of the evaluation split."""
        images = self.eval_split.tensor
        return view_cosine_similarity(self.run, images, seed=self.seed, feature=self.feature)

    def split(self, kind: Literal["fitted", "bank", "inside"]) -> str:
        """The protocol's ``split`` of a probe: fit on train and score on the evaluation split,
        a train bank queried by it, or an 80/20 split inside it."""
        return {
            "fitted": f"fit on train split, score on {self.eval_name} split",
            "bank": f"bank: train split; queries: {self.eval_name} split",
            "inside": f"80/20 inside the {self.eval_name} split",
        }[kind]

    def unmet(self, needs: Sequence[Need]) -> str | None:
        """Why the first of ``needs`` this evaluation cannot meet is unmet, or None."""
        return next((r for r in (NEEDS[n](self) for n in needs) if r is not None), None)


NEEDS: dict[Need, Callable[[EvalContext], str | None]] = {
    "labels": lambda c: (
        None
        if c.data.train.labels is not None and c.eval_split.labels is not None
        else "unlabeled dataset"
    ),
    "posterior": lambda c: (
        "deterministic autoencoder (z = mu): no posterior q(z|x)"
        if c.run.model.deterministic
        else None
    ),
    "decoder": lambda c: (
        None
        if trains_decoder(c.run.config)
        else "decoder-free training (no active term trains the decoder): it is untrained"
    ),
    "likelihood": lambda c: c.likelihood if isinstance(c.likelihood, str) else None,
    "views": lambda c: (
        f"fewer than {VIEW_IMAGES} images in the {c.eval_name} split"
        if len(c.eval_split) < VIEW_IMAGES
        else None
    ),
}
"""What a metric may need, and the reason recorded when this evaluation lacks it."""

Computed = Metric | dict[str, Metric]


def _on(_: EvalContext) -> str | None:
    return None


@dataclass(frozen=True)
class MetricSpec:
    """The metrics ``names`` that one ``compute`` produces (a :class:`Metric`, or one per name
    for a group), what it ``needs``, and ``off``: why the options turn it off, or None.
    ``better`` says which values are better (None: neither, e.g. a trade-off) and ``unit`` what
    a value counts, for reports (``accuracy``: a fraction shown in %)."""

    names: tuple[str, ...]
    compute: Callable[[EvalContext], Computed]
    needs: tuple[Need, ...] = ()
    off: Callable[[EvalContext], str | None] = _on
    better: Better | None = None
    unit: str = ""


def metric_spec(name: str) -> MetricSpec | None:
    """The :class:`MetricSpec` in :data:`METRICS` that produces metric ``name``, or None."""
    return next((s for s in METRICS if name in s.names), None)


def measure(spec: MetricSpec, ctx: EvalContext) -> dict[str, Metric]:
    """The metrics of ``spec``: none when the options turn it off, unavailable ones when a need
    is unmet, else computed and timed; reasons go to ``ctx.notes``, results to ``ctx.results``."""
    off = spec.off(ctx)
    if off is not None:
        ctx.notes.skip(spec.names, f"skipped ({off})")
        return {}
    reason = ctx.unmet(spec.needs)
    if reason is not None:
        ctx.notes.skip(spec.names, reason)
        return {name: Metric.missing(name, reason) for name in spec.names}
    t0 = time.perf_counter()
    out = spec.compute(ctx)
    seconds = round(time.perf_counter() - t0, 3)
    metrics = {spec.names[0]: out} if isinstance(out, Metric) else out
    for name, metric in metrics.items():
        metric.seconds = seconds
        if metric.unavailable is not None:
            ctx.notes.skip((name,), metric.unavailable)
    ctx.results.update(metrics)
    return metrics


# --------------------------------------------------------------------------- compute functions


def _mutual_information(whole: bool) -> Callable[[EvalContext], Computed]:
    """MI with the whole set, or batches of ``--mi-batch``, as aggregate posterior."""
    name = "mutual_information_" + ("full" if whole else "batch")

    def compute(c: EvalContext) -> Computed:
        mu, logvar = c.posterior
        batch = None if whole else c.config.mi_batch
        metric = Metric.from_dict(mutual_information(mu, logvar, batch_size=batch, seed=c.seed))
        metric.protocol["name"] = name
        return metric

    return compute


def _marginal_kl(c: EvalContext) -> Computed:
    kl, mi_b, mi_f = (
        c.results[n].to_json()
        for n in ("kl", "mutual_information_batch", "mutual_information_full")
    )
    return Metric.from_dict(marginal_kl(kl, mi_b, mi_f))


def _recon_nll(c: EvalContext) -> Computed:
    bernoulli = isinstance(c.likelihood, Likelihood) and c.likelihood.kind == "bernoulli"
    loss = "bce" if bernoulli else "mse"
    return Metric.from_dict(recon_nll(c.run.model, c.inputs, loss=loss, seed=c.seed))


def _nll_iwae(c: EvalContext) -> Computed:
    x, n = c.inputs, c.config.iwae_n
    index = torch.arange(len(x))
    if 0 < n < len(x):
        index = torch.randperm(len(x), generator=c.generator())[:n].sort().values
    assert isinstance(c.likelihood, Likelihood)  # the "likelihood" need
    raw = iwae_nll(c.run.model, x[index], c.likelihood, k=c.config.iwae_k, seed=c.seed)
    every = len(index) == len(x)
    raw["protocol"]["subset"] = "all images" if every else f"random subset (seed {c.seed})"
    return Metric.from_dict(raw)


def _labels(c: EvalContext) -> tuple[torch.Tensor, torch.Tensor]:
    train, evals = c.data.train.labels, c.eval_split.labels
    assert train is not None and evals is not None  # the "labels" need
    return train, evals


def _logreg_paper(c: EvalContext) -> Computed:
    x, y = c.eval_features.numpy(), _labels(c)[1].numpy()
    split = c.split("inside")
    return Metric.from_dict(logistic_regression_paper(x, y, feature_name=c.feature, split=split))


def _fitted(
    probe: Callable[..., dict[str, Any]],
) -> Callable[[EvalContext], Computed]:
    """An sklearn probe fit on the train features and scored on the evaluation features."""

    def compute(c: EvalContext) -> Computed:
        (tr_y, ev_y), split = _labels(c), c.split("fitted")
        args = (c.train_features.numpy(), tr_y.numpy(), c.eval_features.numpy(), ev_y.numpy())
        return Metric.from_dict(probe(*args, feature_name=c.feature, split=split))

    return compute


def _on_features(
    probe: Callable[..., dict[str, Any]],
    split: Literal["fitted", "bank"],
    c: EvalContext,
    **options: Any,
) -> Computed:
    """A torch probe fit (or banked) on the train features, scored on the evaluation features."""
    tr_y, ev_y = _labels(c)
    raw = probe(c.train_features, tr_y, c.eval_features, ev_y, **options,
                feature_name=c.feature, split=c.split(split))  # fmt: skip
    return Metric.from_dict(raw)


def _knn(name: str, k: Callable[[EvalConfig], int]) -> Callable[[EvalContext], Computed]:
    """The kNN probe ``name`` (weighted cosine, else uniform Euclidean) with ``k(config)``
    neighbours; a ``k`` clipped to the smallest class count is stated in the notes."""
    weighted = name.startswith("knn_weighted_cosine")

    def compute(c: EvalContext) -> Computed:
        if weighted:
            options = {"temperature": c.config.knn_temperature, "neighbours": c.neighbours}
            metric = _on_features(knn_weighted_cosine, "bank", c, k=k(c.config), **options)
        else:
            metric = _on_features(knn_uniform_euclidean, "bank", c, k=k(c.config))
        assert isinstance(metric, Metric)
        p = metric.protocol
        p["name"] = name
        if p["clipped_reason"] is not None:
            c.notes.lines.append(f"{name}: {p['clipped_reason']}: k={p['k_used']} used")
        return metric

    return compute


def _linear_adam(c: EvalContext) -> Computed:
    return _on_features(linear_adam, "fitted", c, epochs=c.config.linear_epochs, seed=c.seed)


def _linear_sgd(c: EvalContext) -> Computed:
    tr_y, ev_y = _labels(c)
    raw = linear_sgd(
        lambda images: c.run.features(images, c.feature),
        c.data.train.tensor,
        tr_y,
        c.eval_features,
        ev_y,
        epochs=c.config.linear_sgd_epochs,
        seed=c.seed,
        feature_name=c.feature,
        split=c.split("fitted"),
    )
    return Metric.from_dict(raw)


def _linear_sgd_off(c: EvalContext) -> str | None:
    wanted = c.config.run_linear_sgd
    if wanted is None:
        method = c.run.config.method
        on = linear_sgd_default(method)
        return None if on else f"the AAVAE protocol, off by default for {method}: --linear-sgd"
    return None if wanted else "--no-linear-sgd"


def _fid(c: EvalContext) -> Computed:
    cfg, real = c.config, c.eval_split
    raw = fid_metrics(
        c.run,
        real,
        c.data.train,
        n=min(cfg.fid_n, len(real)),
        seed=c.seed,
        split_name=c.eval_name,
        inception_weights=cfg.fid_weights,
        inception_dims=cfg.fid_dims,
    )
    return {name: Metric.from_dict(metric) for name, metric in raw.items()}


def _views(c: EvalContext) -> Computed:
    names = ("view_cosine_within", "view_cosine_between")
    return {name: Metric.from_dict(c.views[name]) for name in names}


_ACCURACY: dict[str, Any] = {"better": "higher", "unit": "accuracy"}
"""The ``better`` and ``unit`` of a top-1 accuracy."""


def _off_when(flag: str, value: Callable[[EvalConfig], int]) -> Callable[[EvalContext], str | None]:
    """Off when the option read by ``value`` is 0 (``flag`` names it)."""
    return lambda c: f"{flag} 0" if value(c.config) <= 0 else None


METRICS: tuple[MetricSpec, ...] = (
    # posterior collapse and likelihood on the evaluation split
    # (KL: neither direction is better, a trade-off between collapse and rate)
    MetricSpec(("kl",), lambda c: Metric.from_dict(mean_kl(*c.posterior)), unit="nats"),
    MetricSpec(
        ("mutual_information_batch",),
        _mutual_information(False),
        ("posterior",),
        better="higher",
        unit="nats",
    ),
    MetricSpec(
        ("mutual_information_full",),
        _mutual_information(True),
        ("posterior",),
        better="higher",
        unit="nats",
    ),
    MetricSpec(("marginal_kl",), _marginal_kl, ("posterior",), better="lower", unit="nats"),
    MetricSpec(
        ("active_units",),
        lambda c: Metric.from_dict(active_units(c.posterior[0])),
        better="higher",
        unit="units",
    ),
    MetricSpec(("recon_nll",), _recon_nll, ("decoder",), better="lower", unit="nats per image"),
    MetricSpec(
        ("nll_iwae",),
        _nll_iwae,
        ("posterior", "decoder", "likelihood"),
        _off_when("--iwae-k", lambda o: o.iwae_k),
        better="lower",
        unit="nats per image",
    ),
    # probes: frozen features of the train split -> labels of the evaluation split
    MetricSpec(("logreg_paper",), _logreg_paper, ("labels",), **_ACCURACY),
    MetricSpec(
        ("logreg_standard",), _fitted(logistic_regression_standard), ("labels",), **_ACCURACY
    ),
    MetricSpec(("perceptron_probe",), _fitted(perceptron_probe), ("labels",), **_ACCURACY),
    MetricSpec(
        ("knn_weighted_cosine",),
        _knn("knn_weighted_cosine", lambda o: o.knn_k),
        ("labels",),
        **_ACCURACY,
    ),
    MetricSpec(
        ("knn_weighted_cosine_k20",),
        _knn("knn_weighted_cosine_k20", lambda _: KNN_SMALL_K),
        ("labels",),
        **_ACCURACY,
    ),
    MetricSpec(
        ("knn_uniform_euclidean",),
        _knn("knn_uniform_euclidean", lambda o: o.knn_k),
        ("labels",),
        **_ACCURACY,
    ),
    MetricSpec(
        ("linear_adam",),
        _linear_adam,
        ("labels",),
        _off_when("--linear-epochs", lambda o: o.linear_epochs),
        **_ACCURACY,
    ),
    MetricSpec(("linear_sgd",), _linear_sgd, ("labels",), _linear_sgd_off, **_ACCURACY),
    # generation and invariance (view similarities: a collapsed encoder has both at 1)
    MetricSpec(
        ("fid_domain", "fid_inception"),
        _fid,
        ("decoder",),
        _off_when("--fid-n", lambda o: o.fid_n),
        better="lower",
    ),
    MetricSpec(("view_cosine_within", "view_cosine_between"), _views, ("views",), unit="cosine"),
)
"""Every metric of ``cvae eval``, in the order computed and written."""
