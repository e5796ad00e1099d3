"""``vae``: the beta-VAE baseline, reconstruction + beta * KL (Kingma & Welling, 2014)."""

from __future__ import annotations

from cvae.config import RunConfig
from cvae.methods.base import MethodSpec, Term, register
from cvae.methods.terms import KL, Reconstruction


def vae_terms(cfg: RunConfig) -> dict[str, tuple[Term, float]]:
    return {"recon": (Reconstruction(cfg.loss), 1.0), "kl": (KL(cfg.loss), cfg.loss.beta)}


register(MethodSpec("vae", "beta-VAE: reconstruction + beta * KL", 1, False, vae_terms))
