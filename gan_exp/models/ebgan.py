"""EBGAN's autoencoder critic and its generator (Zhao et al. 2017; PyTorch-GAN's ebgan.py layout).

The critic's score is the per-sample energy `mean over pixels of (Dec(Enc(v)) - v)^2`, and it
also returns the encoder embedding for the pulling-away term. Images get PyTorch-GAN's conv
autoencoder; flat data (the 2-D toys) gets an MLP autoencoder of the same shape of idea.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError, check_choice
from gan_exp.models.activations import LeakyReLU, ReLU
from gan_exp.models.base import (
    D_NORMS,
    Critic,
    CriticOutput,
    GANModels,
    critic_norm_1d,
    maybe_spectral,
)
from gan_exp.models.mlp import MLPGenerator


class ConvAutoencoderCritic(Critic):
    """Conv down (stride 2) -> linear embedding -> linear up -> upsample + conv."""

    produces_embedding = True

    def __init__(self, channels: int, side: int, width: int, embed_dim: int, d_norm: str):
        super().__init__()
        self.width, self.half = width, side // 2
        down_dim = width * self.half**2
        self.down = nn.Sequential(
            maybe_spectral(nn.Conv2d(channels, width, 3, 2, 1), d_norm), ReLU()
        )
        self.embed = maybe_spectral(nn.Linear(down_dim, embed_dim), d_norm)
        self.fc = nn.Sequential(
            critic_norm_1d(d_norm, embed_dim),
            ReLU(),
            maybe_spectral(nn.Linear(embed_dim, down_dim), d_norm),
            critic_norm_1d(d_norm, down_dim),
            ReLU(),
        )
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2),
            maybe_spectral(nn.Conv2d(width, channels, 3, 1, 1), d_norm),
        )

    def forward(self, x: Tensor) -> CriticOutput:
        n = x.shape[0]
        embedding = self.embed(self.down(x).reshape(n, -1))
        recon = self.up(self.fc(embedding).view(n, self.width, self.half, self.half))
        energy = (recon - x).pow(2).reshape(n, -1).mean(dim=1)
        return CriticOutput(score=energy, embedding=embedding)


class MLPAutoencoderCritic(Critic):
    """The same energy for flat data: dims -> hidden -> embedding -> hidden -> dims."""

    produces_embedding = True

    def __init__(self, dim: int, hidden: int, embed_dim: int, d_norm: str) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            maybe_spectral(nn.Linear(dim, hidden), d_norm),
            LeakyReLU(0.2),
            maybe_spectral(nn.Linear(hidden, embed_dim), d_norm),
        )
        self.decoder = nn.Sequential(
            critic_norm_1d(d_norm, embed_dim),
            ReLU(),
            maybe_spectral(nn.Linear(embed_dim, hidden), d_norm),
            critic_norm_1d(d_norm, hidden),
            ReLU(),
            maybe_spectral(nn.Linear(hidden, dim), d_norm),
        )

    def forward(self, x: Tensor) -> CriticOutput:
        flat = x.reshape(x.shape[0], -1)
        embedding = self.encoder(flat)
        energy = (self.decoder(embedding) - flat).pow(2).mean(dim=1)
        return CriticOutput(score=energy, embedding=embedding)


class ConvGenerator(nn.Module):
    """PyTorch-GAN's EBGAN generator: linear to (width, H/4, W/4), two upsample + conv blocks,
    tanh."""

    def __init__(
        self, latent_dim: int, channels: int, side: int, width: int, bn_eps: float
    ) -> None:
        super().__init__()
        self.init, self.width = side // 4, width
        self.project = nn.Linear(latent_dim, width * self.init**2)
        self.blocks = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.BatchNorm2d(width, eps=bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width // 2, 3, 1, 1),
            nn.BatchNorm2d(width // 2, eps=bn_eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width // 2, channels, 3, 1, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(self.project(z).view(z.shape[0], self.width, self.init, self.init))


def build(
    data: DataSpec,
    latent_dim: int = 100,
    embed_dim: int = 32,
    g_width: int = 128,
    d_width: int = 64,
    d_hidden: int = 256,
    g_bn_eps: float = 1e-5,
    d_norm: str = "batch",
) -> GANModels:
    check_choice("model.d_norm", d_norm, D_NORMS)
    if len(data.shape) == 1:
        generator = MLPGenerator(
            latent_dim, data.shape, [128, 256, 512], data.bounded, g_bn_eps, 0.1
        )
        critic: Critic = MLPAutoencoderCritic(data.shape[0], d_hidden, embed_dim, d_norm)
    elif len(data.shape) == 3 and data.shape[1] == data.shape[2] and data.shape[1] % 4 == 0:
        channels, side = data.shape[0], data.shape[1]
        generator = ConvGenerator(latent_dim, channels, side, g_width, g_bn_eps)
        critic = ConvAutoencoderCritic(channels, side, d_width, embed_dim, d_norm)
    else:
        raise ConfigError(
            f"model=ebgan needs flat vectors or square images with a side divisible by 4; "
            f"the dataset gives shape {tuple(data.shape)}."
        )
    return GANModels(generator=generator, critic=critic, latent_dim=latent_dim)
