"""The fully connected pair of PyTorch-GAN's WGAN/WGAN-GP examples, any data shape."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from gan_exp.data.base import DataSpec
from gan_exp.errors import check_choice
from gan_exp.models.activations import LeakyReLU
from gan_exp.models.base import (
    D_NORMS,
    GANModels,
    ScoreCritic,
    critic_norm_1d,
    maybe_spectral,
)


class MLPGenerator(nn.Module):
    """z -> 128 -> 256 -> 512 -> 1024 -> prod(shape), BatchNorm from the second block.

    PyTorch-GAN's scripts write `nn.BatchNorm1d(n, 0.8)`, which sets eps=0.8 (not momentum);
    `bn_eps` reproduces that when set to 0.8, and defaults to PyTorch's 1e-5.
    """

    def __init__(
        self,
        latent_dim: int,
        out_shape: tuple[int, ...],
        hidden: Sequence[int],
        bounded: bool,
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        prev = latent_dim
        for i, width in enumerate(hidden):
            layers.append(nn.Linear(prev, width))
            if i > 0:
                layers.append(nn.BatchNorm1d(width, eps=bn_eps, momentum=bn_momentum))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            prev = width
        layers.append(nn.Linear(prev, math.prod(out_shape)))
        if bounded:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


def mlp_critic_net(in_dim: int, hidden: Sequence[int], d_norm: str) -> nn.Sequential:
    """Flatten -> hidden layers with LeakyReLU(0.2) -> 1 unit, no sigmoid (losses take logits)."""
    layers: list[nn.Module] = [nn.Flatten()]
    prev = in_dim
    for i, width in enumerate(hidden):
        layers.append(maybe_spectral(nn.Linear(prev, width), d_norm))
        if i > 0:
            layers.append(critic_norm_1d(d_norm, width))
        layers.append(LeakyReLU(0.2, inplace=True))
        prev = width
    layers.append(maybe_spectral(nn.Linear(prev, 1), d_norm))
    return nn.Sequential(*layers)


def build(
    data: DataSpec,
    latent_dim: int = 100,
    g_hidden: Sequence[int] = (128, 256, 512, 1024),
    d_hidden: Sequence[int] = (512, 256),
    g_bn_eps: float = 1e-5,
    g_bn_momentum: float = 0.1,
    d_norm: str = "none",
) -> GANModels:
    check_choice("model.d_norm", d_norm, D_NORMS)
    generator = MLPGenerator(
        latent_dim, data.shape, list(g_hidden), data.bounded, g_bn_eps, g_bn_momentum
    )
    critic = ScoreCritic(mlp_critic_net(math.prod(data.shape), list(d_hidden), d_norm))
    return GANModels(generator=generator, critic=critic, latent_dim=latent_dim)
