"""``cvae``: contrastive VAE (Lin, Zhang, Chahal): the VAE terms on view 1 + lambda * NT-Xent
between projections of the latent samples of two independently augmented views (spec 3.1)."""

from cvae.methods.base import MethodSpec, register

register(
    MethodSpec(
        "cvae",
        "VAE + lambda * NT-Xent on projected latent samples of two augmented views",
        {"loss.recon_weight": 1.0, "loss.beta": 1e-3, "loss.contrastive_weight": 0.1},
    )
)
