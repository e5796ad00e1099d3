"""CVAE (Lin, Zhang, Chahal): Table 1 logistic probes on mu, Table 2 FID
over the KL weight beta (MNIST, d=10)."""

from __future__ import annotations

from typing import Any

from cvae.experiments.claims import Arm, Claim, ClaimBudget, ClaimMetric
from cvae.experiments.paper import QUICK_EVAL, Budget, Paper, PaperNumber, Row, percent

CITATION = "CVAE (Lin, Zhang, Chahal)"

# Table 1: (dataset, model, latent dim, beta, accuracy % as printed)
_TABLE1 = (
    ("mnist", "VAE", 10, 1e-3, "91.80"),
    ("mnist", "CVAE", 10, 1e-3, "93.05"),
    ("cifar10", "VAE", 128, 1e-3, "38.05"),
    ("cifar10", "CVAE", 128, 1e-2, "60.15"),
)
# Table 2: FID on MNIST, d=10, at beta 1e-3, 1e-5, 1e-8
_BETAS = (1e-3, 1e-5, 1e-8)
_TABLE2 = {"VAE": ("48.06", "87.04", "199.75"), "CVAE": ("79.51", "162.71", "225.79")}
_FID = ("fid_inception", "fid_domain")


def _numbers() -> tuple[PaperNumber, ...]:
    out = [
        PaperNumber(
            value=percent(text)[0],
            paper=CITATION,
            table="Table 1",
            dataset=dataset,
            model=model,
            metric="logreg_paper",  # logistic regression inside the test set (paper's code), on mu
            text=f"{text}%",
            presets=(f"{model.lower()}-{dataset}",),
            conditions={"model.latent_dim": dim, "loss.terms.kl.weight": beta},
            unit="accuracy",
        )
        for dataset, model, dim, beta, text in _TABLE1
    ]
    out += [
        PaperNumber(
            value=float(text),
            paper=CITATION,
            table="Table 2",
            dataset="mnist",
            model=f"{model}, beta={beta:g}",
            metric="fid_inception",
            text=text,
            presets=(f"{model.lower()}-mnist",),
            conditions={"model.latent_dim": 10, "loss.terms.kl.weight": beta},
            unit="FID",
            caveat="the paper's FID compares fakes in [0,1] with reals in [-1,1] (its code), "
            "which inflates it",
        )
        for model, cells in _TABLE2.items()
        for beta, text in zip(_BETAS, cells, strict=True)
    ]
    return tuple(out)


def _rows() -> tuple[Row, ...]:
    rows = [
        Row("Table 1", f"{ds} {m}", f"{m.lower()}-{ds}-paper", ("logreg_paper",),
            {"loss.terms.kl.weight": beta}, code_preset=f"{m.lower()}-{ds}-code")
        for ds, m, _, beta, _ in _TABLE1
    ]  # fmt: skip
    rows += [
        Row(
            "Table 2",
            f"{m}, beta={beta:g}",
            f"{m.lower()}-mnist-paper",
            _FID,
            {"loss.terms.kl.weight": beta},
        )
        for m in _TABLE2
        for beta in _BETAS
    ]
    return tuple(rows)


PAPER = Paper(
    name="cvae-paper",
    title=f"{CITATION}: Table 1 logistic probes, Table 2 FID over beta",
    seeds=(0, 1, 2),
    seeded=False,
    rows=_rows(),
    budgets={
        "quick": Budget(1, 1, code=False, eval_config=QUICK_EVAL),
        "medium": Budget(10, 1),
        "paper": Budget(None, 1),
    },
    numbers=_numbers(),
    notes=("The paper reports single runs; more --seeds give mean (std) over ours.",),
)


# --------------------------------------------------------------------------- claim checks

_PROBES = (
    ClaimMetric(
        "logreg_standard",
        unit="accuracy",
        description="logistic regression (lbfgs) fit on the train split's mu, scored on the "
        "evaluation split",
    ),
    ClaimMetric(
        "knn_weighted_cosine",
        unit="accuracy",
        description="weighted-cosine kNN (k=200, T=0.1) on mu, bank: train split",
    ),
)


