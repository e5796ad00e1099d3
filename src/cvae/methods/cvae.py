"""``cvae``: contrastive VAE (Lin, Zhang, Chahal): VAE terms on view 1 + lambda * NT-Xent between
projections of the latent samples of two independently augmented views (spec section 3.1)."""

from __future__ import annotations

from cvae.config import RunConfig
from cvae.methods.base import MethodSpec, Term, register
from cvae.methods.terms import NTXent
from cvae.methods.vae import vae_terms


def cvae_terms(cfg: RunConfig) -> dict[str, tuple[Term, float]]:
    return {**vae_terms(cfg), "ntxent": (NTXent(cfg.loss), cfg.loss.contrastive_weight)}


register(
    MethodSpec(
        "cvae", "VAE + lambda * NT-Xent on projected latents of two views", 2, True, cvae_terms
    )
)
