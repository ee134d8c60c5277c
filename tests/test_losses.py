"""Every loss against values computed by hand."""

import math

import pytest
import torch

from gan_exp.errors import ConfigError
from gan_exp.losses import (
    EBGANLoss,
    HingeLoss,
    LeastSquaresLoss,
    LossSensitiveLoss,
    NonSaturatingLoss,
    WassersteinLoss,
    pulling_away,
)
from gan_exp.models.base import CriticOutput

REAL = CriticOutput(torch.tensor([1.0, -2.0]))
FAKE = CriticOutput(torch.tensor([0.5, 3.0]))
X = torch.zeros(2, 1, 2, 2)


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_non_saturating_gan():
    loss = NonSaturatingLoss()
    d = (softplus(-1.0) + softplus(2.0)) / 2 + (softplus(0.5) + softplus(3.0)) / 2
    g = (softplus(-0.5) + softplus(-3.0)) / 2
    assert loss.d_loss(REAL, FAKE, X, X).item() == pytest.approx(d, rel=1e-6)
    assert loss.g_loss(FAKE, X).item() == pytest.approx(g, rel=1e-6)


def test_wasserstein_and_its_estimate():
    loss = WassersteinLoss()
    assert loss.d_loss(REAL, FAKE, X, X).item() == pytest.approx(1.75 - (-0.5))
    assert loss.g_loss(FAKE, X).item() == pytest.approx(-1.75)
    stats = loss.stats(REAL, FAKE)
    assert stats["critic/wasserstein_estimate"].item() == pytest.approx(-0.5 - 1.75)


def test_least_squares():
    loss = LeastSquaresLoss()
    # 0.5 * (mean((1-1)^2, (-2-1)^2) + mean(0.5^2, 3^2))
    assert loss.d_loss(REAL, FAKE, X, X).item() == pytest.approx(0.5 * (4.5 + 4.625))
    assert loss.g_loss(FAKE, X).item() == pytest.approx(0.5 * (0.25 + 4.0) / 2)


def test_hinge():
    loss = HingeLoss()
    # relu(1-1)=0, relu(1+2)=3 -> 1.5 ; relu(1+0.5)=1.5, relu(1+3)=4 -> 2.75
    assert loss.d_loss(REAL, FAKE, X, X).item() == pytest.approx(4.25)
    assert loss.g_loss(FAKE, X).item() == pytest.approx(-1.75)


def test_loss_sensitive_pairs_samples_and_scales_margin():
    x_real = torch.zeros(2, 4)
    x_fake = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])
    real = CriticOutput(torch.tensor([0.0, 1.0]))
    fake = CriticOutput(torch.tensor([0.5, 0.0]))
    # l1 sums: 4 and 2; normalised by D=4: 1.0 and 0.5
    plain = LossSensitiveLoss(lam=2.0, distance="l1", scale=1.0, normalize=False, transform="none")
    slack = [max(0.0, 4 + 0.0 - 0.5), max(0.0, 2 + 1.0 - 0.0)]
    expected = 0.5 + 2.0 * sum(slack) / 2
    assert plain.d_loss(real, fake, x_real, x_fake).item() == pytest.approx(expected)
    normed = LossSensitiveLoss(lam=1.0, scale=3.0, normalize=True, transform="none")
    slack = [max(0.0, 3 * 1.0 + 0.0 - 0.5), max(0.0, 3 * 0.5 + 1.0 - 0.0)]
    assert normed.d_loss(real, fake, x_real, x_fake).item() == pytest.approx(0.5 + sum(slack) / 2)
    l2 = LossSensitiveLoss(distance="l2", normalize=False)
    assert l2.margin(x_real, x_fake).tolist() == pytest.approx([2.0, 2.0])
    # the slack is inactive once the fake loss exceeds the real loss by the margin
    far = CriticOutput(torch.tensor([10.0, 10.0]))
    assert plain.d_loss(real, far, x_real, x_fake).item() == pytest.approx(0.5)
    assert plain.g_loss(fake, x_fake).item() == pytest.approx(0.25)
    with pytest.raises(ConfigError, match="loss.distance='l3'.*l1, l2"):
        LossSensitiveLoss(distance="l3")
    with pytest.raises(ConfigError, match="loss.transform='exp'.*softplus, abs, none"):
        LossSensitiveLoss(transform="exp")


