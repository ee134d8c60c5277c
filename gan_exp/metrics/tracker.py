"""`metrics.json` in the run folder: the latest value and the best value (with its step)."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from gan_exp.atomic import atomic_write_text
from gan_exp.directions import HIGHER_IS_BETTER, LOWER_IS_BETTER, higher_is_better

# metrics not in HIGHER_IS_BETTER or LOWER_IS_BETTER are recorded without a "best"
__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "MetricsTracker"]


def _better(key: str, new: float, old: float) -> bool:
    if not math.isfinite(new):
        return False
    if not math.isfinite(old):
        return True
    return new > old if higher_is_better(key) else new < old


class MetricsTracker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"final": {}, "final_step": None, "best": {}, "history": []}
        if path.is_file():  # a resumed run keeps its record
            with contextlib.suppress(OSError, ValueError):
                self.data = json.loads(path.read_text())

    def update(self, step: int, values: dict[str, float]) -> None:
        self.data["final"] = values
        self.data["final_step"] = step
        self.data["history"] = [h for h in self.data["history"] if h["step"] < step]
        self.data["history"].append({"step": step, **values})
        for key, value in values.items():
            if higher_is_better(key) is None:
                continue
            best = self.data["best"].get(key)
            if best is None or _better(key, value, best["value"]):
                self.data["best"][key] = {"value": value, "step": step}
        self._write()

    def _write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2, allow_nan=True))
