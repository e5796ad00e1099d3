"""CR-VAE (Lygerakis, Rueckert): Table III (seven metrics, four datasets,
mean (std) over five runs), Fig. 4 mutual information over the InfoNCE weight gamma."""

from __future__ import annotations

from cvae.evaluation.options import EvalConfig
from cvae.experiments.claims import Arm, Claim, ClaimBudget, ClaimMetric
from cvae.experiments.paper import QUICK_EVAL, Budget, Paper, PaperNumber, Row, number, percent

CITATION = "CR-VAE (Lygerakis, Rueckert)"

# Table III, cells verbatim: mean(std) over 5 runs, d=16, 50 epochs.
# [dataset], then per model: NLL, KL, KL(q(z)||p(z)), MI, AU, Linear %, KNN %.
_TABLE3 = """
[mnist]
VAE 89.30(0.01) 13.16(0.09) 10.75(0.06) 2.41(0.03) 0.00(0.00) 12.29(1.52) 33.12(1.75)
InfoVAE 89.30(0.01) 13.18(0.07) 10.75(0.03) 2.43(0.04) 0.00(0.00) 13.11(1.80) 32.98(1.23)
InfoMax-VAE 75.45(0.31) 12.75(0.10) 10.38(0.07) 2.37(0.03) 0.00(0.00) 82.77(2.04) 28.66(1.60)
CR-VAE 22.24(0.10) 16.99(0.08) 12.30(0.04) 4.69(0.04) 16.00(0.00) 88.51(0.92) 95.29(0.14)
[emnist]
VAE 111.35(0.01) 13.02(0.08) 10.07(-0.73) 2.95(0.81) 5.33(8.26) 2.74(0.03) 14.73(0.86)
InfoVAE 111.35(0.01) 13.20(0.05) 10.76(0.04) 2.44(0.01) 5.12(7.81) 2.83(0.18) 14.73(0.76)
InfoMax-VAE 120.00(0.34) 12.96(0.10) 10.55(-0.60) 2.41(0.70) 3.20(7.15) 11.22(1.84) 25.31(0.17)
CR-VAE 22.44(0.27) 18.08(0.43) 13.88(0.21) 4.20(0.22) 16.00(0.00) 52.90(2.40) 77.83(0.29)
[fashion-mnist]
VAE 16.02(0.25) 8.41(0.09) 5.28(0.02) 3.13(0.07) 12.33(1.97) 62.03(3.67) 80.74(0.33)
InfoVAE 17.23(0.16) 8.33(0.09) 4.92(-0.03) 3.41(0.12) 12.48(1.11) 63.02(1.02) 79.42(0.55)
InfoMax-VAE 16.04(0.33) 8.41(0.10) 5.26(0.03) 3.15(0.07) 12.80(1.94) 61.87(1.57) 81.28(0.28)
CR-VAE 21.73(0.26) 10.40(0.07) 6.82(-0.15) 3.58(0.22) 16.00(0.00) 68.37(3.21) 82.29(0.72)
[cifar10]
VAE 60.90(0.24) 18.36(0.13) 14.92(0.01) 3.44(0.12) 16.00(0.00) 18.75(2.57) 42.32(0.12)
InfoVAE 58.49(0.24) 18.45(0.31) 14.42(0.22) 3.53(0.09) 16.00(0.00) 18.06(1.71) 42.12(0.62)
InfoMax-VAE 60.19(1.06) 19.43(4.30) 16.04(4.00) 3.39(0.30) 16.00(0.00) 16.38(4.41) 35.72(0.55)
CR-VAE 62.34(0.63) 16.76(0.63) 13.22(0.51) 3.54(0.12) 16.00(0.00) 20.78(0.72) 43.60(0.51)
"""
_COLUMNS = (  # (our metric, unit, printed as a percentage?)
    ("recon_nll", "nats", False),
    ("kl", "nats", False),
    ("marginal_kl", "nats", False),
    ("mutual_information_batch", "nats", False),
    ("active_units", "count", False),
    ("linear_adam", "accuracy", True),
    ("knn_weighted_cosine", "accuracy", True),
)
_METRICS = tuple(metric for metric, _, _ in _COLUMNS)
# Our presets for the paper's rows. InfoVAE and InfoMax-VAE follow their own papers (the CR-VAE
# code has no InfoVAE and its InfoMax-VAE passes no MI gradient).
_PRESETS = {
    "VAE": "vae-crvae",
    "InfoVAE": "infovae",
    "InfoMax-VAE": "infomaxvae",
    "CR-VAE": "crvae",
}
_DATASETS = ("mnist", "emnist", "fashion-mnist", "cifar10")
# the reference code's versions of the paper's probes
_CODE = {"knn_weighted_cosine": "knn_uniform_euclidean", "linear_adam": "perceptron_probe"}


