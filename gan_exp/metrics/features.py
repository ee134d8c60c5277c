"""The feature space for offline image metrics: a small classifier of the dataset's own labels,
or, for unlabelled data (a flat image folder: every label 0), of the images' rotation.

Inception features need a download; this network is trained once per dataset config on that
dataset's labelled training images (a seeded hold-out gives its test accuracy), cached under
`paths.data_dir/classifiers/`, and its penultimate layer is the embedding for FD, KID and
precision/recall. It is a function of the dataset and its own config only (its own seed, a
fixed thread count), and concurrent jobs train it once under a lock, so the runs of a sweep
share one feature space. Its numbers are comparable between runs on the same dataset and classifier
config, not with published FIDs: hence names like "FD (classifier)".

A classifier of one label learns nothing, so on unlabelled data the network is trained on a
self-supervised task instead: predict which of 0, 90, 180, 270 degrees an image was rotated by
(Gidaris et al. 2018, "Unsupervised representation learning by predicting image rotations").
Telling the rotations apart takes the shapes, textures and orientation cues of the data, so
its penultimate layer separates real images from ones that lack them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gan_exp.atomic import atomic_torch_save, check_writable
from gan_exp.data.base import GANDataset
from gan_exp.errors import ConfigError
from gan_exp.progress import bar

log = logging.getLogger(__name__)


class Classifier(nn.Module):
    """Three conv blocks, global average pool, a `feature_dim` embedding, then class logits."""

    def __init__(self, channels: int, n_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)
        self.num_features = feature_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(features, logits) for images in [-1, 1]."""
        features = self.body(x)
        return features, self.head(features)


def labelled_images(
    dataset: GANDataset, limit: int, device: torch.device, seed: int
) -> tuple[Tensor, Tensor]:
    """Up to `limit` (image in [-1, 1], label) pairs, a seeded random choice from the dataset."""
    n = min(limit, len(dataset))
    gen = torch.Generator().manual_seed(seed)
    data = getattr(dataset, "data", None)
    if data is not None:  # in memory: index with a seeded permutation
        idx = torch.randperm(len(dataset), generator=gen)[:n]
        return dataset.decode(data[idx]).to(device), dataset.labels[idx].to(device)
    loader = torch.utils.data.DataLoader(
        dataset.source,
        batch_size=256,
        shuffle=True,
        generator=gen,
        num_workers=getattr(dataset, "num_workers", 0),
    )
    xs, ys, have = [], [], 0
    for x, y in loader:
        xs.append(x.float().div(127.5).sub(1))
        ys.append(torch.as_tensor(y))
        have += len(x)
        if have >= n:
            break
    return torch.cat(xs)[:n].to(device), torch.cat(ys)[:n].to(device)


