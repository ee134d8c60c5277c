"""The critics' masked (leaky) ReLUs: bitwise the same maths as torch's, with a shorter
second-order graph."""

import copy

import pytest
import torch
from torch import nn

from gan_exp.data.base import DataSpec
from gan_exp.models import dcgan, ebgan, mlp
from gan_exp.models.activations import LeakyReLU, ReLU, stock_activations
from gan_exp.penalties import GradientPenalty

DIGITS = DataSpec((1, 28, 28), bounded=True)

CRITICS = {
    "mlp": lambda: mlp.build(DIGITS).critic,
    "dcgan": lambda: dcgan.build(DIGITS, d_width=8).critic,
    "ebgan": lambda: ebgan.build(DIGITS, g_width=16, d_width=8).critic,
}


def wgan_gp_grads(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor):
    """Critic loss, penalty and weight gradients of one WGAN-GP critic step."""
    torch.manual_seed(1)
    penalty = GradientPenalty(lam=10.0)(critic, real, fake)
    total = critic(fake).score.mean() - critic(real).score.mean() + penalty
    grads = torch.autograd.grad(total, list(critic.parameters()))
    return total.detach(), penalty.detach(), grads


@pytest.mark.parametrize("name", sorted(CRITICS))
def test_critic_step_is_bitwise_equal_to_stock_activations(name):
    torch.manual_seed(0)
    critic = CRITICS[name]()
    assert any(isinstance(m, (LeakyReLU, ReLU)) for m in critic.modules())
    stock = stock_activations(copy.deepcopy(critic))
    assert not any(isinstance(m, (LeakyReLU, ReLU)) for m in stock.modules())
    real, fake = torch.rand(8, 1, 28, 28) * 2 - 1, torch.randn(8, 1, 28, 28)
    ours, theirs = wgan_gp_grads(critic, real, fake), wgan_gp_grads(stock, real, fake)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
    for a, b in zip(ours[2], theirs[2], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("module,stock", [(LeakyReLU(0.2), nn.LeakyReLU(0.2)), (ReLU(), nn.ReLU())])
def test_values_and_derivatives_match_at_every_sign(module, stock):
    x = torch.tensor([-2.0, -0.0, 0.0, 3.0], requires_grad=True)
    ours, theirs = module(x), stock(x)
    assert torch.equal(ours, theirs)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
    assert torch.equal(g_ours, g_theirs)
    with torch.no_grad():
        assert torch.equal(module(x), stock(x))


def count_matmuls(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> int:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        wgan_gp_grads(critic, real, fake)
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm"))


def test_penalty_second_pass_skips_the_zero_products():
    """Stock activations send zeros back through the penalty points' forward: for PyTorch-GAN's
    3-layer MLP critic that is 3 extra weight-gradient products (and more for the inputs)."""
    torch.manual_seed(0)
    critic = mlp.build(DIGITS).critic
    stock = stock_activations(copy.deepcopy(critic))
    real, fake = torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28)
    assert count_matmuls(critic, real, fake) <= count_matmuls(stock, real, fake) - 3
