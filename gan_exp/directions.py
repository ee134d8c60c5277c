"""Which way each metric is better: the best value a run records (gan_exp.metrics.tracker) and
the arrows of the sweep summary's columns. No torch here: the summary runs without it."""

from __future__ import annotations

HIGHER_IS_BETTER = frozenset({
    "metrics/modes",
    "metrics/high_quality_pct",
    "metrics/precision",
    "metrics/recall",
    "metrics/density",
    "metrics/coverage",
    "metrics/classes_hit",
    "metrics/is_inception",
})
LOWER_IS_BETTER = frozenset({
    "metrics/mode_kl",
    "metrics/fd_classifier",
    "metrics/kid_classifier",
    "metrics/class_kl",
    "metrics/fid_inception",
    "metrics/kid_inception",
})


EMA_PREFIX = "metrics_ema/"  # the averaged generator's metrics (train.ema)


def ema_tag(metric: str) -> str:
    """`metrics/fd_classifier` -> `metrics_ema/fd_classifier`."""
    return EMA_PREFIX + metric.split("/", 1)[1]


def base_metric(metric: str) -> str:
    """The metric an averaged generator's tag measures: its direction is that one's."""
    return "metrics/" + metric[len(EMA_PREFIX):] if metric.startswith(EMA_PREFIX) else metric


def higher_is_better(metric: str) -> bool | None:
    """True / False, or None for a metric with no direction."""
    name = base_metric(metric)
    return True if name in HIGHER_IS_BETTER else False if name in LOWER_IS_BETTER else None


def arrow(metric: str) -> str:
    """`↑` (higher is better), `↓` (lower is better) or "" for a metric with no direction."""
    better = higher_is_better(metric)
    return "" if better is None else "↑" if better else "↓"
