"""What every critic returns, so losses and penalties never need to know the architecture."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass
class CriticOutput:
    """Per-sample critic result.

    `score` is the per-sample scalar every loss and penalty works on: a logit for `gan`, a
    critic value for the Wasserstein family, a loss value `L(x)` for loss-sensitive GAN and an
    energy (reconstruction error) for EBGAN. `embedding` is only set by autoencoder critics,
    because EBGAN's pulling-away term needs the encoder's code of the generated batch.
    """

    score: Tensor
    embedding: Tensor | None = None


def split_output(out: CriticOutput, parts: int) -> list[CriticOutput]:
    """Undo a batched forward over `parts` equal-sized batches."""
    scores = out.score.chunk(parts)
    if out.embedding is None:
        return [CriticOutput(s) for s in scores]
    return [CriticOutput(s, e) for s, e in zip(scores, out.embedding.chunk(parts), strict=True)]


class Critic(nn.Module):
    """Base class: subclasses implement `forward(x) -> CriticOutput`."""

    produces_embedding: bool = False


class ScoreCritic(Critic):
    """Wraps a network ending in one unit so it returns a flat `(N,)` score."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> CriticOutput:
        return CriticOutput(score=self.net(x).reshape(x.shape[0]))


@dataclass
class GANModels:
    """The generator and critic a model config builds, plus the latent size G expects."""

    generator: nn.Module
    critic: Critic
    latent_dim: int


def has_batchnorm(module: nn.Module) -> bool:
    """True when any layer normalises across the batch (which couples per-sample gradients)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def critic_norm_1d(kind: str, features: int) -> nn.Module:
    """The normalisation layer a critic's hidden vector layer gets for `model.d_norm`."""
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def critic_norm_2d(kind: str, channels: int) -> nn.Module:
    """As `critic_norm_1d` for conv features; layer norm is over (C, H, W) per sample."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def maybe_spectral(layer: nn.Module, kind: str) -> nn.Module:
    """Spectral normalisation wraps the weight layer itself rather than adding a layer."""
    if kind == "spectral":
        return nn.utils.parametrizations.spectral_norm(layer)
    return layer


D_NORMS = ("none", "batch", "layer", "spectral")


def init_weights(module: nn.Module) -> None:
    """DCGAN-style N(0, 0.02) init for conv layers; the usual default elsewhere."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
