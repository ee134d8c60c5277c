"""The papers' residual GANs (`model=resnet_wgan_gp|sngan_32|sngan_48|sngan_64`): parameter counts
against the reference architectures at their published widths, output shapes for 1 and 3
channels, and the combinations refused by name."""

from __future__ import annotations

import pytest
import torch

from gan_exp.components import build, check_compatible
from gan_exp.data.base import DataSpec
from gan_exp.errors import ConfigError
from gan_exp.models import resnet
from tests.conftest import compose_cfg


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def lin(i: int, o: int) -> int:
    return i * o + o


def bn(c: int) -> int:
    return 2 * c


def g_block(a: int, b: int) -> int:  # BN, up-conv3, BN, conv3, up-conv1 shortcut
    return bn(a) + conv(a, b, 3) + bn(b) + conv(b, b, 3) + conv(a, b, 1)


def d_block(a: int, b: int, shortcut: bool) -> int:  # conv3 (a->a), conv3 (a->b), 1x1 shortcut
    return conv(a, a, 3) + conv(a, b, 3) + (conv(a, b, 1) if shortcut else 0)


def d_first(c: int, b: int) -> int:  # conv3 (c->b), conv3 (b->b), pool-then-1x1 shortcut
    return conv(c, b, 3) + conv(b, b, 3) + conv(c, b, 1)


def g_total(nz: int, bottom: int, widths: list[int], channels: int = 3) -> int:
    blocks = sum(g_block(a, b) for a, b in zip(widths, widths[1:], strict=False))
    return lin(nz, bottom**2 * widths[0]) + blocks + bn(widths[-1]) + conv(widths[-1], channels, 3)


# (G, D) parameter counts of the reference architectures, from their layer lists:
# gan_cifar_resnet.py (DIM_G = DIM_D = 128, unconditional) and mimicry's sngan_32/48/64
REFERENCE = {
    "resnet_wgan_gp": (g_total(128, 4, [128] * 4),
                       d_first(3, 128) + d_block(128, 128, True) + 2 * d_block(128, 128, False)
                       + lin(128, 1)),
    "sngan_32": (g_total(128, 4, [256] * 4),
                 d_first(3, 128) + d_block(128, 128, True) + 2 * d_block(128, 128, False)
                 + lin(128, 1)),
    "sngan_48": (g_total(128, 6, [512, 256, 128, 64]),
                 d_first(3, 64) + d_block(64, 128, True) + d_block(128, 256, True)
                 + d_block(256, 512, True) + d_block(512, 1024, True) + lin(1024, 1)),
    "sngan_64": (g_total(128, 4, [1024, 512, 256, 128, 64]),
                 d_first(3, 64) + d_block(64, 128, True) + d_block(128, 256, True)
                 + d_block(256, 512, True) + d_block(512, 1024, True) + lin(1024, 1)),
}
SIDE = {"resnet_wgan_gp": 32, "sngan_32": 32, "sngan_48": 48, "sngan_64": 64}


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_counts_are_the_references_at_their_widths(name):
    cfg = compose_cfg([f"model={name}"]).model
    with torch.device("meta"):  # the full widths, without allocating them
        models = resnet.build(DataSpec((3, SIDE[name], SIDE[name]), True), cfg.arch,
                              cfg.latent_dim, cfg.g_width, cfg.d_width, cfg.d_norm)
    assert (params(models.generator), params(models.critic)) == REFERENCE[name]


def test_the_published_figures():
    """The counts mimicry and the WGAN-GP code print for these widths."""
    assert REFERENCE["sngan_32"] == (4_276_739, 1_053_825)
    assert REFERENCE["resnet_wgan_gp"] == (1_204_483, 1_053_825)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes_for_grey_and_colour(name, channels):
    side = SIDE[name]
    models = resnet.build(DataSpec((channels, side, side), True), name, 16, 16, 16)
    x = models.generator(torch.randn(2, 16))
    assert x.shape == (2, channels, side, side) and x.abs().max() <= 1
    assert models.critic(x).score.shape == (2,)


def test_wrong_side_and_clipping_a_spectral_critic_are_refused():
    with pytest.raises(ConfigError, match=r"model=sngan_32 makes 32x32 images; the dataset gives "
                                          r"shape \(1, 28, 28\)"):
        resnet.build(DataSpec((1, 28, 28), True), "sngan_32")
    with pytest.raises(ConfigError, match="model.d_norm='batch' is not supported; allowed: "
                                          "none, layer, spectral"):
        resnet.build(DataSpec((3, 32, 32), True), "sngan_32", d_norm="batch")
    cfg = compose_cfg(["model=sngan_32", "loss=wgan"])
    assert cfg.penalty.name == "clip"
    models = resnet.build(DataSpec((3, 32, 32), True), "sngan_32", 8, 8, 8)
    with pytest.raises(ConfigError, match="penalty=clip with a spectrally normalised critic"):
        check_compatible(cfg, models, build(cfg.loss), build(cfg.penalty))
    plain = resnet.build(DataSpec((3, 32, 32), True), "resnet_wgan_gp", 8, 8, 8)
    check_compatible(cfg, plain, build(cfg.loss), build(cfg.penalty))  # no norm: clipping is fine
