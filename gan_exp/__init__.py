"""gan_exp: config-driven GAN experiments (WGAN, WGAN-GP, DRAGAN, Loss-Sensitive GAN, EBGAN, ...)."""

__version__ = "0.1.0"
