"""Every architecture builds for the data shapes it claims and refuses the ones it can't take."""

import pytest
import torch

from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError
from gan_exp.models import dcgan, ebgan, mlp, toy
from gan_exp.models.base import has_batchnorm

DIGITS = DataSpec((1, 28, 28), bounded=True)
RGB32 = DataSpec((3, 32, 32), bounded=True)
RGB64 = DataSpec((3, 64, 64), bounded=True)
POINTS = DataSpec((2,), bounded=False)


@pytest.mark.parametrize(
    "builder,spec,kwargs",
    [
        (mlp.build, DIGITS, {}),
        (mlp.build, RGB32, {}),
        (mlp.build, POINTS, {"latent_dim": 2}),
        (dcgan.build, DIGITS, {}),
        (dcgan.build, RGB32, {"g_width": 8, "d_width": 8}),
        (dcgan.build, RGB64, {"g_width": 8, "d_width": 8}),
        (ebgan.build, DIGITS, {"g_width": 16, "d_width": 8}),
        (ebgan.build, RGB32, {"g_width": 16, "d_width": 8}),
        (ebgan.build, POINTS, {}),
    ],
)
def test_shapes(builder, spec, kwargs):
    models = builder(spec, **kwargs)
    z = torch.randn(4, models.latent_dim)
    x = models.generator(z)
    assert x.shape == (4, *spec.shape)
    if spec.bounded:
        assert x.abs().max() <= 1.0
    out = models.critic(x)
    assert out.score.shape == (4,)
    assert (out.embedding is not None) == models.critic.produces_embedding


def test_ebgan_energy_is_per_sample_reconstruction_mse():
    models = ebgan.build(DIGITS, g_width=16, d_width=8, d_norm="none")
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    critic = models.critic
    emb = critic.embed(critic.down(x).reshape(3, -1))
    recon = critic.up(critic.fc(emb).view(3, critic.width, critic.half, critic.half))
    expected = ((recon - x) ** 2).mean(dim=(1, 2, 3))
    assert torch.allclose(critic(x).score, expected)


@pytest.mark.parametrize("norm", ["none", "layer", "spectral", "batch"])
def test_critic_norm_options(norm):
    for builder in (mlp.build, dcgan.build):
        models = builder(DIGITS, d_norm=norm)
        assert has_batchnorm(models.critic) == (norm == "batch")
        models.critic(torch.randn(2, 1, 28, 28))


def test_seed_mlp_layout_and_batchnorm_eps():
    models = mlp.build(DIGITS, g_bn_eps=0.8)
    linears = [m for m in models.generator.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [128, 256, 512, 1024, 784]
    bns = [m for m in models.generator.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert [b.num_features for b in bns] == [256, 512, 1024] and bns[0].eps == 0.8
    critic_linears = [m for m in models.critic.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in critic_linears] == [512, 256, 1]


def test_unsupported_shapes_and_options_are_refused():
    with pytest.raises(ConfigError, match=r"model=dcgan needs square images.*\(2,\)"):
        dcgan.build(POINTS)
    with pytest.raises(ConfigError, match="model=dcgan"):
        dcgan.build(DataSpec((1, 48, 48), bounded=True))
    with pytest.raises(ConfigError, match="model=ebgan"):
        ebgan.build(DataSpec((1, 30, 30), bounded=True))
    with pytest.raises(ConfigError, match="model.d_norm='group'.*none, batch, layer, spectral"):
        mlp.build(DIGITS, d_norm="group")


def test_toy_mlp_is_pacgans_synthetic_pair():
    """G: 2 -> 4 x [Linear (no bias), BatchNorm, ReLU] of 400 -> 2; D: 3 maxout layers of 200
    (5 pieces) -> 1; weights N(0, 0.02), biases zero (github.com/fjxmlzn/PacGAN)."""
    torch.manual_seed(0)
    models = toy.build(POINTS)
    g_linears = [m for m in models.generator.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in g_linears] == [
        (2, 400), (400, 400), (400, 400), (400, 400), (400, 2)
    ]
    assert [m.bias is None for m in g_linears] == [True] * 4 + [False]
    bns = [m for m in models.generator.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 4 and bns[0].momentum == 0.05 and bns[0].eps == 1e-4
    maxouts = [m for m in models.critic.modules() if isinstance(m, toy.Maxout)]
    assert [(m.linear.in_features, m.out_dim, m.pieces) for m in maxouts] == [
        (2, 200, 5), (200, 200, 5), (200, 200, 5)
    ]
    assert not has_batchnorm(models.critic)
    weight = maxouts[1].linear.weight
    assert abs(weight.std().item() - 0.02) < 0.001 and maxouts[1].linear.bias.abs().max() == 0
    out = models.critic(models.generator(torch.randn(7, 2)))
    assert out.score.shape == (7,) and out.embedding is None


def test_maxout_takes_the_max_over_each_units_pieces():
    layer = toy.Maxout(3, 4, 5, "none")
    x = torch.randn(6, 3)
    pieces = layer.linear(x).view(6, 4, 5)
    assert torch.equal(layer(x), pieces.max(dim=2).values)


def test_toy_mlp_autoencoder_critic_for_energy_losses_and_refuses_images():
    models = toy.build(POINTS, critic="autoencoder", embed_dim=2)
    assert models.critic.produces_embedding
    out = models.critic(torch.randn(5, 2))
    assert out.score.shape == (5,) and out.embedding.shape == (5, 2)
    with pytest.raises(ConfigError, match=r"model=toy_mlp is for flat data.*\(1, 28, 28\)"):
        toy.build(DIGITS)
    with pytest.raises(ConfigError, match="model.critic='conv'.*auto, maxout, autoencoder"):
        toy.build(POINTS, critic="conv")