def test_loss_sensitive_default_keeps_the_loss_nonnegative():
    loss = LossSensitiveLoss(lam=1.0, normalize=False)  # transform=softplus
    x_real, x_fake = torch.zeros(2, 1), torch.tensor([[1.0], [0.0]])
    real = CriticOutput(torch.tensor([-1.0, 2.0]))
    fake = CriticOutput(torch.tensor([0.0, -3.0]))
    lr = [softplus(-1.0), softplus(2.0)]
    lf = [softplus(0.0), softplus(-3.0)]
    slack = [max(0.0, 1.0 + lr[0] - lf[0]), max(0.0, 0.0 + lr[1] - lf[1])]
    expected = sum(lr) / 2 + sum(slack) / 2
    assert loss.d_loss(real, fake, x_real, x_fake).item() == pytest.approx(expected, rel=1e-6)
    assert loss.g_loss(fake, x_fake).item() == pytest.approx(sum(lf) / 2, rel=1e-6)

    # a constant shift of the critic cannot lower the objective without bound any more
    def shifted(transform: str, c: float) -> float:
        ls = LossSensitiveLoss(normalize=False, transform=transform)
        return ls.d_loss(
            CriticOutput(real.score - c), CriticOutput(fake.score - c), x_real, x_fake
        ).item()

    assert min(shifted("softplus", c) for c in (0.0, 10.0, 1e3)) >= 0
    assert shifted("none", 1e3) < -900  # the raw output drifts


def test_loss_sensitive_without_the_real_term_is_the_authors_hinge_and_shift_invariant():
    # real_weight=0: lsgan-gp.py's objective, lam * mean relu(Delta + L(x) - L(x~)) alone
    x_real, x_fake = torch.zeros(2, 1), torch.tensor([[1.0], [0.0]])
    real, fake = torch.tensor([-1.0, 2.0]), torch.tensor([0.0, -3.0])
    hinge = LossSensitiveLoss(lam=2.0, normalize=False, transform="none", real_weight=0.0)
    slack = [max(0.0, 1.0 - 1.0 - 0.0), max(0.0, 0.0 + 2.0 + 3.0)]
    for c in (0.0, 7.0, -1e3):  # a shift of every value of L changes nothing
        got = hinge.d_loss(CriticOutput(real + c), CriticOutput(fake + c), x_real, x_fake)
        assert got.item() == pytest.approx(2.0 * sum(slack) / 2)
    paper = LossSensitiveLoss(lam=2.0, normalize=False, transform="none")
    assert paper.d_loss(CriticOutput(real), CriticOutput(fake), x_real, x_fake).item() == (
        pytest.approx(0.5 + 2.0 * sum(slack) / 2))


def test_ebgan_hinge_per_sample_vs_batch_mean():
    real = CriticOutput(torch.tensor([0.2, 0.4]))
    emb = torch.eye(2)
    fake = CriticOutput(torch.tensor([0.5, 1.5]), embedding=emb)
    per_sample = EBGANLoss(batch_size=64)
    assert per_sample.margin == 1.0
    # 0.3 + mean(relu(1 - 0.5), relu(1 - 1.5)) = 0.3 + 0.25
    assert per_sample.d_loss(real, fake, X, X).item() == pytest.approx(0.55)
    batch_mean = EBGANLoss(batch_size=64, hinge="batch_mean")
    assert batch_mean.d_loss(real, fake, X, X).item() == pytest.approx(0.3)  # relu(1 - 1.0)
    # G: mean energy + 0.1 * PT(orthogonal) = 1.0 + 0
    assert per_sample.g_loss(fake, X).item() == pytest.approx(1.0)


def test_ebgan_default_margin_follows_batch_size():
    assert EBGANLoss(batch_size=32).margin == 1.0
    assert EBGANLoss(batch_size=256).margin == 4.0
    assert EBGANLoss(batch_size=256, margin=2.5).margin == 2.5
    with pytest.raises(ConfigError, match="loss.hinge"):
        EBGANLoss(batch_size=64, hinge="mean")


def test_pulling_away_known_cases():
    same = torch.ones(5, 3)
    assert pulling_away(same).item() == pytest.approx(1.0)
    assert pulling_away(torch.eye(4) * 3.0).item() == pytest.approx(0.0, abs=1e-7)
    # e1, e1, e2: ordered pairs i != j with cos^2 = 1 are (0,1), (1,0): 2 of 6
    mixed = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    assert pulling_away(mixed).item() == pytest.approx(2 / 6)
    # cos(45 deg)^2 = 0.5 for both ordered pairs
    assert pulling_away(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(0.5)


def test_generator_losses_send_gradient_into_the_fake_scores():
    for loss in (NonSaturatingLoss(), WassersteinLoss(), LeastSquaresLoss(), HingeLoss()):
        score = torch.tensor([0.3, -0.7], requires_grad=True)
        loss.g_loss(CriticOutput(score), X).backward()
        assert score.grad is not None and score.grad.abs().sum() > 0
