"""``vae``: the beta-VAE baseline, reconstruction + beta * KL (Kingma & Welling, 2014).

Defaults follow the CVAE paper's baseline (per-pixel-mean MSE, beta = 1e-3, spec 2.2).
"""

from cvae.methods.base import MethodSpec, register

register(
    MethodSpec(
        "vae",
        "beta-VAE: reconstruction + beta * KL",
        {"loss.recon_weight": 1.0, "loss.beta": 1e-3},
    )
)
