"""Optional Inception FID/KID/IS (torchmetrics with torch-fidelity): `metrics.inception=true`.

Needs `pip install -e ".[inception]"` and either internet access (torch-fidelity downloads
`pt_inception-2015-12-05`) or `metrics.inception_weights=PATH` to that file. When neither works
the run logs why and keeps its offline metrics.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

# the keys of `InceptionEvaluator.evaluate`, in order
TAGS = ("metrics/fid_inception", "metrics/kid_inception", "metrics/is_inception")


class InceptionUnavailable(RuntimeError):
    pass


class _Inception(nn.Module):
    """[-1, 1] images of any size and 1 or 3 channels -> the torch-fidelity Inception outputs."""

    def __init__(self, net: nn.Module, feature: str, num_features: int) -> None:
        super().__init__()
        self.net, self.feature, self.num_features = net, feature, num_features

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.uint8:
            x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)[0 if self.feature == "2048" else 1]


def load_network(weights: str | None) -> nn.Module:
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as err:  # pragma: no cover - torchmetrics is a dependency
        raise InceptionUnavailable(str(err)) from err
    try:
        return NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048", "logits_unbiased"],
            feature_extractor_weights_path=weights,
        )
    except Exception as err:
        raise InceptionUnavailable(
            f"Inception weights unavailable ({type(err).__name__}: {err}). Install "
            f'`pip install -e ".[inception]"` and set metrics.inception_weights=PATH to '
            f"pt_inception-2015-12-05-6726825d.pth, or allow its download; offline metrics go on."
        ) from err


class InceptionEvaluator:
    def __init__(self, weights: str | None, real_images: Tensor, device: torch.device) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.inception import InceptionScore
        from torchmetrics.image.kid import KernelInceptionDistance

        net = load_network(weights).to(device)
        self.fid = FrechetInceptionDistance(
            feature=_Inception(net, "2048", 2048), reset_real_features=False
        ).to(device)
        self.kid = KernelInceptionDistance(
            feature=_Inception(net, "2048", 2048),
            reset_real_features=False,
            subset_size=min(1000, len(real_images)),
        ).to(device)
        self.inception_score = InceptionScore(feature=_Inception(net, "logits", 1008)).to(device)
        for part in real_images.split(256):
            self.fid.update(part, real=True)
            self.kid.update(part, real=True)

    def evaluate(self, sample: Callable[[int], Tensor], n: int) -> dict[str, float]:
        self.fid.reset()
        self.kid.reset()
        self.inception_score.reset()
        for part in sample(n).split(256):
            self.fid.update(part, real=False)
            self.kid.update(part, real=False)
            self.inception_score.update(part)
        kid, _ = self.kid.compute()
        is_mean, _ = self.inception_score.compute()
        fid = float(self.fid.compute())
        return dict(zip(TAGS, (fid, float(kid), float(is_mean)), strict=True))
