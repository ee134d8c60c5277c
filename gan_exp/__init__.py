"""gan_exp: config-driven GAN experiments.

WGAN, WGAN-GP, DRAGAN, Loss-Sensitive GAN, EBGAN, standard, least-squares and hinge GANs.
"""

__version__ = "0.1.0"


def load_generator(run_or_checkpoint, device="cpu", *, ema=False):  # type: ignore[no-untyped-def]
    """A run's trained generator (its newest checkpoint, or the checkpoint file given), in eval
    mode: `G(torch.randn(n, G.latent_dim))`; `ema=True` for its weights' average. See
    gan_exp.sample."""
    from gan_exp.sample import load_generator as _load

    return _load(run_or_checkpoint, device, ema=ema)
