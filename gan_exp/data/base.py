"""What a dataset is to the trainer: a shape, a batch source, and a way to draw samples.

Datasets that fit in memory live on the training device as one tensor and batches are drawn
by index, so a training step never waits for a DataLoader or a host-to-device copy. Streaming
datasets (later) only have to provide the same `next_batch()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.utils import make_grid

from gan_exp.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data."""

    shape: tuple[int, ...]
    # True when samples live in [-1, 1] (images): the generator then ends in tanh.
    bounded: bool


class InMemoryDataset:
    """All samples in one tensor (uint8 for images, float for points), labels beside them."""

    # How many fixed-noise samples the preview shows unless `log.n_samples` says otherwise.
    preview_size = 64

    def __init__(self, name: str, data: Tensor, labels: Tensor, spec: DataSpec) -> None:
        self.name, self.data, self.labels, self.spec = name, data, labels, spec

    def __len__(self) -> int:
        return self.data.shape[0]

    def decode(self, stored: Tensor) -> Tensor:
        """Stored batch -> float model input (uint8 pixels map to [-1, 1])."""
        if stored.dtype == torch.uint8:
            return stored.float().div_(127.5).sub_(1.0)
        return stored.float()

    def preview(self, fake: Tensor, real: Tensor) -> Tensor:
        """A (3, H, W) float image in [0, 1] showing generated samples; see subclasses."""
        raise NotImplementedError


class ImageDataset(InMemoryDataset):
    def preview(self, fake: Tensor, real: Tensor) -> Tensor:
        nrow = max(1, int(fake.shape[0] ** 0.5))
        grid = make_grid(
            fake.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1)
        )
        return grid


class InMemoryBatches:
    """Endless shuffled batches by index from a dataset held on `device`.

    Reshuffles with a fresh permutation every epoch and drops the incomplete last batch so
    every batch has the same size (penalties and the pulling-away term rely on that).
    """

    def __init__(self, dataset: InMemoryDataset, batch_size: int, device: torch.device) -> None:
        if not 1 <= batch_size <= len(dataset):
            raise ConfigError(
                f"train.batch_size={batch_size} must be between 1 and the dataset size "
                f"({len(dataset)} samples in dataset={dataset.name})"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = device
        self.data = dataset.data.to(device)
        self._perm = torch.randperm(len(dataset), device=device)
        self._pos = 0

    def next_batch(self) -> Tensor:
        if self._pos + self.batch_size > self._perm.shape[0]:
            self._perm = torch.randperm(self._perm.shape[0], device=self.device)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return self.dataset.decode(self.data[idx])

    def state_dict(self) -> dict:
        return {"perm": self._perm.cpu(), "pos": self._pos}

    def load_state_dict(self, state: dict) -> None:
        self._perm = state["perm"].to(self.device)
        self._pos = int(state["pos"])
