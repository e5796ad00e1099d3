"""The run configuration's schema: typed dataclasses, ``Literal`` choices and numeric bounds.

A field's type is its check: ``Literal`` choices are validated when a value is set, and a
:func:`bounded` field's interval by :func:`cvae.config.validate` (every float must also be
finite). Every discrepancy between a paper and its code is a field here, so a preset
can select either behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

_T = TypeVar("_T")

TermName = Literal["recon", "kl", "ntxent", "barlow", "infonce", "mmd", "infomax"]
"""The objective terms; the keys of ``loss.terms``, ``loss.schedules`` and a stage's weights."""
TERM_NAMES: tuple[TermName, ...] = get_args(TermName)

Activation = Literal["sigmoid", "tanh", "identity"]
ValueRange = Literal["01", "pm1"]
ReconTarget = Literal["view", "clean"]
Likelihood = Literal["mse", "bce", "gaussian"]
Reduction = Literal["mean", "sum"]
ViewsRegularised = Literal["first", "all"]
BarlowFeatures = Literal["mu+logvar", "z"]
BarlowNorm = Literal["original", "reference"]
EmaEvery = Literal["step", "epoch"]
Negatives = Literal["queue", "in_batch"]
NTXentFeatures = Literal["z", "mu"]
MMDKernel = Literal["rbf", "imq"]
MMDEstimator = Literal["biased", "unbiased"]
MIDivergence = Literal["kl", "dv", "js"]
Optimizer = Literal["adam", "sgd"]
Scheduler = Literal["none", "exponential", "plateau", "warmup"]
Precision = Literal["fp32", "bf16"]
Logger = Literal["mlflow", "wandb"]
"""Experiment trackers beside metrics.csv and TensorBoard (:data:`cvae.tracking.BACKENDS`)."""


@dataclass(frozen=True)
class Bound:
    """An interval a number (or each number of a list) must lie in; ``text`` names it in
    messages when the default (``> 0``, ``in [0, 1)``) does not read well."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    text: str | None = None

    def holds(self, x: float) -> bool:
        above = self.lo is None or (x > self.lo if self.lo_open else x >= self.lo)
        below = self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)
        return above and below

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        if self.hi is None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        return f"in {'(' if self.lo_open else '['}{lo}, {self.hi:g}{')' if self.hi_open else ']'}"


POSITIVE = Bound(0, lo_open=True)
NON_NEGATIVE = Bound(0)
AT_LEAST_ONE = Bound(1)
UNIT = Bound(0, 1, hi_open=True)
"""[0, 1)"""
SEED = Bound(0, 2**32, hi_open=True, text="in [0, 2**32)")
"""Per-epoch generators derive larger seeds from it that torch must accept."""
DEVICE = r"auto|cpu|mps|cuda(:\d+)?"


def bounded(default: _T, bound: Bound) -> _T:
    """A field whose value (each value, for a list) must lie in ``bound`` (None passes)."""
    return field(default=default, metadata={"bound": bound})


def bounded_list(factory: Callable[[], _T], bound: Bound) -> _T:
    return field(default_factory=factory, metadata={"bound": bound})


def matching(default: str, pattern: str, choices: str) -> str:
    """A string field that must match the regular expression ``pattern`` (``choices`` names the
    accepted values in messages)."""
    return field(default=default, metadata={"pattern": pattern, "choices": choices})


def bound_of(f: dataclasses.Field[Any]) -> Bound | None:
    bound = f.metadata.get("bound")
    return bound if isinstance(bound, Bound) else None


@dataclass(slots=True)
class DataConfig:
    dataset: str = "digits"
    """A name in the dataset registry, ``cvae.data.DATASETS`` (see docs/datasets.md)."""
    data_dir: str | None = None
    """Folder holding the files (or a data root holding one folder per dataset)."""
    download: bool = False
    """Download missing files (checksum-verified) when ``data_dir`` is not given."""
    image_size: int | None = bounded(None, POSITIVE)
    """Resize images of a ``folder`` dataset to this square size."""
    synthetic_shape: list[int] = field(
        default_factory=lambda: [1, 28, 28], metadata={"bound": POSITIVE, "length": 3}
    )
    """(C, H, W) of the ``synthetic`` dataset's images."""
    synthetic_size: int = bounded(2048, AT_LEAST_ONE)
    val_fraction: float = bounded(0.1, UNIT)
    """Seeded part of the train set that becomes ``val`` when the dataset has no val split."""
    test_fraction: float = bounded(0.1, UNIT)
    """Seeded held-out part that becomes ``test`` when the dataset has no test split (``folder``
    without a ``test/`` folder)."""
    split_seed: int = bounded(0, SEED)
    memmap: bool | None = None
    """Train from a memory-mapped uint8 cache instead of RAM; null (auto): for a ``folder``
    dataset of more than 2 GiB of uint8 images (see docs/datasets.md)."""
    cache_dir: str | None = None
    """Where decoded caches go (null: ``$CVAE_DATA`` or ``~/.cache/cvae/data``)."""
    value_range: Literal["auto", ValueRange] = "auto"
    """01 (ToTensor) | pm1 (Normalize 0.5/0.5) | auto (pm1 for 3 channels, else 01)."""
    channels: int | None = None
    """Replicate 1-channel images to 3 (``3``), e.g. MNIST through the BTVAE's RGB network."""
    augment: str = "auto"
    """Augmentation preset for the training views; auto: the method's default, else none for
    one-view methods and the CVAE paper's MNIST (1 channel) / CIFAR (3 channels) views."""


