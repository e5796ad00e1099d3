"""cvae: variational autoencoders regularised with self-supervised objectives."""

__version__ = "0.1.0"
