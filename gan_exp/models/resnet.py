"""The papers' residual GANs for 32-64 px images: `model=resnet_wgan_gp`, `sngan_32`,
`sngan_48`, `sngan_64`.

- `resnet_wgan_gp`: the CIFAR-10 ResNet of WGAN-GP (Gulrajani et al. 2017,
  gan_cifar_resnet.py in github.com/igul222/improved_wgan_training), unconditional: G 128 ch
  from 4x4 through three up-blocks (nearest upsampling, as its depth_to_space of four copies);
  critic an optimised down-block, a down-block and two plain blocks of 128 ch, mean pooled,
  no normalisation (a gradient penalty needs per-sample gradients; `d_norm=layer` is its
  layer-norm option).
- `sngan_32`, `sngan_48`, `sngan_64`: SNGAN's ResNets (Miyato et al. 2018) as mimicry
  (github.com/kwotsin/mimicry, nets/sngan) and StudioGAN write them: bilinear upsampling,
  spectral norm on every critic layer, global sum pooling; 32 px G 256 ch / D 128 ch, 48 px
  from 6x6 with G 512 and D 1024 ch, 64 px with G 1024 and D 1024 ch (halving / doubling).

Blocks follow both references: G block BN-ReLU-(upsample)-conv3-BN-ReLU-conv3 with an upsampled
1x1 shortcut; critic block ReLU-conv3-ReLU-conv3-(avgpool) with a 1x1 shortcut when the shape
changes; the critic's first block convolves before its ReLU and pools before its shortcut.
Weights are initialised as in mimicry (Xavier uniform, gain sqrt 2 inside blocks, 1 elsewhere).
`g_width` / `d_width` scale every layer's channels (the figures above are the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError, check_choice
from gan_exp.models.base import GANModels, ScoreCritic, critic_norm_2d, maybe_spectral


@dataclass(frozen=True)
class Arch:
    """A residual pair: G starts at `bottom` x `bottom` and doubles per entry of `g_channels`
    (channel multiples of g_width); the critic's blocks are (multiple of d_width, downsample)."""

    bottom: int
    g_start: float
    g_channels: tuple[float, ...]
    d_blocks: tuple[tuple[float, bool], ...]
    upsample: str
    pooling: str


ARCHS = {
    "resnet_wgan_gp": Arch(4, 1, (1, 1, 1), ((1, True), (1, True), (1, False), (1, False)),
                           "nearest", "mean"),
    "sngan_32": Arch(4, 1, (1, 1, 1), ((1, True), (1, True), (1, False), (1, False)),
                     "bilinear", "sum"),
    "sngan_48": Arch(6, 1, (1 / 2, 1 / 4, 1 / 8),
                     ((1 / 16, True), (1 / 8, True), (1 / 4, True), (1 / 2, True), (1, False)),
                     "bilinear", "sum"),
    "sngan_64": Arch(4, 1, (1 / 2, 1 / 4, 1 / 8, 1 / 16),
                     ((1 / 16, True), (1 / 8, True), (1 / 4, True), (1 / 2, True), (1, True)),
                     "bilinear", "sum"),
}
D_NORMS = ("none", "layer", "spectral")  # batch norm would couple a penalty's samples


