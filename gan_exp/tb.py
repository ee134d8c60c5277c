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

from gan_exp.keys import NOT_SETTINGS, PARTS

# What a reader compares runs by, present in every run (so the parallel-coordinates view never
# drops a run for lacking a column): the config groups chosen, then these values.
GROUPS = (*PARTS, "experiment")
CORE = ("seed", "train.n_critic", "train.batch_size", "optimizer.lr_g", "optimizer.lr_d",
        "optimizer.betas", "penalty.lam")
# Overrides that never distinguish runs' results, nor how they are scored.
NOT_HPARAMS = (*NOT_SETTINGS, "metrics.", "divergence.")


def _value(value: Any) -> bool | int | float | str:
    if isinstance(value, bool | int | float | str):
        return value
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return str(value)


def run_hparams(
    cfg: DictConfig, choices: dict[str, Any] | None = None, overrides: list[str] | tuple = ()
) -> dict[str, bool | int | float | str]:
    """The HParams of a run: the group options chosen, the core values, and every value the
    command set (what a sweep varies), instead of all ~65 flattened keys."""
    choices = choices or {}
    out: dict[str, bool | int | float | str] = {}
    for group in GROUPS:
        node = cfg.get(group)
        name = node.get("name") if isinstance(node, DictConfig) else None
        out[group] = str(choices.get(group) or name or "none")
    for key in CORE:
        value = OmegaConf.select(cfg, key, default=None)
        out[key] = 0.0 if value is None and key == "penalty.lam" else _value(value)
    for item in overrides:
        key = item.lstrip("+~").partition("=")[0]
        if key in GROUPS or key.startswith(NOT_HPARAMS) or "/" in key:
            continue
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            out[key] = _value(value)
    return out


class RunLogger:
    """Thin wrapper so the loop speaks in tags and steps, not writer internals."""

    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self._started = False

    def start_hparams(self, params: dict[str, Any], resumed: bool = False) -> None:
        """The session start (a resumed run keeps its first part's).

        No experiment summary is written: with none, TensorBoard's HParams tab builds its
        columns from *all* runs' hparams and scalar tags, so a digits sweep and a ring sweep
        under one logdir each get their metric columns (with one, it would take every column
        from the first run it reads).
        """
        if not resumed:
            _, ssi, _ = hparams(params, {})
            self.writer.file_writer.add_summary(ssi)
        self._started = True

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def image(self, tag: str, image: Tensor, step: int) -> None:
        self.writer.add_image(tag, image, step)

    def close(self, status: str | None = "success") -> None:
        """Flush everything and end the HParams session: `success` for a finished run,
        `failure` for one that ended for good (diverged), None for one that may be resumed
        (TensorBoard keeps the first status a run writes, so an interrupted part writes none
        and the tab shows it as Unknown until it finishes)."""
        if self._started and status is not None:
            self.writer.file_writer.add_summary(session_end(status))
        self.writer.flush()
        self.writer.close()


def session_end(status: str) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME

    info = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.Status.Value(f"STATUS_{status.upper()}")
    )
    content = plugin_data_pb2.HParamsPluginData(session_end_info=info,
                                                version=PLUGIN_DATA_VERSION)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=PLUGIN_NAME, content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag="_hparams_/session_end_info", metadata=meta)])
