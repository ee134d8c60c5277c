"""Every way a run can end other than finishing, and the exit status a user sees for each.

| exit | exception          | meaning                                                        |
|------|--------------------|----------------------------------------------------------------|
| 2    | `ConfigError`      | refused before training: a config value, data, checkpoint or   |
|      |                    | run folder that cannot work; nothing was written               |
| 3    | `TrainingDiverged` | stopped during training: NaN/inf or an exploding critic        |
| 3    | `StorageError`     | stopped during training: a file could not be written (full     |
|      |                    | disk, read-only folder); the checkpoints already saved are kept |
| 2    | `ResourceError`    | refused before training: the estimate of what the run holds    |
|      |                    | in memory exceeds what is available (names the key to reduce)  |
| 3    | `ResourceError`    | out of memory during training: the step and what to reduce;    |
|      |                    | the checkpoints already saved are kept                         |
| 1    | (a sweep)          | one or more jobs of a multirun failed, each named on stderr;   |
|      |                    | the other jobs' results are kept                               |
| 128+N| `Interrupted`      | signal N (SIGHUP 129, SIGINT 130, SIGTERM 143; SIGUSR2 140    |
|      |                    | under submitit): a checkpoint of the step reached was saved    |

Hydra refuses unknown group options and misspelled keys before the app runs (exit 1, with the
available options listed).
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# the `auto | true | false` settings
AUTO_BOOL = ("auto", True, False)


class GanExpError(Exception):
    """Base class: `kind` prefixes the one-line message, `exit_status` is the process's."""

    kind = "error"
    exit_status = 2


class ConfigError(GanExpError, ValueError):
    """A config value or combination that cannot train; the message names the option and the fix.

    Raised before any training step so that a typo never costs a half-written run.
    """

    kind = "config error"


class DatasetError(ConfigError):
    """Dataset files missing, unreadable or undownloadable; the message says where they go."""

    kind = "data error"


class CheckpointError(ConfigError):
    """A checkpoint that cannot be used: missing, corrupt, truncated or for another model."""

    kind = "checkpoint error"


class StorageError(GanExpError, OSError):
    """A file or folder that cannot be written or created; the message names the path."""

    kind = "storage error"
    exit_status = 3


class ResourceError(GanExpError, MemoryError):
    """A run that does not fit in memory: refused before training (exit 2, nothing written) or
    out of memory during it (exit 3, see `gan_exp.memory`)."""

    kind = "out of memory"

    def __init__(self, message: str, during_training: bool = False) -> None:
        super().__init__(message)
        self.exit_status = 3 if during_training else 2


class TrainingDiverged(GanExpError, RuntimeError):
    """A loss or critic output became NaN, infinite or exploded."""

    kind = "training diverged"
    exit_status = 3


class Interrupted(GanExpError):
    """A stop signal arrived; a checkpoint of the current step was saved first (if any step ran)."""

    kind = "stopped"

    def __init__(self, signum: int, step: int, path: Path | None) -> None:
        self.signum, self.step, self.path = signum, step, path
        self.exit_status = 128 + signum
        self.handover: Callable[[int, Any], None] | None = None  # submitit's requeue
        name = signal.Signals(signum).name
        where = f"checkpoint saved to {path}" if path else "nothing trained yet"
        super().__init__(f"{name} at step {step}; {where}")


class StartupInterrupted(BaseException):
    """A stop signal during start-up, before the loop handles signals itself.

    A BaseException (like KeyboardInterrupt) so that no library's `except Exception` swallows it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


@contextmanager
def worker_errors() -> Iterator[None]:
    """A DatasetError raised in a DataLoader worker, as the same one line as without workers.

    PyTorch re-raises a worker's exception with the worker's whole traceback as its message;
    the line that names the file is its last.
    """
    try:
        yield
    except DatasetError as err:
        text = str(err).rstrip()
        if "DataLoader worker" not in text.split("\n", 1)[0]:
            raise
        last = text.splitlines()[-1]
        raise DatasetError(last.partition(": ")[2] or last) from None


def _as_written(value: object) -> str:
    """A value as a user writes it in YAML or an override: `true`, not `True`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def check_choice(option: str, value: object, allowed: Collection[object]) -> None:
    """Reject a value not in `allowed`, naming the option and the allowed values."""
    if value not in allowed:
        shown = ", ".join(_as_written(a) for a in allowed)
        raise ConfigError(f"{option}={value!r} is not supported; allowed: {shown}")
