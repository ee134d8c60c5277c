"""`python -m gan_exp.train [overrides]` (or `gan-exp-train`): the command-line entry point.

Hydra composes the config; `gan_exp.run.train` does the work. This module only turns what
happens into what a user sees: one line per error, the exit status of `gan_exp.errors`, and a
run record (`.hydra/`, `train.log`) written only once a run has passed its checks, so a refused
command leaves every folder as it was and no new one behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_exp import checkpoint, signals
from gan_exp.config import (
    CONF_DIR,
    SPECIALISING,
    command_line_typo,
    compose_config,
    option_file,
)
from gan_exp.errors import (
    ConfigError,
    GanExpError,
    Interrupted,
    StartupInterrupted,
    StorageError,
    TrainingDiverged,
)
from gan_exp.run_folder import (
    STATUS,
    RunRecord,
    folder_name,
    held_by_another,
    make_folder,
    read_status,
    remove_empty,
    run_dir_of,
)

__all__ = ["CONF_DIR", "compose_config", "main"]

log = logging.getLogger("gan_exp")
# a sweep in which one or more jobs failed (each named on stderr); a single run exits with its
# error's status (gan_exp.errors), a stopped sweep with 128 + the signal
FAILED_JOBS_EXIT = 1

# hydra.run.dir in conf/train.yaml: a resumed run writes into its own folder again
OmegaConf.register_new_resolver("gan_exp_run_dir", run_dir_of, replace=True)
# hydra.sweep.subdir: a job folder's name, shortened where a file system would refuse it
OmegaConf.register_new_resolver("gan_exp_folder_name", folder_name, replace=True)


class _Folders:
    """The single run's folders Hydra is about to create (removed again if it is refused)."""

    created: list[Path] = []
    sweep_started = 0.0


class RunFolderGuard(Callback):
    """Hydra callback (`hydra.callbacks` in conf/train.yaml) that runs before Hydra creates the
    output folder: it notes which folders are new and refuses one that cannot be created."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = str(config.hydra.run.dir)
        if not run_dir.strip():
            _report(ConfigError("hydra.run.dir is empty; give the run a folder of its own (or "
                                "leave hydra.run.dir out for a new one under outputs/runs/)"))
        _Folders.created = _check_creatable(Path(run_dir), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not str(config.hydra.sweep.dir).strip():
            _report(ConfigError("hydra.sweep.dir is empty; give the sweep a folder of its own"))
        # Freeze the sweep folder's name (its ${now:...}) in the config the launcher ships to
        # its jobs: a job that submitit requeues later must find the same folder to resume.
        sweep_dir = str(config.hydra.sweep.dir)
        _Folders.sweep_started = time.time()
        with open_dict(config):
            config.hydra.sweep.dir = sweep_dir
        _check_creatable(Path(sweep_dir), "hydra.sweep.dir")
        if "submitit" not in str(config.hydra.launcher.get("_target_", "")):
            signals.in_sweep_parent()  # the jobs checkpoint and stop; then the report below

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        signals.report_stopped_sweep(sweep_dir, sys.argv[1:])
        # an Optuna study with FAIL trials has still done its work (max_failure_rate)
        optuna = "optuna" in str(config.hydra.sweeper.get("_target_", ""))
        report_failed_jobs(sweep_dir, _Folders.sweep_started, exit_on_failure=not optuna)


def report_failed_jobs(sweep_dir: Path, since: float, *, exit_on_failure: bool = True) -> None:
    """After a sweep: one line per job that failed in it (the reason its status.json records)
    or could not start because another live process holds its folder (another sweep into the
    same folder; nothing of this sweep was written there), then exit status 1. The other
    jobs' results are kept as they are."""
    failed = []
    folders = sorted(p for p in sweep_dir.iterdir() if p.is_dir()) if sweep_dir.is_dir() else []
    for folder in folders:
        status = read_status(folder)
        with contextlib.suppress(OSError):
            if held_by_another(folder):  # this sweep's jobs have all ended
                failed.append(f"  {folder.name}: not run, its folder is in use by another "
                              "process (another sweep into the same hydra.sweep.dir?)")
            elif status and status["state"] == "failed" and \
                    (folder / STATUS).stat().st_mtime >= since - 1:
                failed.append(f"  {folder.name}: {status.get('reason', '')}")
    if failed:
        print(f"[gan_exp][ERROR] - {len(failed)} sweep job(s) failed; the other jobs' results "
              f"are kept in {sweep_dir}:\n" + "\n".join(failed), file=sys.stderr, flush=True)
        if exit_on_failure:
            sys.exit(FAILED_JOBS_EXIT)


def _check_creatable(folder: Path, option: str) -> list[Path]:
    """Create `folder` now (Hydra would next) so a failure is one line, not a traceback."""
    try:
        return make_folder(folder.absolute())
    except StorageError as err:
        _report(StorageError(f"{option}: {err}"))
        raise


def _report(err: GanExpError) -> None:
    """Before Hydra's logging is set up: the one line on stderr, then the exit status."""
    print(f"[gan_exp][ERROR] - {err.kind}: {err}", file=sys.stderr)
    sys.exit(err.exit_status)


