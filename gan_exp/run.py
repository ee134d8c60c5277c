"""What happens around a run: its folder, lock, resume, checks, and the record it leaves.

`trainer.py` is what happens in a step; this module decides whether a run may start and
prepares everything it needs, so that every refusal comes before anything is written:

1. a fresh command aimed at a folder that already holds checkpoints is refused untouched;
2. the folder is locked (one live run per folder);
3. `resume` is resolved to a checkpoint and the checkpoint's config is rebuilt with this
   command's value overrides (groups, presets and seed must stay as they were);
4. every config value is validated, the data, models, optimisers and evaluator are built;
5. only then is the run *accepted*: `on_accept` writes its record (`.hydra/`, `train.log`) and
   the loop starts. A refused command leaves every folder exactly as it found it, and removes
   the folders made for it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gan_exp import checkpoint, memory, sweep
from gan_exp.atomic import write_error
from gan_exp.components import build_components, resolve_device, seed_everything
from gan_exp.data.base import check_batch_size
from gan_exp.errors import ConfigError, GanExpError, StorageError, TrainingDiverged
from gan_exp.metrics import Evaluator
from gan_exp.run_folder import check_resume_folder, make_folder, remove_empty, run_folder_lock
from gan_exp.tb import RunLogger, run_hparams
from gan_exp.trainer import Trainer
from gan_exp.validation import validate

log = logging.getLogger("gan_exp.trainer")

# on_accept(cfg, resumed): called once a run passed every check, before it writes anything
AcceptHook = Callable[[DictConfig, bool], None]


@dataclass
class Prepared:
    """A run that passed every check: its final config and its built trainer."""

    cfg: DictConfig
    trainer: Trainer
    resumed_from: Path | None
    overrides: list[str]
    discard: list[Path]  # newer checkpoints the command asked to delete (discard_newer)


def train(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    *,
    choices: Mapping[str, str | None] | None = None,
    on_accept: AcceptHook | None = None,
    created: Sequence[Path] = (),
    own_folder: bool = False,
) -> dict[str, float]:
    """Train one run into `run_dir` and return the last logged scalars.

    `cfg.resume` (`auto`, a run folder or a checkpoint file) continues from a checkpoint with
    that checkpoint's config; `overrides` (the command line's) may change its values, e.g.
    `train.steps` (parsed as Hydra parses a command line).
    `choices` (group -> option) is stored in checkpoints so a resume can check its presets.
    `created`: folders made for this run by the caller, removed with ours if it is refused.
    `own_folder`: the folder belongs to this very job (a sweep job's folder is named by its
    sweep and overrides), so checkpoints found there are its own earlier attempt (a requeued
    or re-run job) and are resumed instead of refused.
    Usable without Hydra (tests, notebooks).
    """
    run_dir = Path(run_dir)
    if cfg.get("resume") in (None, "", "null") and checkpoint.latest(run_dir) is not None:
        if own_folder:
            log.info("job folder %s holds this job's checkpoints: resuming", run_dir)
            cfg = cfg.copy()
            cfg.resume = "auto"
            return train(cfg, run_dir, overrides, choices=choices, on_accept=on_accept,
                         created=created)
        raise ConfigError(
            f"run folder {run_dir} already holds checkpoints; pass resume=auto to continue "
            "that run, or choose another hydra.run.dir"
        )
    made = [*created, *make_folder(run_dir)]
    accepted = False
    try:
        with run_folder_lock(run_dir):
            prepared = prepare(cfg, run_dir, overrides, choices or {})
            if prepared is None:  # already finished: nothing to do, nothing written
                return finished_metrics(run_dir)
            accepted = True
            if on_accept is not None:
                on_accept(prepared.cfg, prepared.resumed_from is not None)
            return run_prepared(prepared)
    finally:
        if not accepted:
            remove_empty(made)


def prepare(
    cfg: DictConfig,
    run_dir: Path,
    overrides: Sequence[str],
    choices: Mapping[str, str | None],
) -> Prepared | None:
    """Every check and every build a run needs, writing nothing; None if already finished."""
    resume_from = checkpoint.resolve(cfg.get("resume"), run_dir)
    state, discard = None, []
    if resume_from is not None:
        state = checkpoint.load(resume_from)
        discard = check_resume_folder(resume_from, int(state["step"]), run_dir,
                                      bool(cfg.checkpoint.get("discard_newer", False)))
        cfg = checkpoint.config_for_resume(state, overrides, resume_from, choices)
        validate(cfg)
        step, steps = int(state["step"]), int(cfg.train.steps)
        if step > steps:
            raise ConfigError(
                f"train.steps={steps} is below the checkpoint's step {step} ({resume_from}); "
                f"nothing to train. Pass train.steps above {step} to train further."
            )
        if step == steps:
            log.info("run %s already finished %d steps (%s); nothing to train", run_dir, step,
                     resume_from)
            return None
    else:
        validate(cfg)
    slot = sweep.current_slot()
    sweep.apply_threads(cfg.get("threads", "auto"), slot)
    device = resolve_device(sweep.spread_device(str(cfg.device), slot))
    seed_everything(int(cfg.seed))
    parts = build_components(cfg, device)
    check_batch_size(int(cfg.train.batch_size), parts.dataset)  # before training a classifier on it
    seed_everything(int(cfg.seed))  # the loop's randomness does not depend on how models were built
    evaluator = Evaluator(cfg, parts.dataset, device) if cfg.metrics.enabled else None
    check_optimized_metric(cfg, evaluator)
    # a resumed run keeps recording its own group choices, not the resume command's defaults
    run_choices = dict(state.get("choices") or choices) if state is not None else dict(choices)
    trainer = Trainer(cfg, run_dir, parts, device, evaluator, choices=run_choices)
    if state is not None and resume_from is not None:
        trainer.load_state_dict(state, resume_from)
    return Prepared(cfg, trainer, resume_from, list(overrides), discard)


def finished_metrics(run_dir: Path) -> dict[str, float]:
    """A finished run's last evaluated metrics (metrics.json), for sweepers re-running it."""
    try:
        final = json.loads((run_dir / "metrics.json").read_text()).get("final", {})
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in final.items() if isinstance(v, int | float)}


