"""Reconstruction NLL (CR-VAE paper) and the importance-weighted NLL bound (IWAE).

Images ``x: [N, ...]`` are float tensors in the model's value range; the model is any
:class:`~cvae.networks.VAE` (``encode``, ``decode_logits``, ``activate``). Both metrics return
``{"value": nats per image, "protocol": {...}, ...}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cvae.config import RunConfig
from cvae.evaluation.collapse import LOG_2PI
from cvae.networks import VAE


@dataclass(frozen=True)
class Likelihood:
    """The decoder's observation model ``p(x|z)``, independent over the ``D`` values of an image.

    ``kind``: ``"bernoulli"`` (``p = sigmoid(logits)``, evaluated on the [0, 1] targets as the
    BCE loss is) or ``"gaussian"`` (mean ``activate(logits)``, one scalar standard deviation
    ``exp(log_scale)``). ``source`` says where the parameters come from.
    """

    kind: str
    log_scale: float = 0.0
    source: str = ""

    def log_prob(self, model: VAE, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|z)`` per image, float64 ``[B]``; ``logits, x: [B, ...]``."""
        if self.kind == "bernoulli":
            per = -F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
        else:
            x_hat = model.activate(logits).float()
            per = -0.5 * (x.float() - x_hat).pow(2) * math.exp(-2.0 * self.log_scale)
            per = per - self.log_scale - 0.5 * LOG_2PI
        return per.flatten(1).double().sum(1)


def run_likelihood(cfg: RunConfig, dim: int, learned_log_scale: float | None) -> Likelihood | str:
    """The likelihood a trained run's loss corresponds to, or a one-line reason why none does.

    ``dim``: values per image ``D``; ``learned_log_scale``: the trained ``log_scale`` parameter
    when the run learned it.

    * ``bce``: Bernoulli.
    * ``gaussian``: Gaussian with the run's (fixed or learned) log-scale.
    * ``mse``: the Gaussian whose negative ELBO the objective is proportional to:
      ``alpha * SSE / c + beta * KL`` (``c = D`` for reduction mean, 1 for sum) equals ``beta``
      times ``SSE / (2 sigma^2) + KL`` with ``sigma^2 = beta * c / (2 alpha)``. With ``beta = 0``
      there is no such sigma, and the loss is not a likelihood.
    """
    recon = cfg.loss.terms.recon
    if recon.likelihood == "bce":
        return Likelihood("bernoulli", source="loss.terms.recon.likelihood=bce")
    if recon.likelihood == "gaussian":
        if recon.learn_scale and learned_log_scale is not None:
            return Likelihood("gaussian", float(learned_log_scale), "learned log_scale")
        return Likelihood("gaussian", float(recon.log_scale), "fixed loss.terms.recon.log_scale")
    alpha, beta = float(recon.weight or 0.0), float(cfg.loss.terms.kl.weight or 0.0)
    if alpha <= 0 or beta <= 0:
        return (
            "loss.terms.recon.likelihood=mse with beta=0 implies no Gaussian scale, so the loss "
            "is not a likelihood (train with loss.terms.recon.likelihood=gaussian for an NLL)"
        )
    c = dim if recon.reduction == "mean" else 1
    sigma2 = beta * c / (2.0 * alpha)
    return Likelihood(
        "gaussian",
        0.5 * math.log(sigma2),
        f"implied by mse: sigma^2 = beta*c/(2*alpha) = {sigma2:.6g} "
        f"(alpha={alpha}, beta={beta}, reduction={recon.reduction}, c={c})",
    )


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(i, i + batch_size) for i in range(0, n, batch_size)]


