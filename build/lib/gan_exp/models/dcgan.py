"""A DCGAN-style convolutional pair for square 28, 32 and 64 px images."""

from __future__ import annotations

from torch import Tensor, nn

from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError, check_choice
from gan_exp.models.activations import LeakyReLU
from gan_exp.models.base import (
    D_NORMS,
    GANModels,
    ScoreCritic,
    critic_norm_2d,
    init_weights,
    maybe_spectral,
)

# image side -> (side of the first feature map, number of stride-2 stages)
_LAYOUT = {28: (7, 2), 32: (4, 3), 64: (4, 4)}


class DCGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, side: int, width: int) -> None:
        super().__init__()
        start, stages = _LAYOUT[side]
        c = width * 2 ** (stages - 1)
        self.start, self.c0 = start, c
        self.project = nn.Sequential(
            nn.Linear(latent_dim, c * start * start, bias=False),
            nn.BatchNorm1d(c * start * start),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        for _ in range(stages - 1):
            blocks += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
            ]
            c //= 2
        blocks += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z).view(z.shape[0], self.c0, self.start, self.start)
        return self.blocks(h)


def dcgan_critic_net(channels: int, side: int, width: int, d_norm: str) -> nn.Sequential:
    """Stride-2 convs down to the first feature map size, then one linear unit (no sigmoid)."""
    start, stages = _LAYOUT[side]
    layers: list[nn.Module] = [
        maybe_spectral(nn.Conv2d(channels, width, 4, 2, 1), d_norm),
        LeakyReLU(0.2, inplace=True),
    ]
    c = width
    for _ in range(stages - 1):
        layers += [
            maybe_spectral(nn.Conv2d(c, c * 2, 4, 2, 1), d_norm),
            critic_norm_2d(d_norm, c * 2),
            LeakyReLU(0.2, inplace=True),
        ]
        c *= 2
    layers += [nn.Flatten(), maybe_spectral(nn.Linear(c * start * start, 1), d_norm)]
    return nn.Sequential(*layers)


def build(
    data: DataSpec,
    latent_dim: int = 100,
    g_width: int = 64,
    d_width: int = 64,
    d_norm: str = "layer",
) -> GANModels:
    check_choice("model.d_norm", d_norm, D_NORMS)
    if len(data.shape) != 3 or data.shape[1] != data.shape[2] or data.shape[1] not in _LAYOUT:
        raise ConfigError(
            f"model=dcgan needs square images of side {sorted(_LAYOUT)}; the dataset gives "
            f"shape {tuple(data.shape)}. Use model=mlp for other shapes."
        )
    channels, side = data.shape[0], data.shape[1]
    generator = DCGANGenerator(latent_dim, channels, side, g_width)
    critic = ScoreCritic(dcgan_critic_net(channels, side, d_width, d_norm))
    init_weights(generator)
    init_weights(critic)
    return GANModels(generator=generator, critic=critic, latent_dim=latent_dim)
