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


def arrow(metric: str) -> str:
    """`↑` (higher is better), `↓` (lower is better) or "" for a metric with no direction."""
    return "↑" if metric in HIGHER_IS_BETTER else "↓" if metric in LOWER_IS_BETTER else ""