def check_optimized_metric(cfg: DictConfig, evaluator: Evaluator | None) -> None:
    key = cfg.get("optimized_metric")
    if cfg.checkpoint.get("keep_best", False):
        from gan_exp.directions import HIGHER_IS_BETTER, LOWER_IS_BETTER

        ranked = sorted(n for n in (evaluator.names if evaluator is not None else [])
                        if n in HIGHER_IS_BETTER | LOWER_IS_BETTER)
        if key not in ranked:
            raise ConfigError(
                f"checkpoint.keep_best=true needs optimized_metric set to an evaluated metric "
                f"with a better direction (got optimized_metric={key}); allowed: "
                f"{', '.join(ranked) or 'none (metrics.enabled=false)'}"
            )
    if not key or key.startswith(("loss/", "critic/")):
        return
    names = evaluator.names if evaluator is not None else []
    if key not in names:
        raise ConfigError(
            f"optimized_metric={key} is not computed by this run; available: "
            f"{', '.join(names) or 'none (metrics.enabled=false)'}, or a loss/ or critic/ tag"
        )


def run_prepared(prepared: Prepared) -> dict[str, float]:
    """Train an accepted run; file-system failures end it with one line naming the path."""
    cfg, trainer = prepared.cfg, prepared.trainer
    run_dir, parts = trainer.run_dir, trainer.parts
    checkpoint.remove_stale_temporaries(run_dir)
    for path in prepared.discard:
        log.warning("checkpoint.discard_newer=true: deleting %s (newer than the resumed step %d)",
                    path, trainer.step)
        path.unlink(missing_ok=True)
    if prepared.resumed_from is not None:
        log.info("resumed from %s at step %d", prepared.resumed_from, trainer.step)
    log.info(
        "run %s: loss=%s penalty=%s model=%s %s optimizer=%s on %s",
        run_dir,
        cfg.loss.name,
        cfg.penalty.name,
        cfg.model.name,
        parts.dataset.describe(),
        cfg.optimizer.name,
        trainer.device,
    )
    applied = trainer.choices.get("loss_dataset")
    log.info("specialised for loss=%s on dataset=%s: %s", trainer.choices.get("loss"),
             trainer.choices.get("dataset"),
             f"loss_dataset={applied}" if applied else "none (the presets as they are)")
    metrics: dict[str, Any] = {}
    status: str | None = None  # HParams session status; None: may be resumed
    logger = None
    try:
        # purge_step hides events a killed run logged after the checkpoint it resumes from
        resumed = prepared.resumed_from is not None
        logger = RunLogger(run_dir, purge_step=trainer.step + 1 if resumed else None)
        logger.start_hparams(run_hparams(cfg, trainer.choices, prepared.overrides),
                             resumed=resumed)
        metrics = trainer.run(logger)
        from torchvision.utils import save_image  # imported once a run is done (~1.5 s)

        save_image(trainer.preview(), run_dir / "samples.png")
        if trainer.ema is not None:
            save_image(trainer.preview(trainer.ema.module), run_dir / "samples_ema.png")
        status = "success"
    except TrainingDiverged:
        status = "failure"
        raise
    except (RuntimeError, MemoryError) as err:
        if not memory.is_out_of_memory(err) or isinstance(err, GanExpError):
            raise
        status = "failure"
        raise memory.out_of_memory(err, trainer.step, trainer.device,
                                   checkpoint.latest(run_dir)) from err
    except StorageError:
        raise
    except OSError as err:
        raise write_error(err, Path(err.filename or run_dir)) from err
    finally:
        if logger is not None:
            try:
                logger.close(status)
            except OSError as err:
                if status == "success":
                    raise write_error(err, run_dir) from err
    log.info("finished %d steps: %s", trainer.step, {k: round(v, 5) for k, v in metrics.items()})
    return metrics
