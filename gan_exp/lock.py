"""A run's folder: created for it (and removed again if the run is refused), and locked while it
trains, one live run per folder (the lock is also read by the sweep summary to tell a running
job from a stopped one). No torch here: the command line's parent process (a sweep's launcher)
uses this module without importing torch."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from gan_exp.errors import ConfigError, StorageError


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """One live run per folder: a lock file holding the owner's pid.

    A lock left by a killed run (its pid no longer alive) is taken over.
    """
    lock = run_dir / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and pid_alive(pid):
                raise ConfigError(
                    f"run folder {run_dir} is in use by process {pid}; choose another "
                    "hydra.run.dir or wait for that run"
                ) from None
            lock.unlink(missing_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot write in run folder {run_dir}: {err.strerror or err}"
            ) from err
    else:
        raise ConfigError(f"could not lock run folder {run_dir}")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_folder(path: Path) -> list[Path]:
    """Create `path` (and missing parents); return the folders created, deepest first."""
    made = []
    probe = path
    while not probe.exists():
        made.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise StorageError(f"cannot create run folder {path}: {probe} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        remove_empty(made)
        raise StorageError(
            f"cannot create run folder {path}: {err.strerror or err} ({err.filename or path})"
        ) from err
    return made


def remove_empty(folders: Sequence[Path]) -> None:
    """Remove folders made for a refused run, deepest first; never one that holds anything."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            return
