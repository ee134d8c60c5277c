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
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gan_exp import checkpoint, signals
from gan_exp.atomic import atomic_write_text
from gan_exp.config import CONF_DIR, SPECIALISING, compose_config
from gan_exp.errors import (
    ConfigError,
    GanExpError,
    Interrupted,
    StartupInterrupted,
    StorageError,
    TrainingDiverged,
)
from gan_exp.lock import folder_name, make_folder, remove_empty

__all__ = ["CONF_DIR", "compose_config", "main"]

log = logging.getLogger("gan_exp")
FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"

# hydra.run.dir in conf/train.yaml: a resumed run writes into its own folder again
OmegaConf.register_new_resolver("gan_exp_run_dir", checkpoint.run_dir_of, replace=True)
# hydra.sweep.subdir: a job folder's name, shortened where a file system would refuse it
OmegaConf.register_new_resolver("gan_exp_folder_name", folder_name, replace=True)


class _Folders:
    """The single run's folders Hydra is about to create (removed again if it is refused)."""

    created: list[Path] = []


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
        with open_dict(config):
            config.hydra.sweep.dir = sweep_dir
        _check_creatable(Path(sweep_dir), "hydra.sweep.dir")
        if "submitit" not in str(config.hydra.launcher.get("_target_", "")):
            signals.in_sweep_parent()  # the jobs checkpoint and stop; then the report below

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        signals.report_stopped_sweep(Path(str(config.hydra.sweep.dir)), sys.argv[1:])


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


class _Buffer(logging.Handler):
    """Holds the start-up log lines until the run is accepted (then they go to train.log)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class ConsoleHandler(logging.StreamHandler):
    """The console log (conf/hydra/job_logging/console.yaml). A closed pipe (`... | head -1`)
    ends the console output, not the run: the rest goes to /dev/null, and train.log keeps it."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), self.stream.fileno())
            return
        super().handleError(record)


class _QuietFileHandler(logging.FileHandler):
    """train.log; a failed write there (a full disk) is not worth a second traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


class RunRecord:
    """`.hydra/` and `train.log` of one run, written once it is accepted."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.buffer = _Buffer()
        self.file: logging.Handler | None = None
        logging.getLogger().addHandler(self.buffer)

    def accept(self, cfg: DictConfig, resumed: bool) -> None:
        """Write the config record, then the buffered start-up lines and all later ones."""
        hc = HydraConfig.get()
        subdir = Path(".hydra")
        if resumed and (self.run_dir / subdir / "config.yaml").exists():
            subdir = subdir / f"resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}"
        out = self.run_dir / subdir
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, node in (
                ("config.yaml", cfg),
                ("hydra.yaml", OmegaConf.create({"hydra": hc})),
                ("overrides.yaml", OmegaConf.create(list(hc.overrides.task))),
            ):
                atomic_write_text(out / name, OmegaConf.to_yaml(node))
            self.file = _QuietFileHandler(self.run_dir / "train.log", mode="a")
        except OSError as err:
            raise StorageError(
                f"cannot write the run record in {out}: {err.strerror or err}"
            ) from err
        self.file.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        for record in self.buffer.records:
            if record.levelno >= root.getEffectiveLevel():
                self.file.handle(record)
        root.removeHandler(self.buffer)
        root.addHandler(self.file)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.buffer)
        if self.file is not None:
            root.removeHandler(self.file)
            self.file.close()


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
        if name and not any((f / group / f"{name}.yaml").is_file() for f in folders):
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
        if multirun:  # a sweep job's folder is its own: record it even if it is refused
            record.accept(cfg, checkpoint.latest(run_dir) is not None)
        metrics = run.train(
            cfg,
            run_dir,
            list(hc.overrides.task),
            choices=applied_choices(hc),
            on_accept=None if multirun else record.accept,
            created=() if multirun else _Folders.created,
            own_folder=multirun,
        )
    except Interrupted as stop:
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
        if multirun:
            log.error("%s: %s", err.kind, err)
            raise  # Hydra reports which job failed and goes on with the others
        log.error("%s: %s", err.kind, err)
        sys.exit(err.exit_status)
    finally:
        record.close()
    return _objective(cfg, metrics)


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
