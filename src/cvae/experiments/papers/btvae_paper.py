"""BTVAE (Xu, Wei, Yin): Table 1 FID over the Barlow Twins weight lambda
(lambda = 0 is the VAE row), Fig. 3 the 2-D latent space."""

from __future__ import annotations

from typing import Any

from cvae.evaluation.options import EvalConfig
from cvae.experiments.claims import Arm, Claim, ClaimBudget, ClaimMetric
from cvae.experiments.paper import QUICK_EVAL, Budget, Paper, PaperNumber, Row

CITATION = "BTVAE (Xu, Wei, Yin)"
LATENT_FIGURE = "latent_2d.png"
"""Fig. 3: the d=2 run's figure (in its ``figures/``), drawn by the reproduction."""

_DATASETS = ("mnist", "cifar10", "celeba")
# Table 1: lambda, then FID as printed on MNIST, CIFAR-10, CelebA (64-d Inception features)
_TABLE1 = (
    (0.0, "0.0187", "0.3465", "1.173"),
    (0.00025, "0.0482", "0.3478", "1.137"),
    (0.0025, "0.1984", "0.3194", "1.107"),
    (0.025, "0.03245", "0.2838", "1.028"),
    (0.25, "0.03286", "0.2235", "0.9283"),
    (-0.00025, "0.01939", "0.3394", "1.089"),
)


def _model(lam: float) -> str:
    return "VAE" if lam == 0 else f"BTVAE, lambda={lam:g}"


def _numbers() -> tuple[PaperNumber, ...]:
    return tuple(
        PaperNumber(
            value=float(text),
            paper=CITATION,
            table="Table 1",
            dataset=dataset,
            model=_model(lam),
            metric="fid_inception",
            text=text,
            presets=(f"btvae-{dataset}",),  # the VAE row: a BTVAE preset with lambda 0
            conditions={"model.latent_dim": 128, "loss.terms.barlow.weight": lam},
            unit="FID",
            tolerance=0.1 * float(text),
            protocol={"dims": 64},
        )
        for lam, *cells in _TABLE1
        for dataset, text in zip(_DATASETS, cells, strict=True)
    )


def _rows() -> tuple[Row, ...]:
    rows = [
        Row("Table 1", f"{ds} {_model(lam)}", f"btvae-{ds}", ("fid_inception", "fid_domain"),
            {"loss.terms.barlow.weight": lam},
            code_preset=f"btvae-{ds}-code" if lam == 2.5e-4 and ds != "celeba" else None)
        for ds in _DATASETS
        for lam, *_ in _TABLE1
    ]  # fmt: skip
    rows.append(
        Row("Fig. 3 (2-D latent)", "mnist BTVAE, d=2", "btvae-mnist", ("knn_weighted_cosine",),
            {"model.latent_dim": 2, "loss.terms.barlow.weight": 0.025}, max_seeds=1)
    )  # fmt: skip
    return tuple(rows)


PAPER = Paper(
    name="btvae-paper",
    title=f"{CITATION}: Table 1 FID over lambda, Fig. 3 2-D latent space",
    seeds=(1265, 1266, 1267),
    seeded=False,
    rows=_rows(),
    budgets={
        "quick": Budget(
            1,
            1,
            {"train.epoch_fraction": 0.1},
            code=False,
            datasets=("mnist",),
            eval_config=QUICK_EVAL,
        ),
        "medium": Budget(3, 1),
        "paper": Budget(None, 1),
    },  # fmt: skip
    numbers=_numbers(),
    notes=(
        "BTVAE's FID uses 64-d Inception features on 10k samples; the VAE row is "
        "btvae with lambda = 0.",
        f"Fig. 3: the d=2 run's figures/{LATENT_FIGURE} scatters its z-scored test mu.",
    ),
)


# --------------------------------------------------------------------------- claim checks

_LAMBDAS = (0.025, 0.25)


_OWN_ORDER = {
    "mnist": (
        "The paper's own MNIST column does not show the claim: its VAE has the lowest FID "
        "(0.0187; lambda 0.025: 0.03245, 0.25: 0.03286, best BTVAE -2.5e-4: 0.01939). The claim "
        "rests on CIFAR-10 (0.3465 -> 0.2235 at lambda 0.25) and CelebA (1.173 -> 0.9283). On "
        "MNIST this check asks whether our ordering agrees with the paper's.",
    ),
}
"""Where a paper's own table does not show its claim for a dataset, said in the report."""


