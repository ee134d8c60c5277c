"""DiffAugment (`augment=diffaugment`): each transform against the reference's arithmetic with
the reference's order of random draws (so the same seed gives the same output), gradients to
the generator through it, and the config refusing what cannot work."""

from __future__ import annotations

import pytest
import torch

from gan_exp.augment import DiffAugment, brightness, contrast, cutout, saturation, translation
from gan_exp.components import build_components, resolve_device
from gan_exp.errors import ConfigError
from gan_exp.run import train
from tests.conftest import FAST, compose_cfg

CPU = resolve_device("cpu")


def batch(n: int = 5, c: int = 3, h: int = 16, w: int = 12) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(7))


def shifted(x: torch.Tensor, dh: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
    """out[b, :, i, j] = x[b, :, i + dh_b, j + dw_b], zero where that is outside the image."""
    out = torch.zeros_like(x)
    n, _, h, w = x.shape
    for b in range(n):
        for i in range(h):
            for j in range(w):
                si, sj = i + int(dh[b]), j + int(dw[b])
                if 0 <= si < h and 0 <= sj < w:
                    out[b, :, i, j] = x[b, :, si, sj]
    return out


def test_colour_transforms_are_the_references_arithmetic():
    x = batch()
    torch.manual_seed(3)
    got = contrast(saturation(brightness(x)))
    torch.manual_seed(3)
    r1, r2, r3 = (torch.rand(5, 1, 1, 1) for _ in range(3))  # one draw per transform, in order
    y = x + (r1 - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (r2 * 2) + y.mean(1, keepdim=True)
    y = (y - y.mean([1, 2, 3], keepdim=True)) * (r3 + 0.5) + y.mean([1, 2, 3], keepdim=True)
    assert torch.allclose(got, y, atol=1e-6)


def test_translation_shifts_whole_pixels_by_up_to_an_eighth_with_zero_fill():
    x = batch()
    torch.manual_seed(4)
    got = translation(x)
    torch.manual_seed(4)
    dh = torch.randint(-2, 3, size=[5, 1, 1]).flatten()  # 16 // 8 = 2 rows either way
    dw = torch.randint(-1, 2, size=[5, 1, 1]).flatten()  # 12 // 8 = 1 column either way
    assert torch.equal(got, shifted(x, dh, dw))
    assert dh.abs().max() <= 2


def test_cutout_zeroes_one_half_size_square_per_sample():
    x = batch()
    torch.manual_seed(5)
    got = cutout(x)
    torch.manual_seed(5)
    top = torch.randint(0, 16 + 1, size=[5, 1, 1]).flatten()  # size 8 is even: one more centre
    left = torch.randint(0, 12 + 1, size=[5, 1, 1]).flatten()  # size 6
    expected = x.clone()
    for b in range(5):
        r0, c0 = int(top[b]) - 4, int(left[b]) - 3
        expected[b, :, max(r0, 0):max(r0 + 8, 0), max(c0, 0):max(c0 + 6, 0)] = 0
    assert torch.equal(got, expected)


def test_the_policy_runs_in_its_order_and_gradients_reach_the_input():
    x = batch().requires_grad_(True)
    torch.manual_seed(6)
    out = DiffAugment(["translation", "color"])(x)
    torch.manual_seed(6)
    expected = contrast(saturation(brightness(translation(x.detach()))))
    assert torch.allclose(out.detach(), expected, atol=1e-6) and out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    torch.manual_seed(0)
    half = DiffAugment("color", p=0.5)(x.detach())
    same = [torch.equal(half[b], x[b].detach()) for b in range(5)]
    assert 0 < sum(same) < 5  # some samples left as they were


def test_generator_gets_gradients_through_the_augmented_critic(tmp_path):
    cfg = compose_cfg([*FAST, "augment=diffaugment", "metrics.enabled=false"])
    parts = build_components(cfg, CPU)
    G = parts.models.generator
    from gan_exp.augment import through

    critic = through(parts.augment, parts.models.critic)
    z = torch.randn(8, parts.models.latent_dim)
    critic(G(z)).score.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters()
               if p.requires_grad and p.dim() > 1)
    metrics = train(compose_cfg([*FAST, "augment=diffaugment", "loss=wgan_gp",
                                 "metrics.enabled=false"]), tmp_path / "run")
    assert torch.isfinite(torch.tensor(metrics["loss/d"]))


@pytest.mark.parametrize("args,message", [
    (["augment=diffaugment", "dataset=ring"], "augment=diffaugment transforms images"),
    (["augment=diffaugment", "augment.policy=[color,blur]"], "unknown blur; allowed"),
    (["augment=diffaugment", "augment.p=0"], "augment.p=0 must be a probability in (0, 1]"),
])
def test_augment_refuses_what_cannot_work(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        build_components(compose_cfg([*FAST, *args]), CPU)
