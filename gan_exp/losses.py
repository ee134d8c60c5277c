"""Adversarial losses: what the critic and the generator minimise, from critic outputs.

Each loss is a small object built from the `loss` config group. `d_loss` sees the critic's
outputs on a real and a (detached) generated batch; `g_loss` sees the critic's output on a
generated batch that still carries gradients into G. Nothing here knows about penalties,
optimisers or the loop, so any loss composes with any penalty (`gan_exp.penalties`).
Each loss is its paper's objective; expectations are batch means.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_exp.errors import ConfigError, check_choice
from gan_exp.models.base import CriticOutput


class GANLoss:
    """Base: subclasses implement `d_loss` and `g_loss`."""

    requires_embedding: ClassVar[bool] = False

    def d_loss(
        self, real: CriticOutput, fake: CriticOutput, x_real: Tensor, x_fake: Tensor
    ) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake: CriticOutput, x_fake: Tensor) -> Tensor:
        raise NotImplementedError

    def stats(self, real: CriticOutput, fake: CriticOutput) -> dict[str, Tensor]:
        """Detached scalars worth logging from one critic step (no host sync here)."""
        return {
            "critic/real": real.score.detach().mean(),
            "critic/fake": fake.score.detach().mean(),
        }


class NonSaturatingLoss(GANLoss):
    """Goodfellow 2014 with the non-saturating G loss; scores are logits (no sigmoid layer)."""

    def d_loss(self, real, fake, x_real, x_fake):
        return F.softplus(-real.score).mean() + F.softplus(fake.score).mean()

    def g_loss(self, fake, x_fake):
        return F.softplus(-fake.score).mean()


class WassersteinLoss(GANLoss):
    """Arjovsky 2017: D minimises D(x~) - D(x), G minimises -D(x~).

    Used by `wgan`, `wgan_gp` and `dragan`; they differ only in the Lipschitz penalty and
    optimiser, which their config presets choose.
    """

    def d_loss(self, real, fake, x_real, x_fake):
        return fake.score.mean() - real.score.mean()

    def g_loss(self, fake, x_fake):
        return -fake.score.mean()

    def stats(self, real, fake):
        out = super().stats(real, fake)
        out["critic/wasserstein_estimate"] = out["critic/real"] - out["critic/fake"]
        return out


class LeastSquaresLoss(GANLoss):
    """Mao 2017, the (a, b, c) form: D to b on real and a on fake; G pushes fakes to c."""

    def __init__(self, a: float = 0.0, b: float = 1.0, c: float = 1.0) -> None:
        self.a, self.b, self.c = a, b, c

    def d_loss(self, real, fake, x_real, x_fake):
        return 0.5 * ((real.score - self.b).pow(2).mean() + (fake.score - self.a).pow(2).mean())

    def g_loss(self, fake, x_fake):
        return 0.5 * (fake.score - self.c).pow(2).mean()


class HingeLoss(GANLoss):
    """Lim 2017 / Miyato 2018: D hinge at +-1, G minimises -D(x~)."""

    def d_loss(self, real, fake, x_real, x_fake):
        return F.relu(1.0 - real.score).mean() + F.relu(1.0 + fake.score).mean()

    def g_loss(self, fake, x_fake):
        return -fake.score.mean()


class LossSensitiveLoss(GANLoss):
    """Qi 2017: L(x) + lam * relu(Delta(x, x~) + L(x) - L(x~)), pairs i with i.

    `Delta = scale * ||x_i - x~_i||_p` over all non-batch dims, p = 1 (`l1`) or 2 (`l2`).
    With `normalize` the norm is divided by D (l1) or sqrt(D) (l2), i.e. the mean absolute
    difference or the RMS difference, so the margin does not grow with image resolution.

    `L = transform(critic score)`. The objective's derivative with respect to a constant
    shift of L is exactly `real_weight` (1 in the paper), so with a raw critic output
    (`transform=none`) the critic can lower every loss value forever and training drifts
    without bound; the paper's analysis treats L as a nonnegative loss, which `softplus`
    (default) or `abs` enforce. `real_weight=0` drops the `E[L(x)]` term, as the authors' own
    PyTorch code does (github.com/maple-research-lab/glsgan-gp, `lsgan-gp.py`: only the hinge,
    a raw L and a gradient penalty that keeps L Lipschitz): the objective is then unchanged by
    a shift of L and a raw L does not drift.
    """

    DISTANCES = ("l1", "l2")
    TRANSFORMS = {"softplus": F.softplus, "abs": torch.abs, "none": lambda t: t}

    def __init__(
        self,
        lam: float = 1.0,
        distance: str = "l1",
        scale: float = 1.0,
        normalize: bool = True,
        transform: str = "softplus",
        real_weight: float = 1.0,
    ) -> None:
        check_choice("loss.distance", distance, self.DISTANCES)
        check_choice("loss.transform", transform, self.TRANSFORMS)
        self.lam, self.distance, self.scale, self.normalize = lam, distance, scale, normalize
        self.transform = self.TRANSFORMS[transform]
        self.real_weight = real_weight

    def margin(self, x_real: Tensor, x_fake: Tensor) -> Tensor:
        diff = (x_real - x_fake).reshape(x_real.shape[0], -1)
        p = 1 if self.distance == "l1" else 2
        dist = torch.linalg.vector_norm(diff, ord=p, dim=1)
        if self.normalize:
            dist = dist / diff.shape[1] ** (1.0 / p)
        return self.scale * dist

    def d_loss(self, real, fake, x_real, x_fake):
        l_real, l_fake = self.transform(real.score), self.transform(fake.score)
        slack = F.relu(self.margin(x_real, x_fake) + l_real - l_fake)
        return self.real_weight * l_real.mean() + self.lam * slack.mean()

    def g_loss(self, fake, x_fake):
        return self.transform(fake.score).mean()


def pulling_away(embedding: Tensor) -> Tensor:
    """EBGAN's PT: mean squared cosine similarity over ordered pairs i != j.

    PyTorch-GAN's ebgan.py forgets both the square and the exclusion of the diagonal.
    """
    n = embedding.shape[0]
    if n < 2:
        raise ConfigError("loss=ebgan's pulling-away term needs train.batch_size >= 2")
    unit = F.normalize(embedding.reshape(n, -1), dim=1)
    cos2 = (unit @ unit.T).pow(2)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


class EBGANLoss(GANLoss):
    """Zhao 2017: D: E(x) + relu(m - E(x~)); G: E(x~) + lam_pt * PT(S~).

    `hinge="per_sample"` (the paper) applies the margin to each sample's energy before
    averaging; `"batch_mean"` reproduces PyTorch-GAN's ebgan.py, which clamps the batch-mean energy.
    `margin=None` uses PyTorch-GAN's `max(1, batch_size / 64)`.
    """

    requires_embedding = True
    HINGES = ("per_sample", "batch_mean")

    def __init__(
        self,
        batch_size: int,
        margin: float | None = None,
        lam_pt: float = 0.1,
        hinge: str = "per_sample",
    ) -> None:
        check_choice("loss.hinge", hinge, self.HINGES)
        self.margin = float(max(1.0, batch_size / 64.0)) if margin is None else float(margin)
        self.lam_pt, self.hinge = lam_pt, hinge

    def d_loss(self, real, fake, x_real, x_fake):
        if self.hinge == "per_sample":
            fake_term = F.relu(self.margin - fake.score).mean()
        else:
            fake_term = F.relu(self.margin - fake.score.mean())
        return real.score.mean() + fake_term

    def g_loss(self, fake, x_fake):
        assert fake.embedding is not None
        return fake.score.mean() + self.lam_pt * pulling_away(fake.embedding)

    def stats(self, real, fake):
        out = super().stats(real, fake)
        if fake.embedding is not None:
            out["loss/pulling_away"] = pulling_away(fake.embedding.detach())
        return out
