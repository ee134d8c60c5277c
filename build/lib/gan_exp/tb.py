"""TensorBoard output of one run: scalars, sample images and the hyperparameters, in one folder.

`SummaryWriter.add_hparams` would open a second writer in a timestamped subfolder, which
TensorBoard then lists as a separate run; writing the hparams summaries through the run's own
file writer keeps one run per training run and lets the HParams tab find the run's scalars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams


def flatten_config(cfg: DictConfig) -> dict[str, Any]:
    """Dotted keys -> values TensorBoard's HParams accepts (lists and None become strings)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).startswith("_"):
                    continue
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, (bool, int, float, str)):
            out[prefix] = node
        else:
            out[prefix] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


class RunLogger:
    """Thin wrapper so the loop speaks in tags and steps, not writer internals."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self._session_end = None

    def start_hparams(
        self, params: dict[str, Any], metric_tags: list[str], resumed: bool = False
    ) -> None:
        """Record the config; a resumed run only closes the session its first part opened."""
        exp, ssi, sei = hparams(params, dict.fromkeys(metric_tags, 0.0))
        if not resumed:
            self.writer.file_writer.add_summary(exp)
            self.writer.file_writer.add_summary(ssi)
        self._session_end = sei

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: Tensor, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def close(self, success: bool = True) -> None:
        """Flush everything; only a finished run is marked as a completed HParams session."""
        if success and self._session_end is not None:
            self.writer.file_writer.add_summary(self._session_end)
        self.writer.flush()
        self.writer.close()
