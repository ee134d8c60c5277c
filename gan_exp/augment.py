"""Differentiable augmentation of everything the critic sees: the `augment` config group.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training";
github.com/mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py): the same random colour,
translation and cutout transforms are applied to real and fake batches before every critic
forward (the critic phase, the generator step and the penalties' own forwards), and since
each transform is differentiable the generator's gradient flows through it. The arithmetic and
the order of the random draws are the reference's, so under the same torch seed the outputs are
the reference implementation's. `p < 1` augments each sample with probability p (the same
transforms, then a per-sample choice drawn after them), as in ADA's (Karras et al. 2020) use of
a probability; p = 1 is the paper's setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_exp.errors import ConfigError


def brightness(x: Tensor) -> Tensor:
    """Add one uniform shift in [-0.5, 0.5) per sample."""
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def saturation(x: Tensor) -> Tensor:
    """Scale each pixel's distance from its channel mean by a factor in [0, 2)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean


def contrast(x: Tensor) -> Tensor:
    """Scale each sample's distance from its mean by a factor in [0.5, 1.5)."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    factor = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return (x - mean) * factor + mean


def translation(x: Tensor) -> Tensor:
    """Shift each sample by up to 1/8 of its height and width (whole pixels), filling with 0."""
    n, _, h, w = x.shape
    dh = torch.randint(-(h // 8), h // 8 + 1, size=[n, 1, 1], device=x.device)
    dw = torch.randint(-(w // 8), w // 8 + 1, size=[n, 1, 1], device=x.device)
    batch, rows, cols = torch.meshgrid(torch.arange(n, device=x.device),
                                       torch.arange(h, device=x.device),
                                       torch.arange(w, device=x.device), indexing="ij")
    # index the one-pixel zero border of a padded copy for every source outside the image
    rows = torch.clamp(rows + dh + 1, 0, h + 1)
    cols = torch.clamp(cols + dw + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return padded[batch, :, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor) -> Tensor:
    """Zero one square of half the height and width per sample, centred anywhere."""
    n, _, h, w = x.shape
    size_h, size_w = h // 2, w // 2
    top = torch.randint(0, h + (1 - size_h % 2), size=[n, 1, 1], device=x.device)
    left = torch.randint(0, w + (1 - size_w % 2), size=[n, 1, 1], device=x.device)
    batch, rows, cols = torch.meshgrid(torch.arange(n, device=x.device),
                                       torch.arange(size_h, device=x.device),
                                       torch.arange(size_w, device=x.device), indexing="ij")
    rows = torch.clamp(rows + top - size_h // 2, min=0, max=h - 1)
    cols = torch.clamp(cols + left - size_w // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[batch, rows, cols] = 0
    return x * mask.unsqueeze(1)


POLICIES: dict[str, tuple[Callable[[Tensor], Tensor], ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


class NoAugment:
    """`augment=none`: the critic sees the batches as they are."""

    name = "none"

    def __call__(self, x: Tensor) -> Tensor:
        return x


class DiffAugment:
    """`augment=diffaugment`: `policy` is a subset of color, translation, cutout (a list, or the
    reference's comma-separated string), applied in its order."""

    name = "diffaugment"

    def __init__(self, policy: Sequence[str] | str = ("color", "translation", "cutout"),
                 p: float = 1.0) -> None:
        items = policy.split(",") if isinstance(policy, str) else [str(s) for s in policy]
        parts = [s.strip() for s in items if s.strip()]
        unknown = [s for s in parts if s not in POLICIES]
        if not parts or unknown:
            what = f"unknown {', '.join(unknown)}" if unknown else "empty"
            raise ConfigError(f"augment.policy={list(items)}: {what}; allowed: a subset of "
                              f"[{', '.join(POLICIES)}]")
        if not 0 < float(p) <= 1:
            raise ConfigError(f"augment.p={p} must be a probability in (0, 1]")
        self.policy, self.p = parts, float(p)

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ConfigError(f"augment=diffaugment works on image batches (N, C, H, W); "
                              f"got shape {tuple(x.shape)}. Use augment=none on 2-D data")
        out = x
        for name in self.policy:
            for transform in POLICIES[name]:
                out = transform(out)
        if self.p < 1:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device) >= self.p
            out = torch.where(keep, x, out)
        return out.contiguous()


def through(augment: Callable[[Tensor], Tensor], critic: Callable) -> Callable:
    """The critic as the loop calls it: every input augmented first."""
    if isinstance(augment, NoAugment):
        return critic

    def seen(x: Tensor):  # noqa: ANN202 (a CriticOutput, whatever the critic returns)
        return critic(augment(x))

    return seen