def _claim(
    dataset: str, name: str, betas: tuple[float, float], tuned: Arm | None = None, **kw: Any
) -> Claim:
    """VAE vs CVAE, with a VAE trained on the CVAE's first views (same beta as the CVAE) as the
    control that isolates the NT-Xent term from the augmentation. ``tuned``: a CVAE arm whose
    settings were selected on a validation split; the contrasts then test it, and the paper's
    CVAE arm is shown beside it."""
    vae_beta, cvae_beta = betas
    views = "cvae-mnist" if dataset == "mnist" else "cvae-cifar"
    paper = {"VAE": _cell(dataset, "VAE"), "CVAE": _cell(dataset, "CVAE")}
    treatment = "CVAE" if tuned is None else tuned.label
    where = "" if tuned is None else f" at settings selected on a validation split ({tuned.preset})"
    return Claim(
        paper=PAPER.name,
        name=name,
        statement=f"the NT-Xent term{where} makes mu more linearly separable than (a) the VAE and "
        f"(b) a VAE trained on the same augmented views ({dataset}, Table 1)",
        arms=(
            Arm(
                "VAE",
                f"vae-{dataset}-paper",
                {"loss.terms.kl.weight": vae_beta},
                "the paper's baseline, clean images",
            ),
            Arm(
                "VAE+views",
                f"vae-{dataset}-paper",
                {"data.augment": views, "loss.terms.kl.weight": cvae_beta},
                "the VAE on the CVAE's views (its first view), the CVAE's beta: only the NT-Xent "
                "term differs from the CVAE",
            ),
            Arm(
                "CVAE",
                f"cvae-{dataset}-paper",
                {"loss.terms.kl.weight": cvae_beta},
                "lambda 0.1 NT-Xent between projections of two views",
            ),
            *(() if tuned is None else (tuned,)),
        ),  # fmt: skip
        contrasts=((treatment, "VAE"), (treatment, "VAE+views")),
        metrics=(
            ClaimMetric(
                "logreg_paper",
                unit="accuracy",
                paper={k: f"{v}%" for k, v in paper.items()},
                paper_values={k: percent(v)[0] for k, v in paper.items()},
                description="the paper's protocol (as its code evaluates): logistic regression "
                "on mu fit on 80% of the evaluation split, scored on its other 20%",
            ),
            *_PROBES,
        ),
        seeds=(0, 1, 2),
        **kw,
    )


def _cell(dataset: str, model: str) -> str:
    return next(t for d, m, _, _, t in _TABLE1 if d == dataset and m == model)


TUNING = "reproductions/cvae-mnist-tuning"
"""The committed validation sweep that chose ``cvae-mnist-tuned``."""

_MNIST_CPU = ClaimBudget(
    {
        "train.epochs": 5,
        "train.epoch_fraction": 0.17,
        "data.val_fraction": 0.02,
        "train.lr": 1e-3,
        "train.tensorboard": False,
    },
    "5 epochs, each a seeded 17% (10,000 images) of the 58,800-image train split (val 2%), Adam "
    "lr 1e-3 instead of the paper's 1e-4 (700 epochs) to make up for the short schedule; the "
    "probes fit on the 58,800 train images' mu and score on the 10,000 MNIST test images "
    "(logreg_paper: inside the test set, 80/20); --jobs 2",
    designed_minutes=40,
)

CLAIMS = (
    _claim("mnist", "mnist", (1e-3, 1e-3), budgets={"cpu": _MNIST_CPU}),
    _claim(
        "mnist",
        "mnist-tuned",
        (1e-3, 1e-3),
        Arm(
            "CVAE-tuned",
            "cvae-mnist-tuned",
            description="lambda 3e-4, tau 0.1: the NT-Xent settings with the best mean "
            "validation accuracy of 11 (sweep in " + TUNING + ")",
        ),
        budgets={"cpu": _MNIST_CPU},
        notes=(
            "cvae-mnist-tuned was selected on the validation split only (`cvae eval --split "
            "val`, 3 seeds per setting, this budget); this check scores it once on the test "
            "split. The paper's CVAE arm (lambda 0.1) is shown beside it, not tested.",
        ),
    ),
    _claim(
        "cifar10",
        "cifar10",
        (1e-3, 1e-2),
        data_folder="cifar10-train",
        notes=(
            "CIFAR-10 is read from the 50,000 training JPEGs as an image folder (no official "
            "test split available): the claim is evaluated on a seeded held-out 10% (5,000 "
            "images, data.split_seed 0); the probes fit on the 40,500-image train split.",
            "The paper's VAE uses beta 1e-3 and its CVAE beta 1e-2 (Table 1); the VAE+views "
            "control uses the CVAE's beta, so contrast (b) isolates the NT-Xent term.",
        ),
        budgets={
            "cpu": ClaimBudget(
                {
                    "data.dataset": "folder",
                    "data.val_fraction": 0.1,
                    "train.epochs": 6,
                    "train.epoch_fraction": 0.2,
                    "train.lr": 1e-3,
                    "train.tensorboard": False,
                },
                "6 epochs, each a seeded 20% (8,100 images) of the 40,500-image train split, "
                "Adam lr 1e-3 instead of the paper's 1e-4 (2000 epochs); evaluated on the "
                "seeded held-out 5,000 images",
            )
        },
    ),  # fmt: skip
)
