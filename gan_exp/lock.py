"""One live run per folder: the lock file a run holds while it trains (also read by the sweep
summary to tell a running job from a stopped one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
