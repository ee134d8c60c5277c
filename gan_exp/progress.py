"""Progress bars (tqdm) for the slow steps around a run: rendering and caching a dataset,
training the metrics' classifier, evaluating. Shown on a terminal only (tqdm's `disable=None`),
so logs, pipes and tests stay clean; they disappear when done and the log line stays."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def bar(total: int, desc: str, unit: str = "it", **kwargs: Any) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False,
                dynamic_ncols=True, **kwargs)
