"""``crvae``: contrastive-regularised VAE (Lygerakis & Rueckert): VAE + gamma * MoCo InfoNCE
between the latent sample of view 1 and an EMA key encoder's sample of view 2 (spec 5.1).
Defaults: alpha = beta = gamma = 1, per-image SSE, the paper's Table IV views."""

from cvae.methods.base import MethodSpec, register

register(
    MethodSpec(
        "crvae",
        "VAE + gamma * InfoNCE against an EMA key encoder and a queue of keys",
        {
            "loss.recon_weight": 1.0,
            "loss.beta": 1.0,
            "loss.infonce_weight": 1.0,
            "data.augment": "crvae",
        },
    )
)
