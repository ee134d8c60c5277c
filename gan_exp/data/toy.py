"""2-D toy mixtures, `dataset=ring` and `dataset=grid`, per the PacGAN/VEEGAN protocol.

ring: 8 Gaussians at (r cos(2 pi i / 8), r sin(2 pi i / 8)), r = 1, std 0.01. Copies that use
`linspace(0, 2 pi, 8)` put the last mode on top of the first and so have only 7 modes.
grid: 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05.
Their "sample grid" is a scatter image of generated points over real ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gan_exp.data.base import DataSpec, InMemoryDataset
from gan_exp.validation import check_value

_REAL_RGB = torch.tensor([0.55, 0.7, 0.95])
_FAKE_RGB = torch.tensor([0.85, 0.1, 0.1])


def ring_means(n_modes: int = 8, radius: float = 1.0) -> Tensor:
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_means(side: int = 5, spacing: float = 2.0) -> Tensor:
    coords = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], dim=1)


def scatter_image(points: list[tuple[Tensor, Tensor]], extent: float, size: int = 256) -> Tensor:
    """Draw (points (N, 2), rgb (3,)) layers, later ones on top, into a (3, size, size) image."""
    img = torch.ones(3, size, size)
    for pts, rgb in points:
        pts = pts.detach().float().cpu()
        pix = ((pts / extent + 1) / 2 * (size - 1)).round().long()
        col, row = pix[:, 0], (size - 1) - pix[:, 1]  # y up
        keep = (col >= 0) & (col < size - 1) & (row >= 0) & (row < size - 1)
        col, row = col[keep], row[keep]
        for dr in (0, 1):
            for dc in (0, 1):
                img[:, row + dr, col + dc] = rgb[:, None]
    return img


class PointDataset(InMemoryDataset):
    """Points in R^2 drawn from a Gaussian mixture; `means` and `std` define the modes."""

    preview_size = 1000

    def __init__(self, name: str, data: Tensor, labels: Tensor, means: Tensor, std: float):
        super().__init__(name, data, labels, DataSpec(shape=(2,), bounded=False))
        self.means, self.std = means, std
        self.extent = float(means.abs().max()) * 1.5 + 4 * std

    def preview(self, fake: Tensor) -> Tensor:
        """Generated points (red) over the first 1,000 real points (blue)."""
        return scatter_image([(self.data[:1000], _REAL_RGB), (fake, _FAKE_RGB)], self.extent)


def _mixture(name: str, means: Tensor, std: float, size: int, seed: int) -> PointDataset:
    check_value("dataset.size", size)
    check_value("dataset.std", std)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(means.shape[0], (size,), generator=generator)
    data = means[labels] + std * torch.randn(size, 2, generator=generator)
    return PointDataset(name, data, labels, means, std)


def ring(
    size: int = 100000,
    n_modes: int = 8,
    radius: float = 1.0,
    std: float = 0.01,
    seed: int = 0,
    name: str = "ring",
) -> PointDataset:
    return _mixture(name, ring_means(n_modes, radius), std, size, seed)


def grid(
    size: int = 100000,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    seed: int = 0,
    name: str = "grid",
) -> PointDataset:
    return _mixture(name, grid_means(side, spacing), std, size, seed)