class ConsoleHandler(logging.StreamHandler):
    """The console log (conf/hydra/job_logging/console.yaml). A closed pipe (`... | head -1`)
    ends the console output, not the run: the rest goes to /dev/null, and train.log keeps it."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            return
        super().handleError(record)


def _import_training_code() -> Any:
    """`gan_exp.run`, imported here in the process that trains: a sweep's launcher process
    (joblib, submitit) then never loads torch (~2.5 s of its start-up). Stop signals are held
    during the import and delivered right after it (gan_exp.signals.held)."""
    with signals.held():
        from gan_exp import run
    return run


def resume_argument(run_dir: Path) -> str:
    """`resume=<run_dir>` as one word to paste into a shell: quoted for Hydra too, since a sweep
    job's folder name holds `=` and `,`, which Hydra would read as override syntax."""
    value = f"resume='{run_dir}'" if "'" not in str(run_dir) else f'resume="{run_dir}"'
    if any(c in str(run_dir) for c in "'\"$`\\!"):
        return shlex.quote(value)
    return f'"{value}"'


def applied_choices(hc: Any) -> dict[str, str | None]:
    """Hydra's group choices, with an optional specialising config that does not exist (most
    `${loss}_${dataset}` pairs: the loss needs nothing special there) recorded as None."""
    choices = dict(hc.runtime.choices)
    for group in SPECIALISING:
        name = choices.get(group)
        folders = [CONF_DIR] + [Path(s.path) for s in hc.runtime.config_sources
                                if s.schema == "file"]
        if name and option_file(group, name, folders) is None:
            choices[group] = None
    return choices


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    run_dir = Path(hc.runtime.output_dir)
    if multirun and "submitit" not in str(hc.launcher.get("_target_", "")):
        signals.in_sweep_job()
        if signals.requested() is not None:  # the sweep was stopped before this job started
            name = signal.Signals(signals.requested()).name
            log.warning("%s not started: the sweep was stopped by %s", run_dir.name, name)
            return None
    run = _import_training_code()
    record = RunRecord(run_dir)
    try:
        metrics = run.train(
            cfg,
            run_dir,
            list(hc.overrides.task),
            choices=applied_choices(hc),
            on_accept=record.accept,
            created=() if multirun else _Folders.created,
            own_folder=multirun,
        )
        objective = _objective(cfg, metrics)
        record.finish("finished")
    except Interrupted as stop:
        record.finish("stopped", f"stopped by {stop}")
        if stop.handover is not None:  # submitit: it requeues the job, which resumes here
            log.warning("stopped by %s; submitit requeues the job, which resumes from it", stop)
            record.close()
            stop.handover(stop.signum, None)
        if multirun:  # the sweep's parent reports every job and the command that resumes them
            log.warning("stopped by %s", stop)
            return None
        log.warning("stopped by %s; resume with %s", stop, resume_argument(run_dir))
        sys.exit(stop.exit_status)
    except GanExpError as err:
        if multirun and not record.accepted and not held_by_another(run_dir):
            # a sweep job's folder is its own: it keeps the record of why the job failed (a
            # folder another live job holds is left untouched)
            with contextlib.suppress(GanExpError):
                record.accept(cfg, checkpoint.latest(run_dir) is not None)
        log.error("%s: %s", err.kind, err)
        record.finish("failed", f"{err.kind}: {err}")
        if not multirun:
            sys.exit(err.exit_status)
        if "optuna" in str(hc.sweeper.get("_target_", "")):
            raise  # Optuna records a FAIL trial and goes on (max_failure_rate in hparams_search)
        return None  # the sweep goes on; on_multirun_end names each failed job
    except Exception as err:  # a bug or an out-of-memory error: the status says so
        record.finish("failed", f"{type(err).__name__}: {err}")
        raise
    finally:
        record.close()
    return objective


def _objective(cfg: DictConfig, metrics: dict[str, float]) -> float | None:
    """`optimized_metric` for sweepers. A NaN/inf objective fails the job instead of being
    returned: hydra-optuna-sweeper would otherwise end the whole study on it, while a failed
    job is recorded as a FAIL trial and the study goes on (max_failure_rate in hparams_search)."""
    key = cfg.get("optimized_metric")
    if not key:
        return None
    value = metrics.get(key)
    if value is not None and not math.isfinite(value):
        err = TrainingDiverged(f"optimized_metric {key}={value} is not finite")
        log.error("%s: %s", err.kind, err)
        raise err
    return value


_RESUME = re.compile(r"^\+{0,2}resume=(.*)$")


def _check_resume_argument(argv: list[str]) -> None:
    """Refuse a resume target that does not exist before Hydra makes a folder of its name."""
    for arg in argv:
        match = _RESUME.match(arg)
        if not match:
            continue
        value = match.group(1).strip().strip("'\"")
        if value in ("", "null", "auto") or "," in value or "(" in value:
            continue
        if not Path(value).expanduser().exists():
            _report(checkpoint.CheckpointError(checkpoint.missing_target(value)))


def main() -> None:
    """The console entry point: `gan-exp-train` and `python -m gan_exp.train`."""
    _check_resume_argument(sys.argv[1:])
    typo = command_line_typo(sys.argv[1:])
    if typo is not None:
        _report(ConfigError(typo))
    previous = {sig: signal.signal(sig, signals.raise_at_startup) for sig in signals.STOP_SIGNALS}
    try:
        _hydra_main()
    except StartupInterrupted as stop:
        name = signal.Signals(stop.signum).name
        print(f"[gan_exp][WARNING] - stopped by {name} during start-up, before any training "
              "step; nothing was written. Run the same command again.", file=sys.stderr)
        sys.exit(128 + stop.signum)
    finally:
        remove_empty(_Folders.created)  # only empty ones: what a refused run left
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    # run as the importable module, so Hydra's callback (gan_exp.train.RunFolderGuard) and this
    # entry point share one module and its state
    from gan_exp.train import main as _main

    _main()