def _claim(
    dataset: str,
    budget: ClaimBudget,
    tuned: Arm | None = None,
    name: str = "",
    extra_notes: tuple[str, ...] = (),
    **kw: Any,
) -> Claim:
    """VAE (lambda 0) against BTVAE at the paper's best lambdas (and a ``tuned`` arm), on FID of
    prior samples."""
    col = _DATASETS.index(dataset) + 1
    cells = {_model(row[0]): str(row[col]) for row in _TABLE1 if row[0] in (0.0, *_LAMBDAS)}
    arms = tuple(
        Arm(_model(lam), f"btvae-{dataset}", {"loss.terms.barlow.weight": lam})
        for lam in (0.0, *_LAMBDAS)
    ) + (() if tuned is None else (tuned,))
    return Claim(
        paper=PAPER.name,
        name=name or dataset,
        statement="the Barlow Twins term improves sample quality (lower FID of prior samples) "
        f"over the VAE for some lambda ({dataset}, Table 1)",
        arms=arms,
        contrasts=tuple((arm.label, "VAE") for arm in arms[1:]),
        metrics=(
            ClaimMetric(
                "fid_domain",
                higher=False,
                unit="FID",
                description="FID in the 128-d features of a small CNN trained on the "
                "dataset's train split (offline; no paper number in this space)",
            ),
            ClaimMetric(
                "fid_inception",
                higher=False,
                unit="FID",
                paper=cells,
                paper_values={k: float(v) for k, v in cells.items()},
                description="FID in the 64-d Inception pool features (the paper's); "
                "needs --fid-weights and the cvae[fid] extra, else no value",
            ),
        ),  # fmt: skip
        seeds=(0, 1, 2),
        budgets={"cpu": budget},
        notes=(
            *extra_notes,
            *_OWN_ORDER.get(dataset, ()),
            "Earlier measurement (tests/test_methods_more.py, slow tier; 5 seeds, 10 epochs, "
            "4,000 MNIST images): the kNN accuracy gain over the untrained encoder is -0.077 "
            "(se 0.038, 95% CI [-0.182, +0.028]) for the BTVAE and +0.232 (se 0.025) for the "
            "VAE: the Barlow Twins term does not make the latent more class-informative.",
        ),
        **kw,
    )


TUNING = "reproductions/btvae-cifar10-tuning"
"""The committed validation scan that chose ``btvae-cifar10-tuned``."""

_CIFAR_CPU = ClaimBudget(
    {
        "data.dataset": "folder",
        "data.val_fraction": 0.1,
        "train.epochs": 3,
        "train.epoch_fraction": 0.1,
        "train.tensorboard": False,
    },
    "3 epochs, each a seeded 10% (4,050 images) of the 40,500-image train split of the "
    "CIFAR-10 training JPEGs; FID of 2,000 prior samples against 2,000 images of the seeded "
    "held-out 10% (no official test split available)",
    EvalConfig(embedding="none", fid_n=2000, fid_dims=64),
)

CLAIMS = (
    _claim("mnist", ClaimBudget(
        {"train.epochs": 3, "train.epoch_fraction": 0.1, "train.tensorboard": False},
        "3 epochs, each a seeded 10% (5,400 images) of the 54,000-image train split; FID of "
        "2,000 prior samples against 2,000 test images",
        EvalConfig(embedding="none", fid_n=2000, fid_dims=64),
    )),
    _claim("cifar10", _CIFAR_CPU, data_folder="cifar10-train"),
    _claim(
        "cifar10",
        _CIFAR_CPU,
        Arm("BTVAE-tuned", "btvae-cifar10-tuned",
            description="lambda 1e-5: the lowest validation FID of lambda 0, 1e-5, 1e-4, 1e-3 "
            "(scan in " + TUNING + ")"),
        name="cifar10-tuned",
        data_folder="cifar10-train",
        extra_notes=(
            "btvae-cifar10-tuned was selected on the validation split only (`cvae eval --split "
            "val`, one seed per lambda, this budget); this check scores it once on the held-out "
            "split, 3 seeds. The paper's lambdas are shown beside it.",
        ),
    ),
)  # fmt: skip
