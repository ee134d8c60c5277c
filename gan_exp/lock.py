"""A run's folder: created for it (and removed again if the run is refused), and locked while it
trains, one live run per folder (the lock is also read by the sweep summary to tell a running
job from a stopped one). No torch here: the command line's parent process (a sweep's launcher)
uses this module without importing torch."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gan_exp.errors import ConfigError, StorageError

LOCK = ".lock"
NAME_MAX = 255  # bytes in one file or folder name on Linux, macOS and Windows file systems


def folder_name(name: str) -> str:
    """`name` as a folder name the file system takes: a longer one (a sweep job's overrides)
    keeps its start and ends in a hash of the whole, the same every time, so a re-run sweep
    finds the same folder."""
    if len(os.fsencode(name)) <= NAME_MAX:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    head = os.fsencode(name)[: NAME_MAX - 13].decode(errors="ignore")
    return f"{head}-{digest}"


@dataclass(frozen=True)
class Holder:
    """Who holds a run folder's lock: enough to tell it from a later process with its pid."""

    pid: int
    host: str = ""
    started: str = ""  # the process's start time in clock ticks since boot (Linux), and boot

    @staticmethod
    def me() -> Holder:
        return Holder(os.getpid(), socket.gethostname(), _started(os.getpid()))

    def alive(self) -> bool:
        """Whether the holder still runs. On another host that cannot be checked: alive."""
        if self.host and self.host != socket.gethostname():
            return True
        if not self.pid or not pid_alive(self.pid):
            return False
        return not self.started or _started(self.pid) in ("", self.started)

    def describe(self) -> str:
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"process {self.pid}{where}"


def _started(pid: int) -> str:
    """`<start ticks>@<boot id>` of a live Linux process, "" where /proc cannot tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return f"{fields[19]}@{boot}" if len(fields) > 19 else ""


def read_holder(run_dir: Path) -> Holder | None:
    """The lock's holder (None: no lock, or one that cannot be read); a lock from an older
    gan_exp holds only a pid."""
    try:
        text = (run_dir / LOCK).read_text().strip()
    except OSError:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, int):
            return Holder(data)
        return Holder(int(data["pid"]), str(data.get("host", "")), str(data.get("started", "")))
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """One live run per folder: a lock file naming its holder (pid, host, start time).

    A lock whose holder has ended (a killed run, or a pid since reused by another process) is
    taken over; one held from another host is refused, since its liveness cannot be checked.
    """
    lock = run_dir / LOCK
    if lock.is_dir():
        raise StorageError(f"{lock} is a folder, not a run's lock file; remove it to use "
                           f"run folder {run_dir}")
    me = Holder.me()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            holder = read_holder(run_dir)
            if holder is not None and holder.pid != me.pid and holder.alive():
                raise ConfigError(
                    f"run folder {run_dir} is in use by {holder.describe()}; choose another "
                    f"hydra.run.dir or wait for that run (if it has ended, remove {lock})"
                ) from None
            lock.unlink(missing_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot write in run folder {run_dir}: {err.strerror or err}"
            ) from err
    else:
        raise ConfigError(f"could not lock run folder {run_dir}")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({"pid": me.pid, "host": me.host, "started": me.started}))
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
    too_long = [part for part in path.parts if len(os.fsencode(part)) > NAME_MAX]
    if too_long:
        raise StorageError(
            f"cannot create run folder {path}: its name {too_long[0][:40]}... is "
            f"{len(os.fsencode(too_long[0]))} bytes, and file systems allow {NAME_MAX}"
        )
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
