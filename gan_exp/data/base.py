"""What a dataset is to the trainer: a shape, a source of batches, and a picture of samples.

Datasets that fit in memory live on the training device as one tensor and batches are drawn
by index, so a training step never waits for a DataLoader or a host-to-device copy. Datasets
too large for that stream through a DataLoader with workers, pinned memory and persistent
workers; both kinds hand the trainer the same `next_batch()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from gan_exp.errors import CheckpointError, ConfigError, worker_errors


@dataclass(frozen=True)
class DataSpec:
    """What a model builder needs to know about the data."""

    shape: tuple[int, ...]
    # True when samples live in [-1, 1] (images): the generator then ends in tanh.
    bounded: bool


class BatchSource(Protocol):
    def next_batch(self) -> Tensor: ...

    def state_dict(self) -> dict[str, Any]: ...


class GANDataset:
    """Base of every dataset: `name`, `spec`, `labels`, `make_batches` and `preview`."""

    # How many fixed-noise samples the preview shows unless `log.n_samples` says otherwise.
    preview_size = 64
    name: str
    spec: DataSpec
    labels: Tensor
    # The dataset-config values that give the whole dataset when `dataset.size` kept a slice of
    # it (else None): the image metrics measure against the whole, as limited-data GAN papers
    # compute FID against the full training set (Karras et al. 2020, "Training generative
    # adversarial networks with limited data"; Zhao et al. 2020, DiffAugment).
    unsliced: dict[str, Any] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def make_batches(self, batch_size: int, device: torch.device) -> BatchSource:
        raise NotImplementedError

    def preview(self, fake: Tensor) -> Tensor:
        """A (3, H, W) float image in [0, 1] of generated samples: a grid for images."""
        nrow = max(1, int(fake.shape[0] ** 0.5))
        from torchvision.utils import make_grid  # torchvision's import costs ~1.5 s

        return make_grid(
            fake.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1)
        )

    def describe(self) -> str:
        return f"dataset={self.name} ({len(self)} samples of shape {tuple(self.spec.shape)})"


def check_batch_size(batch_size: int, dataset: GANDataset) -> None:
    """A batch needs at least 2 samples (train.batch_size's own rule) and at most the data."""
    if len(dataset) < 2:
        raise ConfigError(
            f"{dataset.describe()} is too small to train: a batch needs at least 2 samples"
        )
    if not 2 <= batch_size <= len(dataset):
        raise ConfigError(
            f"train.batch_size={batch_size} must be between 2 and the dataset size "
            f"({len(dataset)} samples in dataset={dataset.name})"
        )


class InMemoryDataset(GANDataset):
    """All samples in one tensor (uint8 for images, float for points), labels beside them."""

    def __init__(self, name: str, data: Tensor, labels: Tensor, spec: DataSpec) -> None:
        self.name, self.data, self.labels, self.spec = name, data, labels, spec

    def decode(self, stored: Tensor) -> Tensor:
        """Stored batch -> float model input (uint8 pixels map to [-1, 1])."""
        if stored.dtype == torch.uint8:
            return stored.float().div_(127.5).sub_(1.0)
        return stored.float()

    def make_batches(self, batch_size: int, device: torch.device) -> InMemoryBatches:
        return InMemoryBatches(self, batch_size, device)


class InMemoryBatches:
    """Endless shuffled batches by index from a dataset held on `device`.

    Reshuffles with a fresh permutation every epoch and drops the incomplete last batch so
    every batch has the same size (penalties and the pulling-away term rely on that).
    """

    def __init__(self, dataset: InMemoryDataset, batch_size: int, device: torch.device) -> None:
        check_batch_size(batch_size, dataset)
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

    def state_dict(self) -> dict[str, Any]:
        return {"perm": self._perm.cpu(), "pos": self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["perm"].shape[0] != self._perm.shape[0]:
            raise CheckpointError(
                f"the checkpoint's data order is for {state['perm'].shape[0]} samples and "
                f"dataset={self.dataset.name} has {self._perm.shape[0]}: it was saved with other "
                "data. Start a new run instead."
            )
        self._perm = state["perm"].to(self.device)
        self._pos = int(state["pos"])


class StreamingDataset(GANDataset):
    """A map-style dataset of `(uint8 image, label)` read from disk batch by batch.

    Images cross to the device as uint8 (a quarter of the bytes of float) and are mapped to
    [-1, 1] there.
    """

    def __init__(
        self,
        name: str,
        source: Dataset,
        labels: Tensor,
        spec: DataSpec,
        num_workers: int = 2,
        seed: int = 0,
    ) -> None:
        self.name, self.source, self.labels, self.spec = name, source, labels, spec
        self.num_workers, self.seed = num_workers, seed

    def make_batches(self, batch_size: int, device: torch.device) -> LoaderBatches:
        check_batch_size(batch_size, self)
        # the order's seed comes from the run's seeded RNG, so a run's data order is its own
        sampler = EpochSampler(len(self.source), int(torch.randint(2**31, ()).item()))
        loader = DataLoader(
            self.source,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=self.num_workers > 0,
            # each iter() draws the workers' base seed from this generator, not from the
            # global RNG the training noise comes from (a resume makes one more iter())
            generator=torch.Generator().manual_seed(sampler.seed),
        )
        return LoaderBatches(loader, sampler, device)


class EpochSampler(Sampler[int]):
    """A fresh permutation per epoch, a pure function of (seed, epoch), that can start part-way
    through an epoch: what a streamed dataset needs to resume in exactly the same order."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator)[self.start :].tolist())

    def __len__(self) -> int:
        return self.n - self.start


class LoaderBatches:
    """Endless batches from a DataLoader, moved to the device without blocking the host.

    Its state is (order seed, epoch, batches taken this epoch): a resumed run continues with
    the very batch the interrupted one would have drawn next, whatever the DataLoader workers
    had prefetched.
    """

    def __init__(self, loader: DataLoader, sampler: EpochSampler, device: torch.device) -> None:
        self.loader, self.sampler, self.device = loader, sampler, device
        self._it: Iterator | None = None
        self.epoch = 0
        self.taken = 0  # batches handed out in this epoch

    def next_batch(self) -> Tensor:
        with worker_errors():
            if self._it is None:
                self.sampler.set_epoch(self.epoch, self.taken * self.loader.batch_size)
                self._it = iter(self.loader)
            try:
                images, _ = next(self._it)
            except StopIteration:
                self.epoch, self.taken = self.epoch + 1, 0
                self.sampler.set_epoch(self.epoch, 0)
                self._it = iter(self.loader)
                images, _ = next(self._it)
        self.taken += 1
        return images.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.sampler.seed, "epoch": self.epoch, "taken": self.taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved order (a checkpoint from before exact streaming resume, with only
        an epoch, continues at that epoch's start)."""
        self.sampler.seed = int(state.get("seed", self.sampler.seed))
        self.epoch, self.taken = int(state.get("epoch", 0)), int(state.get("taken", 0))
        self._it = None
