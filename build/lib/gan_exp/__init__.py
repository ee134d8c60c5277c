"""gan_exp: config-driven GAN experiments.

WGAN, WGAN-GP, DRAGAN, Loss-Sensitive GAN, EBGAN, standard, least-squares and hinge GANs.
"""

__version__ = "0.1.0"