@dataclass(slots=True)
class ModelConfig:
    arch: str = "conv"
    """conv (CVAE paper) | pv (PyTorch-VAE, BTVAE) | crvae-medium | resnet18 | resnet50 (AAVAE),
    or a name a user's module registers (docs/networks.md)."""
    module: str | None = None
    """An importable module (dotted name, on sys.path) imported before ``arch`` is looked up, so
    that it can register its own architecture; importing it runs its code (docs/networks.md)."""
    latent_dim: int = bounded(10, POSITIVE)
    channels: list[int] | None = field(default=None, metadata={"bound": POSITIVE, "nonempty": True})
    """conv: output channels of each stride-2 conv (k4, p1), mirrored by the decoder (null:
    8, 16, 32, the CVAE paper's MNIST net); pv: hidden widths (null: the reference's 32..512);
    ignored by the other architectures."""
    batchnorm: bool = False
    output_activation: Literal["auto", Activation] = "auto"
    """sigmoid | tanh | identity | auto (sigmoid for value_range 01, tanh for pm1)."""
    projection: list[int] = bounded_list(lambda: [8, 5], POSITIVE)
    """Projection-head layer sizes after the latent (paper MNIST 10->8->5)."""
    projection_final_relu: bool = False
    """ReLU after the last head layer, as in the CVAE reference code."""
    deterministic: bool | None = None
    """z = mu (autoencoder baselines AE/AAAE); null: the method's default."""


# --------------------------------------------------------------------------- loss terms


@dataclass(slots=True)
class TermConfig:
    """What every term has: its weight. Null takes the method's default (a term the method does
    not name is off); 0 switches the term off (it is not computed); > 0 adds it to any method."""

    weight: float | None = bounded(None, NON_NEGATIVE)


@dataclass(slots=True)
class ReconConfig(TermConfig):
    """alpha * reconstruction NLL of the decoded latent sample."""

    likelihood: Likelihood = "mse"
    """mse | bce | gaussian (negative log-likelihood with scale exp(log_scale))."""
    reduction: Reduction = "mean"
    """mean: average over batch and pixels (the CVAE code's F.mse_loss); sum: sum over pixels,
    mean over batch (per-image SSE / NLL)."""
    log_scale: float = 0.0
    """Gaussian log standard deviation (initial value if learned)."""
    learn_scale: bool = False
    target: Literal["auto", ReconTarget] = "auto"
    """view: reconstruct the (augmented) input view (CVAE, CR-VAE code); clean: the clean image
    (AAVAE); auto: the method's default."""


@dataclass(slots=True)
class KLConfig(TermConfig):
    """beta * KL(q(z|x) || N(0, I))."""


@dataclass(slots=True)
class NTXentConfig(TermConfig):
    """lambda * NT-Xent between projections of two views' latent samples (CVAE)."""

    temperature: float = bounded(0.5, POSITIVE)
    features: Literal["auto", NTXentFeatures] = "auto"
    """auto: the method's default; z: the projection head on each view's latent sample (CVAE);
    mu: the posterior mean itself, no extra head (SimCLR through an encoder whose mu layer is the
    projection g(h), as the AAVAE ResNet's Linear-BN-ReLU-Linear; no decoder pass)."""


