"""Checkpoints: written atomically, loaded safely, found again for resuming.

A checkpoint is a plain dict of tensors, numbers and strings, so it loads with
`torch.load(weights_only=True)`: no arbitrary unpickling of files a user may have been sent.
Finding checkpoints (for `resume=` and a sweep job's own folder) needs no torch: a sweep's
launcher process uses those functions and stays free of torch's import time (~2.5 s).
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from gan_exp.atomic import atomic_torch_save
from gan_exp.errors import CheckpointError
from gan_exp.keys import PARTS, PRESETS

if TYPE_CHECKING:
    import torch

__all__ = ["CheckpointError"]

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
PATTERN = "step_*.pt"
BEST = f"{CHECKPOINT_DIR}/best.pt"  # checkpoint.keep_best; not a step_*.pt, so never rotated
# dataset values a resumed run may change: where and how the same data is read, not which data
DATA_LOADING = ("num_workers", "in_memory", "max_memory_mb", "root", "cache_dir", "download")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def save(state: dict[str, Any], run_dir: Path, keep: int) -> Path:
    """Write atomically, then delete all but the newest `keep` checkpoints."""
    path = atomic_torch_save(state, checkpoint_path(run_dir, int(state["step"])))
    for old in listing(run_dir)[:-keep]:
        old.unlink()
    return path


def save_best(state: dict[str, Any], run_dir: Path) -> Path:
    return atomic_torch_save(state, run_dir / BEST)


def listing(run_dir: Path) -> list[Path]:
    """The run's checkpoint files, oldest first; anything else in `checkpoints/` is ignored."""
    return sorted(p for p in (run_dir / CHECKPOINT_DIR).glob(PATTERN) if p.is_file())


def latest(run_dir: Path) -> Path | None:
    found = listing(run_dir)
    return found[-1] if found else None


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of writes that a kill interrupted; the checkpoints themselves are whole."""
    for tmp in (run_dir / CHECKPOINT_DIR).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint with weights_only=True, naming the file in every failure."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"checkpoint {path} cannot be read: it is not a PyTorch checkpoint archive (corrupt "
            f"or truncated, or not a checkpoint at all). Use another checkpoint from "
            f"{path.parent}."
        )
    import torch  # here, not at the top: the command line's checks use this module without torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} is not a gan_exp checkpoint: it holds Python objects other than tensors, "
            "numbers and strings, which gan_exp never saves and does not unpickle"
        ) from err
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}); it is corrupt or "
            f"truncated. Use an earlier checkpoint from {path.parent}."
        ) from err
    missing = {"step", "generator", "critic", "opt_g", "opt_d", "config"} - set(
        state if isinstance(state, dict) else {}
    )
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
    if not path.exists():
        raise CheckpointError(missing_target(str(resume)))
    if path.is_dir():
        folder = path.parent if path.name == CHECKPOINT_DIR else path
        found = latest(folder)
        if found is None:
            raise CheckpointError(f"resume={resume}: no checkpoints in {folder / CHECKPOINT_DIR}")
        return found
    return path


def load_given(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint a tool was pointed at (a run folder: its newest; a file: that one) and its
    state, for scripts/evaluate.py and gan-exp-sample."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    ckpt = resolve(str(path), path.parent)
    assert ckpt is not None
    return ckpt, load(ckpt)


def step_of(path: Path) -> int:
    return int(path.stem.split("_")[1])


def missing_target(resume: str) -> str:
    """The message for a resume target that does not exist (checked before Hydra makes folders)."""
    path = Path(resume).expanduser()
    hint = ""
    if path.parent.name == CHECKPOINT_DIR and path.parent.is_dir():
        have = [p.name for p in listing(path.parent.parent)]
        hint = f"; {path.parent} holds {', '.join(have) or 'no checkpoints'}"
    return f"resume={resume}: no such run folder or checkpoint file{hint}"


def config_for_resume(
    state: Mapping, overrides: Sequence[str], path: Path,
    choices: Mapping[str, str | None] | None = None,
) -> DictConfig:
    """The checkpoint's config with this command's value overrides applied.

    A resumed run keeps its model, loss, penalty, optimiser, dataset, seed and presets (the
    tensors only mean something with them); values such as `train.steps` or `log.every` may
    change. Values are parsed by Hydra's own override parser, as on a fresh command line (so
    `1e-4` is a float, not a YAML string).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = OmegaConf.create(state["config"])
    stored_choices = state.get("choices") or {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith(("hydra.", "hydra/")):
            continue
        if override.is_delete():
            raise CheckpointError(f"~{key}: a resumed run cannot delete keys ({path})")
        if key in PARTS:
            stored = cfg[key].get("name")
            if override.value() != stored:
                raise CheckpointError(
                    f"{key}={override.value()} differs from the checkpoint's {key}={stored} "
                    f"({path}); a resumed run keeps its {key}. Start a new run instead."
                )
            continue
        if key in PRESETS or "/" in key:
            wanted = (choices or {}).get(key, override.value())
            if key not in stored_choices or stored_choices[key] != wanted:
                before = stored_choices.get(key, "unknown: the checkpoint predates this record")
                before = "null" if before is None else before
                raise CheckpointError(
                    f"{key}={wanted} on resume: the run was trained with {key}={before} "
                    f"({path}); a resumed run keeps its presets. Leave {key}= off the command "
                    "(or repeat exactly the original), or start a new run."
                )
            continue
        value = override.value()
        if key.startswith("dataset.") and key.split(".")[1] not in DATA_LOADING:
            stored = OmegaConf.select(cfg, key, default=None)
            if value != stored:
                raise CheckpointError(
                    f"{key}={value} differs from the checkpoint's {key}={stored} ({path}); a "
                    "resumed run keeps its data (it may change only how the data is read: "
                    f"dataset.{', dataset.'.join(DATA_LOADING)}). Start a new run instead."
                )
        if key == "seed" and value != cfg.get("seed"):
            raise CheckpointError(
                f"seed={value} differs from the checkpoint's seed={cfg.get('seed')} ({path}); "
                "a resumed run keeps its seed. Start a new run instead."
            )
        OmegaConf.update(cfg, key, value, merge=False, force_add=True)
    return cfg


def restore_module(module: torch.nn.Module, state: dict[str, Any], what: str, path: Path) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path} does not fit this {what}: {err}. Was it saved with another model "
            f"config (e.g. model.latent_dim or widths)?"
        ) from err
