"""Companion to the HTC course Getting Started with Deep Learning, lessons 3-6

Modules:

- `htc_dl.digit_mixer`: The Digit mixer app of lesson 6e: morph one real digit into another, steer a VAE's main latent directions, and see which digit a classifier reads."""

__version__ = "0.1.0"