@dataclass(slots=True)
class BarlowConfig(TermConfig):
    """lambda * Barlow Twins between encodings of x and of its reconstruction (BTVAE); the weight
    may be negative (the BTVAE ablation)."""

    weight: float | None = None
    features: BarlowFeatures = "mu+logvar"
    """What BT correlates. mu+logvar: BT(mu(x), mu(x_hat)) + BT(logvar(x), logvar(x_hat))
    (BTVAE code); z: BT between sampled latents (the paper's wording). (Not ``on``: YAML 1.1
    reads an unquoted ``on`` key as true.)"""
    norm: BarlowNorm = "original"
    """original: batch standardisation with biased variance + eps, C / N (Barlow Twins);
    reference: unbiased std, C / 64 (BTVAE code)."""
    offdiag: float = bounded(5e-3, NON_NEGATIVE)


@dataclass(slots=True)
class InfoNCEConfig(TermConfig):
    """gamma * MoCo InfoNCE with an EMA key encoder and a queue (CR-VAE)."""

    temperature: float = bounded(0.1, POSITIVE)
    queue_size: int = bounded(4096, AT_LEAST_ONE)
    momentum: float = bounded(0.99, UNIT)
    """EMA momentum of the key encoder per training step."""
    ema_every: EmaEvery = "step"
    """step (CR-VAE code) | epoch (the paper's Algorithm 1)."""
    epoch_momentum: float | None = bounded(None, UNIT)
    """With ``ema_every: epoch``, the momentum of the one update per epoch; null: derived,
    ``momentum ** steps`` over the epoch's training steps, so the key encoder keeps as much of its
    weights per epoch as with per-step updates (0.99 per update would keep 61% of its random
    initial weights after 50 epochs)."""
    negatives: Negatives = "queue"
    """queue (CR-VAE code, MoCo) | in_batch (the paper)."""
    separate_query: bool = True
    """CR-VAE code: the query is a second encoder pass on view 1 (new noise); false: reuse the
    VAE branch's latent sample."""


@dataclass(slots=True)
class MMDConfig(TermConfig):
    """InfoVAE (Zhao, Song, Ermon): MMD(q(z) || N(0, I)) on the batch's latent samples against as
    many prior samples. InfoVAE's objective is recon + (1 - alpha) KL + (alpha + lambda - 1) MMD,
    so the KL weight is ``1 - alpha`` and this weight ``alpha + lambda - 1``."""

    kernel: MMDKernel = "rbf"
    """rbf: Gaussian exp(-||a-b||^2 / c) (the InfoVAE paper); imq: c / (c + ||a-b||^2) (WAE)."""
    bandwidth: float = bounded(1.0, POSITIVE)
    """Kernel variance per latent dimension: c = 2 * latent_dim * bandwidth."""
    estimator: MMDEstimator = "biased"
    """biased: V-statistic, diagonals included (InfoVAE code); unbiased: U-statistic."""


@dataclass(slots=True)
class InfoMaxConfig(TermConfig):
    """InfoMax-VAE (Rezaabad & Vishwanath): minus a dual f-divergence lower bound on I(x; z)
    between the joint and the product of marginals (z shuffled within the batch), with a critic
    MLP T(x, z) on the flattened view and the latent sample, trained jointly with the VAE."""

    divergence: MIDivergence = "kl"
    """kl: f-divergence dual of KL, E_j T - E_m exp(T - 1) (the paper's KL form); dv:
    Donsker-Varadhan; js: the Jensen-Shannon form (Deep InfoMax)."""
    hidden: int = bounded(512, AT_LEAST_ONE)
    """Width of the critic's two hidden layers."""


@dataclass(slots=True)
class TermsConfig:
    """One sub-config per term, under the term's name."""

    recon: ReconConfig = field(default_factory=ReconConfig)
    kl: KLConfig = field(default_factory=KLConfig)
    ntxent: NTXentConfig = field(default_factory=NTXentConfig)
    barlow: BarlowConfig = field(default_factory=BarlowConfig)
    infonce: InfoNCEConfig = field(default_factory=InfoNCEConfig)
    mmd: MMDConfig = field(default_factory=MMDConfig)
    infomax: InfoMaxConfig = field(default_factory=InfoMaxConfig)

    def __getitem__(self, name: TermName) -> TermConfig:
        term: TermConfig = getattr(self, name)
        return term


