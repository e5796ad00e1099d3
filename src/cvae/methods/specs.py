"""The methods: :data:`METHODS` maps a name to its defaults (:class:`MethodSpec`).

A method is its default term weights plus the choices it makes where the config says ``auto`` or
null; every term weight the config sets wins, and terms a method does not name are off. Adding a
method is one entry here plus its preset (``src/cvae/presets/<method>-<dataset>.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cvae.config import TermName
from cvae.config.schema import NTXentFeatures, ReconTarget

ProbeFeature = Literal["mu", "h"]
"""What a method's probes read: the posterior mean, or the encoder's representation before the
projection to mu/logvar."""


@dataclass(frozen=True)
class MethodSpec:
    description: str
    weights: Mapping[TermName, float]
    """Default weight of each term the method uses (``loss.terms.<name>.weight`` when null)."""
    augment: str | None = None
    """``data.augment`` when ``auto``; None: by views (none for one view, else the CVAE paper's
    MNIST / CIFAR views)."""
    recon_target: ReconTarget = "view"
    """``loss.terms.recon.target`` when ``auto``."""
    ntxent_features: NTXentFeatures = "z"
    """``loss.terms.ntxent.features`` when ``auto``."""
    deterministic: bool = False
    """``model.deterministic`` when null (z = mu: the autoencoder baselines)."""
    probe_feature: ProbeFeature = "mu"
    """The representation ``cvae eval``'s probes read by default."""
    linear_sgd: bool = False
    """Whether ``cvae eval`` runs the AAVAE paper's SGD linear evaluation by default."""


_SIMCLR = "simclr-cifar"

METHODS: dict[str, MethodSpec] = {
    # the beta-VAE baseline (Kingma & Welling 2014) with the CVAE paper's per-pixel-mean MSE and
    # beta = 1e-3 (the CVAE paper's VAE)
    "vae": MethodSpec(
        "beta-VAE: reconstruction + beta * KL",
        {"recon": 1.0, "kl": 1e-3},
    ),
    # contrastive VAE (Lin, Zhang, Chahal): the VAE terms on view 1 + lambda * NT-Xent between
    # projections of the latent samples of two independently augmented views (CVAE paper)
    "cvae": MethodSpec(
        "VAE + lambda * NT-Xent on projected latent samples of two augmented views",
        {"recon": 1.0, "kl": 1e-3, "ntxent": 0.1},
    ),
    # Barlow Twins VAE (Xu, Wei, Yin): the code's KL weight 2.5e-4 and the paper's
    # "best in most cases" lambda 0.025
    "btvae": MethodSpec(
        "VAE + lambda * Barlow Twins between encodings of x and of its reconstruction",
        {"recon": 1.0, "kl": 2.5e-4, "barlow": 0.025},
    ),
    # contrastive-regularised VAE (Lygerakis & Rueckert): alpha = beta = gamma = 1 and
    # the paper's Table IV views
    "crvae": MethodSpec(
        "VAE + gamma * InfoNCE against an EMA key encoder and a queue of keys",
        {"recon": 1.0, "kl": 1.0, "infonce": 1.0},
        augment="crvae",
    ),
    # AAVAE (Falcon et al.), and the paper's autoencoder baselines (AAAE: the paper's
    # intent)
    "aavae": MethodSpec(
        "augmented view in, clean image out, posterior noise kept, beta = 0",
        {"recon": 1.0, "kl": 0.0},
        augment=_SIMCLR,
        recon_target="clean",
        probe_feature="h",
        linear_sgd=True,
    ),
    "ae": MethodSpec(
        "deterministic autoencoder (z = mu), clean input",
        {"recon": 1.0},
        augment="none",
        deterministic=True,
        probe_feature="h",
        linear_sgd=True,
    ),
    "aaae": MethodSpec(
        "deterministic autoencoder, augmented view in, clean image out",
        {"recon": 1.0},
        augment=_SIMCLR,
        recon_target="clean",
        deterministic=True,
        probe_feature="h",
        linear_sgd=True,
    ),
    # InfoVAE / MMD-VAE (Zhao, Song, Ermon, AAAI 2019): recon + (1 - alpha) KL
    # + (alpha + lambda - 1) MMD(q(z) || p(z)); the weights are kl = 1 - alpha and
    # mmd = alpha + lambda - 1, here alpha = 0, lambda = 1000 (the KL kept, as the CR-VAE paper's
    # InfoVAE row's KL next to its VAE's suggests)
    "infovae": MethodSpec(
        "ELBO with KL weight 1 - alpha + (alpha + lambda - 1) * MMD(q(z) || N(0, I))",
        {"recon": 1.0, "kl": 1.0, "mmd": 999.0},
    ),
    # InfoMax-VAE (Rezaabad & Vishwanath, ISIT 2020): ELBO + weight * a critic's dual
    # f-divergence lower bound on I(x; z), the critic trained jointly
    "infomaxvae": MethodSpec(
        "ELBO + weight * dual lower bound on I(x; z) with a jointly trained critic",
        {"recon": 1.0, "kl": 1.0, "infomax": 1.0},
    ),
    # SimCLR (Chen et al., ICML 2020) as the decoder-free control of the AAVAE family: NT-Xent
    # (loss.terms.ntxent.features = mu: the encoder's projection of h), recon and KL off
    "simclr": MethodSpec(
        "decoder-free SimCLR: NT-Xent between the encoder's projections of two views",
        {"ntxent": 1.0},
        augment=_SIMCLR,
        ntxent_features="mu",
        probe_feature="h",
        linear_sgd=True,
    ),
}