def _numbers() -> tuple[PaperNumber, ...]:
    out = []
    dataset = ""
    for line in _TABLE3.strip().splitlines():
        if line.startswith("["):
            dataset = line.strip("[]")
            continue
        model, *cells = line.split()
        stem = _PRESETS.get(model)
        for (metric, unit, is_percent), cell in zip(_COLUMNS, cells, strict=True):
            value, std = percent(cell) if is_percent else number(cell)
            out.append(
                PaperNumber(
                    value=value,
                    paper=CITATION,
                    table="Table III",
                    dataset=dataset,
                    model=model,
                    metric=metric,
                    text=f"{cell}%" if is_percent else cell,
                    presets=(f"{stem}-{dataset}",) if stem else (),
                    conditions={"model.latent_dim": 16},
                    std=std,
                    runs=5,
                    unit=unit,
                )
            )
    return tuple(out)


def _rows() -> tuple[Row, ...]:
    rows = []
    for ds in _DATASETS:
        for model in ("VAE", "InfoVAE", "InfoMax-VAE"):
            rows.append(
                Row("Table III", f"{ds} {model}", f"{_PRESETS[model]}-{ds}", _METRICS, code=_CODE)
            )
        code = f"crvae-{ds}-code" if ds in ("mnist", "cifar10") else None
        rows.append(
            Row("Table III", f"{ds} CR-VAE", f"crvae-{ds}", _METRICS, code=_CODE, code_preset=code)
        )
    rows += [
        Row("Fig. 4 (MI vs gamma, MNIST)", f"CR-VAE, gamma={g:g}", "crvae-mnist",
            ("mutual_information_batch",), {"loss.terms.infonce.weight": g}, max_seeds=1)
        for g in (0.0, 0.2, 0.4, 0.6, 0.8)
    ]  # fmt: skip
    return tuple(rows)


PAPER = Paper(
    name="crvae-paper",
    title=f"{CITATION}: Table III, Fig. 4 MI over gamma",
    seeds=(101, 202, 303, 404, 505),
    seeded=True,
    rows=_rows(),
    budgets={
        "quick": Budget(
            1,
            2,
            {"train.epoch_fraction": 0.25},
            tables=("Table III",),
            datasets=("mnist",),
            code=False,
            eval_config=QUICK_EVAL,
        ),
        "medium": Budget(1, 3, datasets=("mnist",)),
        "paper": Budget(None, 5),
    },  # fmt: skip
    numbers=_numbers(),
    notes=(
        "Reference code: crvae-*-code trains half an epoch per epoch; its KNN is "
        "sklearn uniform Euclidean (knn_uniform_euclidean), its linear probe a perceptron "
        "(perceptron_probe).",
        "std: sample standard deviation (n-1) over our seeds.",
    ),
)


# --------------------------------------------------------------------------- claim checks


def _claim_metric(name: str, label: str, higher: bool = True, description: str = "") -> ClaimMetric:
    """A claim metric with the paper's MNIST VAE and CR-VAE cells of Table III."""
    cells = {e.model: e for e in PAPER.numbers if e.dataset == "mnist" and e.metric == name}
    pair = {"VAE": cells["VAE"], "CR-VAE": cells["CR-VAE"]}
    return ClaimMetric(
        name,
        higher=higher,
        unit=pair["VAE"].unit,
        paper={k: e.text for k, e in pair.items()},
        paper_values={k: e.value for k, e in pair.items()},
        description=description or label,
    )


