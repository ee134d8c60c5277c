"""Offline image metrics in a classifier's feature space.

FD and KID are computed by torchmetrics from features we supply (FD in float64, from the
eigenvalues of the covariance product rather than `scipy.linalg.sqrtm`); precision/recall
(Kynkaanniemi et al. 2019, k=3), density/coverage (Naeem et al. 2020, k=5) and class coverage
are computed here. Names say "classifier", not "Inception": these are not comparable with
published FIDs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

# the keys of `ImageEvaluator.evaluate`, in order
TAGS = (
    "metrics/fd_classifier",
    "metrics/kid_classifier",
    "metrics/precision",
    "metrics/recall",
    "metrics/density",
    "metrics/coverage",
    "metrics/classes_hit",
    "metrics/class_kl",
    "metrics/classifier_test_accuracy",
)
CLASS_TAGS = ("metrics/classes_hit", "metrics/class_kl")


class SuppliedFeatures(nn.Module):
    """Hands torchmetrics features we already computed (it calls its 'inception' on inputs)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def kth_neighbour_radius(x: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each row of x to its k-th nearest other row."""
    radii = []
    for part in x.split(chunk):
        d = torch.cdist(part, x)
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, -1])  # +1: itself at 0
    return torch.cat(radii)


def _within(query: Tensor, ref: Tensor, radii: Tensor, chunk: int = 2048) -> Tensor:
    """(len(query), len(ref)) bool: query i inside the ball of ref j."""
    return torch.cat([torch.cdist(part, ref) <= radii[None, :] for part in query.split(chunk)])


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: fakes inside the real manifold; recall: reals inside the fake manifold."""
    real, fake = real.float(), fake.float()
    precision = _within(fake, real, kth_neighbour_radius(real, k)).any(dim=1).float().mean()
    recall = _within(real, fake, kth_neighbour_radius(fake, k)).any(dim=1).float().mean()
    return float(precision), float(recall)


def density_coverage(
    real: Tensor, fake: Tensor, k: int = 5, real_radii: Tensor | None = None
) -> tuple[float, float]:
    """Density: mean count of real balls holding each fake, / k; coverage: real balls hit."""
    real, fake = real.float(), fake.float()
    radii = kth_neighbour_radius(real, k) if real_radii is None else real_radii
    inside = _within(fake, real, radii)
    density = inside.float().sum() / (k * fake.shape[0])
    coverage = inside.any(dim=0).float().mean()
    return float(density), float(coverage)


def class_coverage(predicted: Tensor, n_classes: int) -> tuple[float, float]:
    """Classes predicted at least once, and KL(predicted class histogram || uniform)."""
    counts = torch.bincount(predicted.cpu(), minlength=n_classes).double()
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * n_classes).log()).sum())
    return float((counts > 0).sum()), kl


class ImageEvaluator:
    """Real statistics computed once; `evaluate(sample)` scores a generator's samples."""

    def __init__(
        self,
        classifier: nn.Module,
        real_images: Tensor,
        n_classes: int,
        test_accuracy: float,
        kid_subsets: int = 50,
        kid_subset_size: int = 1000,
        pr_k: int = 3,
        dc_k: int = 5,
        class_metrics: bool = True,
    ) -> None:
        self.classifier = classifier
        self.class_metrics = class_metrics
        self.n_classes, self.test_accuracy = n_classes, test_accuracy
        self.pr_k, self.dc_k = pr_k, dc_k
        self.real_features, _ = self.features(real_images)
        dim = self.real_features.shape[1]
        from torchmetrics.image.fid import FrechetInceptionDistance  # ~1 s import: only images

        self.fid = FrechetInceptionDistance(
            feature=SuppliedFeatures(dim), reset_real_features=False
        )
        self.fid.update(self.real_features.double(), real=True)
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.real_radii = kth_neighbour_radius(self.real_features, dc_k)

    @torch.no_grad()
    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats, preds = [], []
        for part in images.split(512):
            f, logits = self.classifier(part)
            feats.append(f.float().cpu())
            preds.append(logits.argmax(1).cpu())
        return torch.cat(feats), torch.cat(preds)

    def evaluate(self, sample: Callable[[int], Tensor], n: int) -> dict[str, float]:
        fake_features, predicted = self.features(sample(n))
        self.fid.reset()  # keeps the real statistics
        self.fid.update(fake_features.double(), real=False)
        fd = float(self.fid.compute())
        size = min(self.kid_subset_size, n, self.real_features.shape[0])
        with warnings.catch_warnings():  # "will save all extracted features": that is the point
            warnings.simplefilter("ignore", UserWarning)
            from torchmetrics.image.kid import KernelInceptionDistance

            kid = KernelInceptionDistance(
                feature=SuppliedFeatures(fake_features.shape[1]),
                subsets=self.kid_subsets,
                subset_size=size,
            )
        kid.update(self.real_features, real=True)
        kid.update(fake_features, real=False)
        kid_mean, _ = kid.compute()
        precision, recall = precision_recall(self.real_features, fake_features, self.pr_k)
        density, coverage = density_coverage(
            self.real_features, fake_features, self.dc_k, self.real_radii
        )
        hit, kl = class_coverage(predicted, self.n_classes)
        values = (fd, float(kid_mean), precision, recall, density, coverage, hit, kl)
        out = dict(zip(TAGS, (*values, self.test_accuracy), strict=True))
        return {k: v for k, v in out.items() if k in self.names}

    @property
    def names(self) -> tuple[str, ...]:
        """The tags `evaluate` returns: no class metrics when the features come from the
        self-supervised rotation task (its 'classes' are rotations, not kinds of image)."""
        if self.class_metrics:
            return TAGS
        return tuple(t for t in TAGS if t not in CLASS_TAGS)