def _xavier(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    return layer


class GBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, upsample: str) -> None:
        super().__init__()
        self.mode = upsample
        self.b1, self.b2 = nn.BatchNorm2d(c_in), nn.BatchNorm2d(c_out)
        self.c1 = _xavier(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        self.c2 = _xavier(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        self.c_sc = _xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0)

    def up(self, x: Tensor) -> Tensor:
        if self.mode == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(self.up(F.relu(self.b1(x))))
        h = self.c2(F.relu(self.b2(h)))
        return h + self.c_sc(self.up(x))


class DBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, down: bool, d_norm: str, first: bool) -> None:
        super().__init__()
        self.down, self.first = down, first
        hidden = c_out if first else c_in
        self.c1 = maybe_spectral(_xavier(nn.Conv2d(c_in, hidden, 3, 1, 1), math.sqrt(2)), d_norm)
        self.c2 = maybe_spectral(_xavier(nn.Conv2d(hidden, c_out, 3, 1, 1), math.sqrt(2)),
                                 d_norm)
        # layer norm before each ReLU of a non-first block (WGAN-GP's NORMALIZATION_D option)
        norm = d_norm if d_norm == "layer" and not first else "none"
        self.n1, self.n2 = critic_norm_2d(norm, c_in), critic_norm_2d(norm, hidden)
        self.learnable = first or down or c_in != c_out
        if self.learnable:
            self.c_sc = maybe_spectral(_xavier(nn.Conv2d(c_in, c_out, 1, 1, 0), 1.0), d_norm)

    def forward(self, x: Tensor) -> Tensor:
        if self.first:
            h = self.c2(F.relu(self.c1(x)))
        else:
            h = self.c2(F.relu(self.n2(self.c1(F.relu(self.n1(x))))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if not self.learnable:
            return h + x
        if self.first:  # pool, then the 1x1 conv
            return h + self.c_sc(F.avg_pool2d(x, 2))
        sc = self.c_sc(x)
        return h + (F.avg_pool2d(sc, 2) if self.down else sc)


class ResNetGenerator(nn.Module):
    def __init__(self, arch: Arch, latent_dim: int, width: int, channels: int) -> None:
        super().__init__()
        self.bottom = arch.bottom
        widths = [int(width * arch.g_start), *(int(width * m) for m in arch.g_channels)]
        self.start = widths[0]
        self.l1 = _xavier(nn.Linear(latent_dim, arch.bottom**2 * widths[0]), 1.0)
        self.blocks = nn.Sequential(*(GBlock(a, b, arch.upsample)
                                      for a, b in zip(widths, widths[1:], strict=False)))
        self.b_out = nn.BatchNorm2d(widths[-1])
        self.c_out = _xavier(nn.Conv2d(widths[-1], channels, 3, 1, 1), 1.0)

    def forward(self, z: Tensor) -> Tensor:
        h = self.l1(z).view(z.shape[0], self.start, self.bottom, self.bottom)
        h = self.blocks(h)
        return torch.tanh(self.c_out(F.relu(self.b_out(h))))


class ResNetCriticNet(nn.Module):
    def __init__(self, arch: Arch, width: int, channels: int, d_norm: str) -> None:
        super().__init__()
        blocks, c_in = [], channels
        for i, (mult, down) in enumerate(arch.d_blocks):
            c_out = int(width * mult)
            blocks.append(DBlock(c_in, c_out, down, d_norm, first=i == 0))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pooling = arch.pooling
        self.out = maybe_spectral(_xavier(nn.Linear(c_in, 1), 1.0), d_norm)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.blocks(x))
        h = h.sum(dim=(2, 3)) if self.pooling == "sum" else h.mean(dim=(2, 3))
        return self.out(h)


DEFAULT_NORM = {"resnet_wgan_gp": "none", "sngan_32": "spectral", "sngan_48": "spectral",
                "sngan_64": "spectral"}


def build(data: DataSpec, arch: str, latent_dim: int = 128, g_width: int = 128,
          d_width: int = 128, d_norm: str | None = None) -> GANModels:
    """The residual pair `arch` (one of ARCHS) for `data`'s channels and side."""
    check_choice("model.arch", arch, tuple(ARCHS))
    spec = ARCHS[arch]
    d_norm = d_norm or DEFAULT_NORM[arch]
    check_choice("model.d_norm", d_norm, D_NORMS)
    side = spec.bottom * 2 ** len(spec.g_channels)
    shape = tuple(data.shape)
    if len(shape) != 3 or shape[1:] != (side, side):
        raise ConfigError(
            f"model={arch} makes {side}x{side} images; the dataset gives shape {shape}. "
            "Pick the architecture for its side (resnet_wgan_gp, sngan_32: 32; sngan_48: 48; "
            "sngan_64: 64), e.g. dataset=cifar10 or an image_folder at that size"
        )
    generator = ResNetGenerator(spec, latent_dim, g_width, shape[0])
    critic = ScoreCritic(ResNetCriticNet(spec, d_width, shape[0], d_norm))
    return GANModels(generator=generator, critic=critic, latent_dim=latent_dim)
