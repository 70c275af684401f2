"""Companion to the HTC course Getting Started with Deep Learning, lessons 3-6

Modules:

- `htc_dl.digit_mixer`: The Digit mixer app of lesson 6e: morph one real digit into another, steer a VAE's main latent directions, and see which digit a classifier reads.
- `htc_dl.digit_studio`: The Digit studio app of lesson 6: a VAE and a GAN side by side, steered by the same sliders along each model's main latent directions, with a classifier reading each digit.
- `htc_dl.gans`: The GAN of lesson 6h: a small generator and critic for 28 px digits, their training steps, saving and caching, the measures that compare generated digits with real ones, and a small U-Net that restores damaged digits.
- `htc_dl.review_app`: The review app: a small sentiment classifier on real clothing reviews, trained on first launch and saved; what a review says, how sure the model is, and which words pushed it; bad input explained."""

__version__ = "0.1.0"
