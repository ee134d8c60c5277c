"""A run's folder: what is in it, who may write there, and what state the run is in.

One folder per run, laid out as

    .hydra/config.yaml ...   the run record (gan_exp.train writes it once the run is accepted;
                             a resumed run adds .hydra/resumed_<time>/)
    train.log                the run's log
    status.json              its state: running | finished | stopped | failed, the newest
                             checkpoint's step and the reason (read by the sweep summary)
    checkpoints/step_*.pt    gan_exp.checkpoint
    metrics.json, events.out.tfevents.*, samples.png
    .lock                    held while the run trains: one live run per folder

A folder is created for a run (and removed again if the run is refused), locked while it
trains, and never written by a run it does not belong to. No torch here: the command line's
parent process (a sweep's launcher) uses this module without importing torch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gan_exp.atomic import atomic_write_text
from gan_exp.checkpoint import CHECKPOINT_DIR, listing, step_of
from gan_exp.errors import CheckpointError, ConfigError, StorageError

LOCK = ".lock"
STATUS = "status.json"
STATES = ("running", "finished", "stopped", "failed")
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


def run_dir_of(resume: str | None, default: str) -> str:
    """The folder a run writes to: the resumed run's own folder, so it stays one run
    (`hydra.run.dir`'s resolver in conf/train.yaml)."""
    if resume in (None, "", "null", "auto"):
        return default
    path = Path(str(resume)).expanduser()
    if not path.exists():
        return default  # refused before training; the guard removes the folder made for it
    if path.is_file():
        path = path.parent
    if path.name == CHECKPOINT_DIR:
        path = path.parent
    return str(path)


def holds_a_run(folder: Path, *, or_its_lock: bool = False) -> bool:
    """Whether `folder` holds a run's files (checkpoints, its record, its log or events); with
    `or_its_lock`, also a run that holds the lock but has written nothing yet (the summary's
    view of a sweep: a job still starting is a job)."""
    names = ("train.log", "metrics.json", STATUS) + ((LOCK,) if or_its_lock else ())
    return bool(listing(folder)) or (folder / ".hydra").is_dir() or any(
        (folder / name).exists() for name in names) or any(folder.glob("events.out.tfevents.*"))


def check_resume_folder(resume_from: Path, step: int, run_dir: Path,
                        discard_newer: bool = False) -> list[Path]:
    """A resume continues in its checkpoint's own run folder, or branches into a new, empty
    one: it never trains inside another run's folder (whose checkpoints rotation would then
    delete), nor over newer checkpoints of its own run without being told to
    (`checkpoint.discard_newer=true`). Returns the newer checkpoints the user asked to discard
    (deleted once the run is accepted)."""
    own = Path(run_dir_of(str(resume_from), str(resume_from.parent)))
    if own.resolve() != run_dir.resolve():
        if holds_a_run(run_dir):
            raise CheckpointError(
                f"resume={resume_from} with hydra.run.dir={run_dir}: that folder holds another "
                f"run; a resume continues in its checkpoint's own folder {own} (leave "
                "hydra.run.dir out) or branches into a new, empty folder (hydra.run.dir=NEW)"
            )
        return []
    newer = [p for p in listing(run_dir) if step_of(p) > step]
    if newer and not discard_newer:
        raise CheckpointError(
            f"resume={resume_from} is step {step}, older than this run's newest checkpoint "
            f"{newer[-1].name}: training in {run_dir} would delete "
            f"{', '.join(p.name for p in newer)} and hide TensorBoard's later steps. Branch "
            "into a new folder instead, leaving this run as it is: add hydra.run.dir=NEW; or, "
            "to continue this run from that step and delete those, add "
            "checkpoint.discard_newer=true"
        )
    return newer


def held_by_another(run_dir: Path) -> bool:
    """Whether a live process other than this one holds the folder's lock."""
    holder = read_holder(run_dir)
    return holder is not None and holder.pid != os.getpid() and holder.alive()


def write_status(run_dir: Path, state: str, reason: str = "") -> None:
    """Record the run's state (one of STATES) with its newest checkpoint's step, atomically:
    the summary reads this instead of parsing log wording. A SIGKILLed run stays "running"
    with no live lock holder, which the summary reports as incomplete."""
    assert state in STATES, state
    newest = listing(run_dir)
    record = {"state": state, "step": step_of(newest[-1]) if newest else 0, "reason": reason,
              "time": datetime.now().isoformat(timespec="seconds")}
    atomic_write_text(run_dir / STATUS, json.dumps(record) + "\n")


def read_status(run_dir: Path) -> dict | None:
    """The run's status record; None where there is none or it cannot be read."""
    try:
        data = json.loads((run_dir / STATUS).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("state") in STATES else None


FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class _Buffer(logging.Handler):
    """Holds the start-up log lines until the run is accepted (then they go to train.log)."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _QuietFileHandler(logging.FileHandler):
    """train.log; a failed write there (a full disk) is not worth a second traceback."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        pass


class RunRecord:
    """`.hydra/`, `train.log` and `status.json` of one run, written once it is accepted: a
    refused command writes nothing into any folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.buffer = _Buffer()
        self.file: logging.Handler | None = None
        self.accepted = False
        logging.getLogger().addHandler(self.buffer)

    def accept(self, cfg: DictConfig, resumed: bool) -> None:
        """Write the config record and status, then the buffered start-up lines and all later
        ones into train.log."""
        from hydra.core.hydra_config import HydraConfig

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
            write_status(self.run_dir, "running")
            self.file = _QuietFileHandler(self.run_dir / "train.log", mode="a")
        except OSError as err:
            raise StorageError(
                f"cannot write the run record in {out}: {err.strerror or err}"
            ) from err
        self.accepted = True
        self.file.setFormatter(logging.Formatter(FORMAT))
        root = logging.getLogger()
        for record in self.buffer.records:
            if record.levelno >= root.getEffectiveLevel():
                self.file.handle(record)
        root.removeHandler(self.buffer)
        root.addHandler(self.file)

    def finish(self, state: str, reason: str = "") -> None:
        """The run's final state; nothing for a run that was never accepted."""
        if self.accepted:
            with contextlib.suppress(OSError):  # a full disk: train.log has said why already
                write_status(self.run_dir, state, reason)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.buffer)
        if self.file is not None:
            root.removeHandler(self.file)
            self.file.close()
            self.file = None
