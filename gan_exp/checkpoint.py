"""Checkpoints: written atomically, loaded safely, found again for resuming.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
`torch.load(weights_only=True)`: no arbitrary unpickling of files a user may have been sent.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from gan_exp.atomic import atomic_torch_save
from gan_exp.errors import ConfigError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
PATTERN = "step_*.pt"
# Overrides a resumed run may not change: they decide what the checkpoint's tensors mean.
GROUPS = ("model", "loss", "penalty", "optimizer", "dataset")


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: missing, corrupt, truncated or for another model."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def save(state: dict[str, Any], run_dir: Path, keep: int) -> Path:
    """Write atomically, then delete all but the newest `keep` checkpoints."""
    path = atomic_torch_save(state, checkpoint_path(run_dir, int(state["step"])))
    for old in sorted(path.parent.glob(PATTERN))[:-keep]:
        old.unlink()
    return path


def latest(run_dir: Path) -> Path | None:
    found = sorted((run_dir / CHECKPOINT_DIR).glob(PATTERN))
    return found[-1] if found else None


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of writes that a kill interrupted; the checkpoints themselves are whole."""
    for tmp in (run_dir / CHECKPOINT_DIR).glob(".step_*.tmp"):
        tmp.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True, naming the file in every failure."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}: {err}); it is corrupt or "
            f"truncated. Use an earlier checkpoint from {path.parent}."
        ) from err
    missing = {"step", "generator", "critic", "opt_g", "opt_d", "config"} - set(state)
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is not a gan_exp checkpoint (missing {sorted(missing)})"
        )
    return state


def resolve(resume: str | None, run_dir: Path) -> Path | None:
    """`resume` -> the checkpoint to start from, or None for a fresh run.

    `auto`: the newest checkpoint in this run folder if there is one. A folder: its newest
    checkpoint (the folder itself or its `checkpoints/`). A file: that checkpoint.
    """
    if resume in (None, "", "null"):
        return None
    if resume == "auto":
        return latest(run_dir)
    path = Path(str(resume)).expanduser()
    if path.is_dir():
        found = latest(path.parent if path.name == CHECKPOINT_DIR else path)
        if found is None:
            raise CheckpointError(f"resume={resume}: no checkpoints in {path / CHECKPOINT_DIR}")
        return found
    if not path.is_file():
        raise CheckpointError(f"resume={resume}: no such checkpoint file or run folder")
    return path


def run_dir_of(resume: str | None, default: str) -> str:
    """The folder a run writes to: the resumed run's own folder, so it stays one run."""
    if resume in (None, "", "null", "auto"):
        return default
    path = Path(str(resume)).expanduser()
    if path.is_file():
        path = path.parent
    if path.name == CHECKPOINT_DIR:
        path = path.parent
    return str(path)


def config_for_resume(stored_yaml: str, overrides: list[str], path: Path) -> DictConfig:
    """The checkpoint's config with this command's value overrides applied.

    A resumed run keeps its model, loss, penalty, optimiser and dataset (the tensors only mean
    something with them); values such as `train.steps` or `log.every` may change.
    """
    cfg = OmegaConf.create(stored_yaml)
    for item in overrides:
        key, _, raw = item.lstrip("+").partition("=")
        if key in ("resume",) or key.startswith(("hydra.", "~")):
            continue
        if key in GROUPS:
            stored = cfg[key].get("name")
            if raw != stored:
                raise CheckpointError(
                    f"{key}={raw} differs from the checkpoint's {key}={stored} ({path}); a resumed "
                    f"run keeps its {key}. Start a new run instead."
                )
            continue
        if key in ("experiment", "debug"):
            continue  # presets were already applied to the stored config
        OmegaConf.update(cfg, key, yaml.safe_load(raw) if raw else None, merge=True)
    return cfg


def restore_module(module: torch.nn.Module, state: dict[str, Any], what: str, path: Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not fit this {what}: {err}. Was it saved with another model "
            f"config (e.g. model.latent_dim or widths)?"
        ) from err