def cache_key(dataset_cfg: dict[str, Any], cls_cfg: dict[str, Any]) -> str:
    keep = {
        k: v
        for k, v in dataset_cfg.items()
        if k not in ("num_workers", "in_memory", "root", "cache_dir", "download")
    }
    blob = json.dumps({"data": keep, "classifier": cls_cfg}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


ROTATION = "rotation"  # the self-supervised task's name in logs, caches and docs/metrics.md
LABELS = "labels"


def feature_task(dataset: GANDataset) -> str:
    """`labels` when the dataset has at least two classes, else `rotation`."""
    return LABELS if int(dataset.labels.max()) + 1 >= 2 else ROTATION


def rotate_batch(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Each image turned by a random multiple of 90 degrees, and that multiple (0-3)."""
    k = torch.randint(4, (x.shape[0],), generator=generator).to(x.device)
    out = torch.empty_like(x)
    for turns in range(4):
        rows = k == turns
        if rows.any():
            out[rows] = torch.rot90(x[rows], turns, dims=(2, 3))
    return out, k


def load_or_train(
    dataset: GANDataset,
    dataset_cfg: dict[str, Any],
    cls_cfg: dict[str, Any],
    cache_dir: Path | None,
    device: torch.device,
) -> tuple[Classifier, float]:
    """The cached feature network for this dataset config, training it first if needed."""
    task = feature_task(dataset)
    n_classes = int(dataset.labels.max()) + 1 if task == LABELS else 4
    if task == ROTATION:
        cls_cfg = {**cls_cfg, "task": ROTATION}  # its own cache entry
    channels = dataset.spec.shape[0]
    # Built from the run's random stream, which the run's training then continues from (so an
    # image run trains the same with and without a cached classifier), and then drawn again
    # from the classifier's own seed: the network must not depend on which run trained it.
    model = Classifier(channels, n_classes, cls_cfg["width"], cls_cfg["feature_dim"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cls_cfg["seed"])
        for layer in model.modules():
            if layer is not model and hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    model.to(device)
    if cache_dir is None:
        accuracy = _train(model, dataset, cls_cfg, device)
        model.eval()
        return model, accuracy
    path = Path(cache_dir) / f"{dataset.name}_{cache_key(dataset_cfg, cls_cfg)}.pt"
    if (accuracy := _load(model, path)) is not None:
        return model, accuracy
    check_writable(path.parent, "metrics.cache_dir",
                   "; set paths.data_dir to a writable folder, or metrics.cache_dir=null")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The jobs of a parallel sweep start together: one trains, the others wait and load its
    # network, so every run of a sweep is scored in the same feature space.
    with _cache_lock(path):
        if (accuracy := _load(model, path)) is None:
            accuracy = _train(model, dataset, cls_cfg, device)
            atomic_torch_save({"model": model.state_dict(), "test_accuracy": accuracy}, path)
    model.eval()
    return model, accuracy


def _load(model: Classifier, path: Path) -> float | None:
    """The cached network's held-out accuracy, its weights loaded into `model`; None if none."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        model.eval()
        return float(state["test_accuracy"])
    except Exception as err:  # a bad cache is retrained, never trusted
        log.warning("ignoring unreadable classifier cache %s (%s)", path, err)
        return None


@contextmanager
def _cache_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `<cache>.lock` (POSIX flock; released when the process dies)."""
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, each process may train its own
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to `n` meanwhile: the result of a CPU reduction depends on
    how many threads split it, so a fixed count gives the same network in a lone run and in a
    sweep job that was given fewer threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(
    model: Classifier, dataset: GANDataset, cfg: dict[str, Any], device: torch.device
) -> float:
    """Seeded training on the first (1 - holdout) of a seeded shuffle; accuracy on the rest."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
            _threads(int(cfg.get("threads", 1))):
        torch.manual_seed(cfg["seed"])
        x, y = labelled_images(dataset, cfg["max_images"], device, cfg["seed"])
        n_test = max(1, int(len(y) * cfg["holdout"]))
        x_train, y_train, x_test, y_test = x[n_test:], y[n_test:], x[:n_test], y[:n_test]
        if len(y_train) < 2:
            raise ConfigError(
                f"{dataset.describe()} is too small for the image metrics' classifier "
                f"({len(y_train)} image(s) to train on after holding out {n_test}); add "
                "images, or train without metrics: metrics.enabled=false"
            )
        rotation = cfg.get("task") == ROTATION
        if rotation:  # unlabelled: the label is the rotation; one fixed draw for the test part
            x_test, y_test = rotate_batch(x_test, torch.Generator().manual_seed(cfg["seed"]))
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        model.train()
        per_epoch = -(-len(y_train) // cfg["batch_size"])
        progress = bar(cfg["epochs"] * per_epoch, "training the metrics' classifier",
                       unit="batch")
        for epoch in range(cfg["epochs"]):
            perm = torch.randperm(len(y_train), device=device)
            for i in range(0, len(perm), cfg["batch_size"]):
                idx = perm[i : i + cfg["batch_size"]]
                xb, yb = x_train[idx], y_train[idx]
                if rotation:  # a fresh rotation of each image every time it is seen
                    xb, yb = rotate_batch(xb)
                _, logits = model(xb)
                loss = nn.functional.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                progress.update(1)
            log.info("classifier epoch %d/%d: loss %.4f", epoch + 1, cfg["epochs"], loss.item())
        progress.close()
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(part)[1].argmax(1) for part in x_test.split(1024)])
        accuracy = float((pred == y_test).float().mean())
    what = "rotation accuracy" if rotation else "test accuracy"
    log.info("classifier %s %.4f on %d held-out images", what, accuracy, n_test)
    return accuracy
