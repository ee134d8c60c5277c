"""PacGAN's synthetic-data pair (Lin et al. 2018), for the 2-D ring and grid: `model=toy_mlp`.

From the authors' repository (github.com/fjxmlzn/PacGAN, `synthetic_data_experiments/`):
- generator: z (2-d Gaussian) -> 4 x [Linear (no bias) -> BatchNorm -> ReLU] of 400 units
  -> Linear (with bias) -> 2, no output non-linearity;
- discriminator: 3 maxout layers (5 pieces) of 200 units -> Linear -> 1 logit;
- every weight drawn from N(0, 0.02), biases zero; BatchNorm's running statistics move by 0.05
  per step and its epsilon is 1e-4 (the Blocks library's values).

A maxout critic has no batch-coupled layer, so every gradient penalty composes with it. For
EBGAN (`model.critic=autoencoder`) the critic is an MLP autoencoder whose energy is the
per-sample reconstruction error, as in `models/ebgan.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError, check_choice
from gan_exp.models.base import (
    D_NORMS,
    Critic,
    GANModels,
    ScoreCritic,
    critic_norm_1d,
    maybe_spectral,
)
from gan_exp.models.ebgan import MLPAutoencoderCritic

CRITICS = ("auto", "maxout", "autoencoder")


class Maxout(nn.Module):
    """Linear to `out * pieces` units, then the max over each unit's `pieces` (Goodfellow 2013)."""

    def __init__(self, in_dim: int, out_dim: int, pieces: int, d_norm: str) -> None:
        super().__init__()
        self.out_dim, self.pieces = out_dim, pieces
        self.linear = maybe_spectral(nn.Linear(in_dim, out_dim * pieces), d_norm)

    def forward(self, x: Tensor) -> Tensor:
        # max(dim).values, not amax: the same values and gradients (ties have measure zero),
        # but amax's backward builds, counts and divides by a tie mask, which slows the double
        # backward of a gradient penalty (docs/performance.md).
        return self.linear(x).view(x.shape[0], self.out_dim, self.pieces).max(dim=2).values


class ToyGenerator(nn.Module):
    """z -> [Linear (no bias) -> BatchNorm -> ReLU] per hidden width -> Linear -> data dims."""

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        hidden: Sequence[int],
        bn_eps: float,
        bn_momentum: float,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = latent_dim
        for width in hidden:
            layers += [
                nn.Linear(prev, width, bias=False),
                nn.BatchNorm1d(width, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(inplace=True),
            ]
            prev = width
        layers.append(nn.Linear(prev, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def maxout_critic_net(in_dim: int, hidden: Sequence[int], pieces: int, d_norm: str) -> nn.Module:
    layers: list[nn.Module] = []
    prev = in_dim
    for i, width in enumerate(hidden):
        layers.append(Maxout(prev, width, pieces, d_norm))
        if i > 0:
            layers.append(critic_norm_1d(d_norm, width))
        prev = width
    layers.append(maybe_spectral(nn.Linear(prev, 1), d_norm))
    return nn.Sequential(*layers)


def _init_normal(module: nn.Module, std: float) -> None:
    """Every Linear weight from N(0, std), biases zero (PacGAN's IsotropicGaussian(0.02))."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            spectral = hasattr(m, "parametrizations")
            weight = m.parametrizations.weight.original if spectral else m.weight
            nn.init.normal_(weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build(
    data: DataSpec,
    latent_dim: int = 2,
    g_hidden: Sequence[int] = (400, 400, 400, 400),
    d_hidden: Sequence[int] = (200, 200, 200),
    maxout_pieces: int = 5,
    init_std: float = 0.02,
    g_bn_eps: float = 1e-4,
    g_bn_momentum: float = 0.05,
    d_norm: str = "none",
    critic: str = "auto",
    embed_dim: int = 2,
) -> GANModels:
    check_choice("model.d_norm", d_norm, D_NORMS)
    check_choice("model.critic", critic, CRITICS)
    if len(data.shape) != 1:
        raise ConfigError(
            f"model=toy_mlp is for flat data (the 2-D toys); the dataset gives shape "
            f"{tuple(data.shape)}. Use model=mlp, dcgan or ebgan for images."
        )
    dim = data.shape[0]
    generator = ToyGenerator(latent_dim, dim, list(g_hidden), g_bn_eps, g_bn_momentum)
    net: Critic
    if critic in ("auto", "maxout"):  # the trainer resolves auto from the loss
        net = ScoreCritic(maxout_critic_net(dim, list(d_hidden), maxout_pieces, d_norm))
    else:
        net = MLPAutoencoderCritic(dim, list(d_hidden)[0], embed_dim, d_norm)
    if init_std > 0:
        _init_normal(generator, init_std)
        _init_normal(net, init_std)
    return GANModels(generator=generator, critic=net, latent_dim=latent_dim)