_ARMS = (
    Arm("VAE", "vae-crvae-mnist", description="the paper's baseline: gamma 0, clean images"),
    Arm("CR-VAE", "crvae-mnist", description="gamma 1 InfoNCE against the EMA key encoder"),
)
_CPU = ClaimBudget(
    {"train.epochs": 4, "train.epoch_fraction": 0.2, "train.tensorboard": False},
    "4 epochs, each a seeded 20% (12,000 images) of the 60,000 train images; linear probe 50 "
    "Adam epochs; evaluated on the 10,000 test images",
    EvalConfig(embedding="none", linear_epochs=50),
)
_COLLAPSE_METRICS = (
    _claim_metric("active_units", "active units (Cov_x E[z|x] > 0.01)"),
    _claim_metric("mutual_information_batch", "I(x; z), aggregate posterior over batches of 256"),
    _claim_metric("knn_weighted_cosine", "weighted-cosine kNN on mu"),
)
_WEAK_RECON = {"loss.terms.recon.weight": 0.05}
WEAK_RECON_GAMMA = 100.0
WEAK_RECON_TUNING = "reproductions/crvae-mnist-weak-recon-tuning"
"""The committed validation scan that chose the InfoNCE weight of the weak-reconstruction arm."""

CLAIMS = (
    Claim(
        paper=PAPER.name,
        name="mnist-collapse",
        statement="in the paper's MNIST setting, where its VAE collapses (0 active units), the "
        "CR-VAE keeps the latent informative: more active units, more mutual information, "
        "higher kNN accuracy (Table III)",
        arms=_ARMS,
        contrasts=(("CR-VAE", "VAE"),),
        metrics=_COLLAPSE_METRICS,
        seeds=(101, 202, 303),
        budgets={"cpu": _CPU},
        notes=(
            "The paper's MNIST VAE 'NLL' of 89.30 is implausible for a trained VAE: an all-black "
            "reconstruction scores 89.34 under the paper's reconstruction loss, while a "
            "collapsed VAE that decodes the mean image scores 52.90 (measured in this project): "
            "its VAE baseline likely failed to train, so its collapse is the paper's setting, "
            "not a property of the VAE.",
        ),
    ),
    Claim(
        paper=PAPER.name,
        name="mnist-weak-recon",
        statement="in a regime where the VAE does collapse (reconstruction weight alpha lowered "
        "from 1 to 0.05, so the KL dominates), the CR-VAE's InfoNCE keeps the latent "
        "informative: more active units, more mutual information, higher kNN accuracy",
        arms=(
            Arm("VAE", "vae-crvae-mnist", _WEAK_RECON, "gamma 0, clean images, alpha 0.05"),
            Arm("CR-VAE", "crvae-mnist", _WEAK_RECON, "the paper's gamma 1, alpha 0.05"),
            Arm(
                f"CR-VAE gamma {WEAK_RECON_GAMMA:g}",
                "crvae-mnist",
                {**_WEAK_RECON, "loss.terms.infonce.weight": WEAK_RECON_GAMMA},
                f"alpha 0.05, gamma chosen on the validation split ({WEAK_RECON_TUNING})",
            ),
        ),
        contrasts=(("CR-VAE", "VAE"), (f"CR-VAE gamma {WEAK_RECON_GAMMA:g}", "VAE")),
        metrics=_COLLAPSE_METRICS,
        seeds=(101, 202, 303),
        budgets={"cpu": _CPU},
        notes=(
            "Our VAE does not collapse in the paper's setting (alpha = beta = 1; claim "
            "mnist-collapse), so this check lowers the reconstruction weight of every arm to 0.05 "
            "to create the regime the paper's claim is about. The paper's cells are from its "
            "alpha-1 setting: beside ours for the direction of the claim, not for its size.",
            f"gamma {WEAK_RECON_GAMMA:g} was chosen on the validation split only (seed 0, 3 "
            f"epochs, 6,000 val images; highest weighted kNN of gamma 1, 10, 100): "
            f"{WEAK_RECON_TUNING}.",
        ),
    ),
    Claim(
        paper=PAPER.name,
        name="mnist-probes",
        statement="at the paper's weights (alpha = beta = gamma = 1) the CR-VAE's mu is more "
        "class-informative than the VAE's (kNN and linear probe, Table III)",
        arms=_ARMS,
        contrasts=(("CR-VAE", "VAE"),),
        metrics=(
            _claim_metric("knn_weighted_cosine", "weighted-cosine kNN on mu"),
            _claim_metric("linear_adam", "linear probe (Adam) on mu"),
        ),
        seeds=(101, 202, 303),
        budgets={"cpu": _CPU},
    ),
)
