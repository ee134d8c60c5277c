"""Evaluation: toy mode coverage, offline classifier-feature metrics, optional Inception ones.

`Evaluator` draws its own noise from its own seeded generator inside `torch.random.fork_rng`,
so evaluating never changes the training run's random stream (resume stays bit-exact).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gan_exp.components import build
from gan_exp.data.base import GANDataset
from gan_exp.data.toy import PointDataset
from gan_exp.metrics.features import ROTATION, feature_task, labelled_images, load_or_train
from gan_exp.metrics.image import ImageEvaluator
from gan_exp.metrics.inception import TAGS as INCEPTION_TAGS
from gan_exp.metrics.inception import InceptionEvaluator, InceptionUnavailable
from gan_exp.metrics.toy import TAGS as TOY_TAGS
from gan_exp.metrics.toy import mode_metrics

log = logging.getLogger(__name__)


class Evaluator:
    def __init__(self, cfg: DictConfig, dataset: GANDataset, device: torch.device) -> None:
        m = cfg.metrics
        self.device, self.seed = device, int(m.seed)
        self.toy = isinstance(dataset, PointDataset)
        self.image: ImageEvaluator | None = None
        self.inception: InceptionEvaluator | None = None
        if self.toy:
            self.dataset: Any = dataset
            self.n = int(m.toy_samples)
            return
        self.n = int(m.n_samples)
        cls_cfg = OmegaConf.to_container(m.classifier, resolve=True)
        data_cfg = OmegaConf.to_container(cfg.dataset, resolve=True)
        if dataset.unsliced is not None:  # dataset.size trains on a slice: measure on the whole
            data_cfg = {**data_cfg, **dataset.unsliced}
            sliced, dataset = len(dataset), build(OmegaConf.create(data_cfg))
            log.info("image metrics: training sees %d of dataset=%s's %d images; the metrics' "
                     "classifier and real statistics use all of them", sliced, dataset.name,
                     len(dataset))
        cache = Path(m.cache_dir) if m.cache_dir else None
        classifier, accuracy = load_or_train(dataset, data_cfg, cls_cfg, cache, device)
        task = feature_task(dataset)
        if task == ROTATION:
            log.info("image metrics: features of a rotation-prediction network (self-supervised: "
                     "dataset=%s has no labels); held-out rotation accuracy %.3f; no class "
                     "metrics", dataset.name, accuracy)
        else:
            log.info("image metrics: features of a classifier of dataset=%s's %d labels; "
                     "held-out accuracy %.3f", dataset.name, int(dataset.labels.max()) + 1,
                     accuracy)
        classes = 4 if task == ROTATION else int(dataset.labels.max()) + 1
        if accuracy < 2 / classes:  # barely above chance: its features cannot rank generators
            log.warning("the image metrics' classifier reaches only %.1f%% held-out accuracy "
                        "(chance %.1f%%) on %d images: FD, KID, precision/recall and coverage "
                        "from its features mean little; give it more images or epochs "
                        "(metrics.classifier.*)", 100 * accuracy, 100 / classes, len(dataset))
        real, _ = labelled_images(dataset, int(m.n_real), device, self.seed + 7)
        self.image = ImageEvaluator(
            classifier,
            real,
            int(dataset.labels.max()) + 1 if task != ROTATION else 4,
            accuracy,
            class_metrics=task != ROTATION,
            kid_subsets=int(m.kid_subsets),
            kid_subset_size=int(m.kid_subset_size),
            pr_k=int(m.pr_k),
            dc_k=int(m.dc_k),
        )
        if m.inception:
            try:
                self.inception = InceptionEvaluator(m.inception_weights, real, device)
            except InceptionUnavailable as err:
                log.warning("%s", err)

    @property
    def names(self) -> list[str]:
        """The tags `__call__` returns."""
        if self.toy:
            return list(TOY_TAGS)
        assert self.image is not None
        return [*self.image.names, *(INCEPTION_TAGS if self.inception is not None else ())]

    def sampler(self, generator: nn.Module, latent_dim: int):
        def sample(n: int) -> Tensor:
            gen = torch.Generator().manual_seed(self.seed)
            z = torch.randn(n, latent_dim, generator=gen)
            out = [generator(part.to(self.device)) for part in z.split(1024)]
            return torch.cat(out)

        return sample

    @torch.no_grad()
    def __call__(self, generator: nn.Module, latent_dim: int) -> dict[str, float]:
        was_training = generator.training
        generator.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                sample = self.sampler(generator, latent_dim)
                if self.toy:
                    return mode_metrics(sample(self.n), self.dataset.means, self.dataset.std)
                assert self.image is not None
                out = self.image.evaluate(sample, self.n)
                if self.inception is not None:
                    out.update(self.inception.evaluate(sample, self.n))
                return out
        finally:
            generator.train(was_training)
