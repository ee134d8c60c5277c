"""Mode coverage on the 2-D mixtures, per the PacGAN/VEEGAN protocol (Lin et al. 2018;
Srivastava et al. 2017).

Score generated points (2,500 in the protocol): a point is *high quality* when within 3 std of
its nearest mode; a mode is *captured* when it is the nearest mode of at least one
high-quality point; the KL is that of the high-quality points' mode histogram to uniform.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# the keys of `mode_metrics`, in order
TAGS = ("metrics/modes", "metrics/high_quality_pct", "metrics/mode_kl")


def mode_metrics(points: Tensor, means: Tensor, std: float, n_std: float = 3.0) -> dict[str, float]:
    points = points.detach().double().cpu()
    means = means.double().cpu()
    dist, nearest = torch.cdist(points, means).min(dim=1)
    high_quality = dist <= n_std * std
    k = means.shape[0]
    counts = torch.bincount(nearest[high_quality], minlength=k).double()
    if counts.sum() > 0:
        p = counts / counts.sum()
        nz = p > 0
        kl = float((p[nz] * (p[nz] * k).log()).sum())
    else:
        kl = math.log(k)  # no high-quality point: as far from uniform as a point mass
    modes = float((counts > 0).sum())
    high_quality_pct = 100.0 * float(high_quality.double().mean())
    return dict(zip(TAGS, (modes, high_quality_pct, kl), strict=True))