@dataclass(slots=True)
class Stage:
    """``epochs`` consecutive epochs whose term weights replace the base weights."""

    epochs: int = field(metadata={"bound": AT_LEAST_ONE})
    weights: dict[TermName, float] = field(default_factory=dict)


@dataclass(slots=True)
class LossConfig:
    terms: TermsConfig = field(default_factory=TermsConfig)
    views_regularised: ViewsRegularised = "first"
    """first: reconstruction and KL on view 1 only (CVAE code); all: on every view."""
    schedules: dict[TermName, str] = field(default_factory=dict)
    """Per-term weight schedule over (fractional) epochs: ``constant``, ``linear:E`` (warm up
    from 0 over E epochs), ``cyclical:P:R`` (Fu et al. 2019: period P epochs, ramp over the
    first fraction R of each period)."""
    stages: list[Stage] = field(default_factory=list)
    """Consecutive stages, each ``{epochs: N, weights: {term: w}}`` (e.g. contrastive
    pretraining, then generative tuning); after the last stage the base weights apply."""


# --------------------------------------------------------------------------- training


@dataclass(slots=True)
class TrainConfig:
    epochs: int = bounded(10, POSITIVE)
    batch_size: int = bounded(128, POSITIVE)
    lr: float = bounded(1e-4, POSITIVE)
    weight_decay: float = bounded(0.0, NON_NEGATIVE)
    optimizer: Optimizer = "adam"
    momentum: float = bounded(0.9, NON_NEGATIVE)
    """SGD momentum."""
    nesterov: bool = False
    scheduler: Scheduler = "none"
    """none | exponential (lr_gamma per epoch) | plateau (ReduceLROnPlateau on the epoch's mean
    train loss) | warmup (linear warm-up from 0 over warmup_epochs, per step, then constant)."""
    lr_gamma: float = bounded(0.95, POSITIVE)
    plateau_factor: float = bounded(0.9, Bound(0, 1, lo_open=True, hi_open=True))
    plateau_patience: int = bounded(20, NON_NEGATIVE)
    min_lr: float = bounded(0.0, NON_NEGATIVE)
    warmup_epochs: float = bounded(10.0, NON_NEGATIVE)
    grad_clip: float | None = bounded(1.0, POSITIVE)
    """Max global gradient norm; null disables clipping."""
    drop_last: bool = False
    """Drop the last partial batch (Barlow Twins and CR-VAE code)."""
    epoch_fraction: float = bounded(1.0, Bound(0, 1, lo_open=True))
    """Fraction of the training set one epoch covers (CR-VAE code: 0.5)."""
    precision: Precision = "fp32"
    """fp32 | bf16 (autocast; losses stay fp32)."""
    compile: bool = False
    """``torch.compile`` the loss of full training batches (network passes and terms; the
    augmentation and random draws stay eager): one compile per process, then faster steps."""
    device: str = matching("auto", DEVICE, "auto, cpu, cuda, cuda:N, mps")
    """auto (cuda if available) | cpu | cuda | cuda:N (several processes: cuda:LOCAL_RANK)."""
    sync_batchnorm: bool = False
    """Several processes: BatchNorm statistics over the global batch (SyncBatchNorm, CUDA only);
    false: each process normalises over its own rows."""
    threads: int | None = bounded(None, AT_LEAST_ONE)
    """torch intra-op threads (CPU); null keeps torch's default."""
    seed: int = bounded(0, SEED)
    checkpoint_every: int = bounded(1, POSITIVE)
    """Epochs between checkpoints (the last epoch is always saved)."""
    checkpoint_every_steps: int = bounded(0, NON_NEGATIVE)
    """Also checkpoint mid-epoch every N steps (0: off); resume is exact either way."""
    tensorboard: bool = True
    loggers: list[Logger] = field(default_factory=list)
    """Experiment trackers besides metrics.csv and TensorBoard: mlflow, wandb (docs/tracking.md);
    each logs the config, the epochs' metrics, then ``cvae eval``'s metrics and figures."""
    progress: bool = True


@dataclass(slots=True)
class RunConfig:
    method: str = "vae"
    """vae | cvae | btvae | crvae | aavae | ae | aaae | infovae | infomaxvae | simclr
    (:data:`cvae.methods.METHODS`)."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str | None = None
    """Name of the preset the run started from (reports put the paper's numbers beside it)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
