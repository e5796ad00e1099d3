"""``btvae``: Barlow Twins VAE (Xu, Wei, Yin): VAE + lambda * Barlow Twins between the encoder
outputs of x and of its reconstruction (spec 4.1). Defaults: the code's KL weight 2.5e-4 and the
paper's "best in most cases" lambda 0.025."""

from cvae.methods.base import MethodSpec, register

register(
    MethodSpec(
        "btvae",
        "VAE + lambda * Barlow Twins between encodings of x and of its reconstruction",
        {"loss.recon_weight": 1.0, "loss.beta": 2.5e-4, "loss.barlow_weight": 0.025},
    )
)
