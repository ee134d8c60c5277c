"""Lipschitz penalties and constraints on the critic: the `penalty` config group.

A penalty is called once per critic step with `(critic, x_real, x_fake)` and returns a term
added to the critic's loss; `after_d_step` is where hard constraints (weight clipping) act.
They know nothing about the loss, so `loss=gan penalty=dragan` (the DRAGAN paper) and
`loss=wgan penalty=gp` (WGAN-GP) are both just compositions.

A gradient penalty is two pieces: `points(x_real, x_fake)`, where the critic's input gradient
is taken, and `from_grad_norm(norms)`, the term from the per-sample gradient norms there;
`__call__` joins them with a critic forward of its own: sent through the same forward as the
real and fake batch, the input-gradient backward would also run over the real and fake rows.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from gan_exp.errors import check_choice
from gan_exp.models.base import Critic
from gan_exp.validation import check_value


def input_grad_norm(critic: Critic, x: Tensor) -> Tensor:
    """Per-sample L2 norm of dD/dx at the points `x` over all non-batch dims, differentiable.

    The batch sum of scores has, for each sample, exactly that sample's gradient (as long as
    the critic has no batch-coupled layers, which the trainer checks).
    """
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(outputs=critic(x).score.sum(), inputs=x, create_graph=True)
    return grad.reshape(grad.shape[0], -1).norm(2, dim=1)


class Penalty:
    """No penalty; the base of the others."""

    # True when the term uses per-sample input gradients (meaningless with BatchNorm critics).
    per_sample_gradients: ClassVar[bool] = False

    def points(self, x_real: Tensor, x_fake: Tensor) -> Tensor | None:
        """Where the input gradient is taken; None for penalties that need none."""
        return None

    def from_grad_norm(self, norms: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, critic: Critic, x_real: Tensor, x_fake: Tensor) -> Tensor | None:
        points = self.points(x_real, x_fake)
        if points is None:
            return None
        return self.from_grad_norm(input_grad_norm(critic, points))

    def after_d_step(self, critic: Critic) -> None:
        return None


class NoPenalty(Penalty):
    """`penalty=none`: the loss alone."""


class WeightClip(Penalty):
    """`penalty=clip` (WGAN): clamp every critic parameter to [-c, c] after each D step."""

    def __init__(self, c: float = 0.01) -> None:
        check_value("penalty.c", c)
        self.c = c

    @torch.no_grad()
    def after_d_step(self, critic: Critic) -> None:
        params = list(critic.parameters())
        if hasattr(torch, "_foreach_clamp_min_"):
            torch._foreach_clamp_min_(params, -self.c)
            torch._foreach_clamp_max_(params, self.c)
        else:  # pragma: no cover - older torch
            for p in params:
                p.clamp_(-self.c, self.c)


def _per_sample_uniform(x: Tensor) -> Tensor:
    """One U(0, 1) draw per sample of `x`, shaped to broadcast over the sample's other dims."""
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return torch.rand(shape, device=x.device, dtype=x.dtype)


class GradientPenalty(Penalty):
    """`penalty=gp` (WGAN-GP): lam * E[(|grad D(xh)| - k)^2] on real/fake interpolates.

    One mixing weight per sample, broadcast over its pixels (not one per pixel, not one per
    batch).
    """

    per_sample_gradients = True

    def __init__(self, lam: float = 10.0, k: float = 1.0) -> None:
        self.lam, self.k = lam, k

    def points(self, x_real, x_fake):
        eps = _per_sample_uniform(x_real)
        return eps * x_real.detach() + (1.0 - eps) * x_fake.detach()

    def from_grad_norm(self, norms):
        return self.lam * (norms - self.k).pow(2).mean()


def _perturb_authors(x: Tensor, c: float) -> Tensor:
    """DRAGAN authors' code / StudioGAN: a x + (1 - a)(x + 0.5 std(x) u), a per sample."""
    a = _per_sample_uniform(x)
    noisy = x + 0.5 * x.std() * torch.rand_like(x)
    return a * x + (1.0 - a) * noisy


def _perturb_gaussian(x: Tensor, c: float) -> Tensor:
    """The paper: x + sqrt(c) * N(0, I)."""
    return x + c**0.5 * torch.randn_like(x)


def _perturb_symmetric(x: Tensor, c: float) -> Tensor:
    """compare_gan: x + std(x) * (u - 0.5)."""
    return x + x.std() * (torch.rand_like(x) - 0.5)


PERTURBATIONS = {
    "authors": _perturb_authors,
    "gaussian": _perturb_gaussian,
    "symmetric": _perturb_symmetric,
}


class DraganPenalty(GradientPenalty):
    """`penalty=dragan` (Kodali 2017): lam * E[(|grad D(xp)| - k)^2], xp near the real batch only.

    WGAN-GP's term, taken at other points. `perturbation` picks the published form; `c` is the
    noise variance of the `gaussian` form.
    """

    def __init__(
        self, lam: float = 10.0, k: float = 1.0, perturbation: str = "authors", c: float = 10.0
    ) -> None:
        check_choice("penalty.perturbation", perturbation, PERTURBATIONS)
        super().__init__(lam, k)
        self.c = c
        self.perturb = PERTURBATIONS[perturbation]

    def points(self, x_real, x_fake):
        return self.perturb(x_real.detach(), self.c)


class RealGradPenalty(Penalty):
    """`penalty=real_grad`: gamma * E[|grad D(x)|^2] on real data, zero-centred.

    Qi 2017's loss-sensitive regulariser; the same form as R1 (whose usual gamma/2 factor is
    folded into gamma here).
    """

    per_sample_gradients = True

    def __init__(self, gamma: float = 1.0) -> None:
        self.gamma = gamma

    def points(self, x_real, x_fake):
        return x_real.detach()

    def from_grad_norm(self, norms):
        return self.gamma * norms.pow(2).mean()
