"""``aavae`` (Falcon et al.): reconstruct the clean image from an augmented view, KL weight 0
(spec 6.1); and the paper's baselines ``ae`` (deterministic autoencoder, clean input) and
``aaae`` (deterministic, augmented input, clean target: the paper's intent, spec 6.7-2)."""

from cvae.methods.base import MethodSpec, register

AUGMENTED_TO_CLEAN = {"loss.recon_target": "clean", "data.augment": "simclr-cifar"}

register(
    MethodSpec(
        "aavae",
        "augmented view in, clean image out, posterior noise kept, beta = 0",
        {"loss.recon_weight": 1.0, "loss.beta": 0.0, **AUGMENTED_TO_CLEAN},
    )
)
register(
    MethodSpec(
        "ae",
        "deterministic autoencoder (z = mu), clean input",
        {"loss.recon_weight": 1.0, "model.deterministic": True, "data.augment": "none"},
    )
)
register(
    MethodSpec(
        "aaae",
        "deterministic autoencoder, augmented view in, clean image out",
        {"loss.recon_weight": 1.0, "model.deterministic": True, **AUGMENTED_TO_CLEAN},
    )
)
