"""Penalties on a linear critic D(x) = w.x + b, whose input gradient is w everywhere."""

import pytest
import torch
from torch import nn

from gan_exp.errors import ConfigError
from gan_exp.models.base import Critic, CriticOutput
from gan_exp.penalties import (
    DraganPenalty,
    GradientPenalty,
    NoPenalty,
    RealGradPenalty,
    WeightClip,
)


class LinearCritic(Critic):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(w.numel(), 1)
        with torch.no_grad():
            self.lin.weight.copy_(w.reshape(1, -1))
            self.lin.bias.fill_(0.3)

    def forward(self, x):
        return CriticOutput(self.lin(x.flatten(1)).flatten())


W = torch.tensor([3.0, 0.0, 4.0, 0.0])  # |w| = 5
# fixed inputs (not the global random stream, which earlier tests move), with real and fake
# 0.5-1.5 apart in every pixel so that the mixing weight eps = (xh - x~) / (x - x~) is well
# conditioned
_g = torch.Generator().manual_seed(0)
x_real = torch.randn(8, 1, 2, 2, generator=_g)
x_fake = x_real + 0.5 + torch.rand(8, 1, 2, 2, generator=_g)


@pytest.mark.parametrize("lam,k", [(10.0, 1.0), (2.0, 5.0), (1.0, 0.0)])
def test_gp_is_exact_on_a_linear_critic(lam, k):
    gp = GradientPenalty(lam=lam, k=k)(LinearCritic(W), x_real, x_fake)
    assert gp.item() == pytest.approx(lam * (5.0 - k) ** 2, rel=1e-5)


@pytest.mark.parametrize("perturbation", ["authors", "gaussian", "symmetric"])
def test_dragan_is_exact_on_a_linear_critic(perturbation):
    pen = DraganPenalty(lam=10.0, k=1.0, perturbation=perturbation)
    assert pen(LinearCritic(W), x_real, x_fake).item() == pytest.approx(10 * 16.0, rel=1e-5)


def test_real_grad_is_gamma_times_squared_norm():
    assert RealGradPenalty(gamma=0.5)(LinearCritic(W), x_real, x_fake).item() == pytest.approx(
        0.5 * 25.0, rel=1e-5
    )


def test_gp_gradient_reaches_critic_weights():
    critic = LinearCritic(W)
    GradientPenalty(lam=10.0, k=1.0)(critic, x_real, x_fake).backward()
    # d/dw lam (|w| - k)^2 = 2 lam (|w| - k) w / |w|
    expected = 2 * 10.0 * (5.0 - 1.0) * W / 5.0
    assert torch.allclose(critic.lin.weight.grad.flatten(), expected, rtol=1e-5)


class Recorder(Critic):
    """Records the inputs a penalty evaluates the critic on."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return CriticOutput(self.lin(x.flatten(1)).flatten())


def test_gp_uses_one_mixing_weight_per_sample():
    rec = Recorder()
    GradientPenalty()(rec, x_real, x_fake)
    x_hat = rec.seen[0]
    eps = (x_hat - x_fake) / (x_real - x_fake)
    per_sample = eps.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-4)
    assert ((per_sample >= 0) & (per_sample <= 1)).all()
    assert per_sample[:, 0].std() > 0  # not one weight for the whole batch


def test_dragan_perturbs_only_the_real_batch():
    torch.manual_seed(0)
    x = torch.randn(256, 1, 2, 2)
    std = x.std()
    for name, check in {
        "authors": lambda d: (d >= -1e-6).all() and (d <= 0.5 * std + 1e-6).all(),
        "symmetric": lambda d: (d.abs() <= 0.5 * std + 1e-6).all(),
        "gaussian": lambda d: abs(d.std().item() - 10**0.5) < 0.3,
    }.items():
        rec = Recorder()
        DraganPenalty(perturbation=name)(rec, x, torch.full_like(x, 100.0))
        assert check(rec.seen[0] - x), name


def test_clip_keeps_every_parameter_in_range():
    critic = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.Linear(16, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(100)
    clip = WeightClip(c=0.01)
    assert clip(critic, x_real, x_fake) is None
    clip.after_d_step(critic)
    for p in critic.parameters():
        assert p.abs().max() <= 0.01 + 1e-9
    small = nn.Linear(2, 1)
    with torch.no_grad():
        small.weight.copy_(torch.tensor([[0.005, -0.002]]))
    before = small.weight.detach().clone()
    clip.after_d_step(small)
    assert torch.equal(small.weight, before)


def test_none_adds_nothing():
    assert NoPenalty()(LinearCritic(W), x_real, x_fake) is None


def test_bad_options_name_the_key():
    with pytest.raises(
        ConfigError, match="penalty.perturbation='paper'.*authors, gaussian, symmetric"
    ):
        DraganPenalty(perturbation="paper")
    with pytest.raises(ConfigError, match="penalty.c"):
        WeightClip(c=0.0)