@torch.no_grad()
def recon_nll(
    model: VAE,
    x: torch.Tensor,
    *,
    loss: str,
    seed: int = 0,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """CR-VAE "NLL" (evaluate_utils.py): mean over images of the per-image **sum** of the
    reconstruction loss between ``x`` and ``dec(z)``, one ``z ~ q(z|x)`` per image.

    ``loss``: ``"mse"`` (squared error of the activated output) or ``"bce"`` (from logits).
    Not a true NLL: no sigma, no importance sampling. The CR-VAE code averages batch
    means; here every image weighs the same (identical when ``batch_size`` divides ``N``).
    Batches of 4096: the decoders' transposed convolutions cost several times less per image
    than at 256 on CPU.
    """
    if loss not in ("mse", "bce"):
        raise ValueError(f"loss must be 'mse' or 'bce', got {loss!r}")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = 0.0
    for sl in _batches(len(x), batch_size):
        xb = x[sl]
        mu, logvar = model.encode(xb)
        logits = model.decode_logits(model.sample_latent(mu, logvar, gen))
        if loss == "bce":
            per = F.binary_cross_entropy_with_logits(logits.float(), xb.float(), reduction="none")
        else:
            per = (model.activate(logits).float() - xb.float()).pow(2)
        total += float(per.flatten(1).double().sum())
    return {
        "value": total / len(x),
        "protocol": {
            "name": "recon_nll",
            "definition": f"per-image sum of {loss.upper()}(x, dec(z)), z ~ q(z|x) once, mean "
            "over images (CR-VAE Table II/III 'NLL'; not a likelihood)",
            "loss": loss,
            "samples_per_x": 1,
            "seed": seed,
            "n": len(x),
        },
    }


@torch.no_grad()
def iwae_nll(
    model: VAE,
    x: torch.Tensor,
    likelihood: Likelihood,
    *,
    k: int = 100,
    seed: int = 0,
    max_decode: int = 4096,
) -> dict[str, Any]:
    """Importance-weighted bound (Burda et al. 2016) ``-log p(x) <= -log (1/k) sum_s w_s`` with
    ``w_s = p(x|z_s) N(z_s; 0, I) / q(z_s|x)``, ``z_s ~ q(z|x)``; mean over images, in nats.

    The bound tightens as ``k`` grows and is exact for any ``k`` when ``q`` is the true
    posterior. Images are processed ``max_decode // k`` at a time (at least one), so at most
    ``max(k, max_decode)`` latents are decoded at once. Extra keys: ``bits_per_dim`` (nats /
    (D ln 2)), ``std_err`` (of the mean over images). A Gaussian likelihood is a density on the
    model's value range, not on 8-bit pixels.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    per_image = []
    for sl in _batches(len(x), max(1, max_decode // k)):
        xb = x[sl]
        b = len(xb)
        mu, logvar = (t.double() for t in model.encode(xb))
        eps = torch.randn((b, k, mu.shape[1]), generator=gen, device=x.device, dtype=mu.dtype)
        z = mu[:, None] + eps * torch.exp(0.5 * logvar)[:, None]  # [b, k, d]
        log_q = -0.5 * (eps.pow(2) + logvar[:, None] + LOG_2PI).sum(-1)
        log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        logits = model.decode_logits(z.flatten(0, 1).to(xb.dtype))
        targets = xb.repeat_interleave(k, dim=0)
        log_px = likelihood.log_prob(model, logits, targets).view(b, k)
        log_w = log_px + log_prior - log_q
        per_image.append(-(torch.logsumexp(log_w, dim=1) - math.log(k)))
    nll = torch.cat(per_image)
    dim = int(x[0].numel())
    value = float(nll.mean())
    return {
        "value": value,
        "bits_per_dim": value / (dim * math.log(2)),
        "std_err": float(nll.std() / math.sqrt(len(nll))) if len(nll) > 1 else None,
        "unit": "nats per image",
        "protocol": {
            "name": "nll_iwae",
            "definition": "-log (1/k) sum_s p(x|z_s) p(z_s) / q(z_s|x), z_s ~ q(z|x); mean over "
            "images (an upper bound on the NLL)",
            "k": int(k),
            "likelihood": likelihood.kind,
            "log_scale": None if likelihood.kind == "bernoulli" else likelihood.log_scale,
            "likelihood_source": likelihood.source,
            "dims_per_image": dim,
            "seed": seed,
            "n": len(x),
        },
    }
