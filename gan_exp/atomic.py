"""Write files so that a crash never leaves a half-written one under the final name."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from gan_exp.errors import StorageError


def _replace(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """`write` into a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise write_error(err, path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; these are ordinary files
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError | RuntimeError):
            raise write_error(err, path) from err
        raise
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save, written atomically (checkpoints, caches)."""
    import torch  # only here: the rest of this module is used by processes that never load torch

    return _replace(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """A text file (reports, tables), written atomically."""
    return _replace(path, lambda f: f.write(text.encode()))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """A binary file (a figure's PNG), written atomically."""
    return _replace(path, lambda f: f.write(data))


def _os_error(err: BaseException | None) -> OSError | None:
    """The OSError behind `err`: torch.save reports a failed write as a RuntimeError
    ("enforce fail at inline_container.cc ... unexpected pos") chained to the OSError."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def write_error(err: BaseException, path: Path) -> StorageError:
    """One line naming the file and the file-system problem (full disk, read-only, ...)."""
    cause = _os_error(err)
    try:
        free = shutil.disk_usage(path.parent if path.parent.exists() else "/").free
    except OSError:
        free = -1
    if cause is not None and cause.errno is not None:
        reason = os.strerror(cause.errno)
    elif 0 <= free < 64 * 2**20:
        reason = os.strerror(errno.ENOSPC)
    else:
        reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    shown = f"; {free / 2**20:.1f} MiB free there" if free >= 0 else ""
    return StorageError(f"could not write {path}: {reason}{shown}")


def unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be created or written to, or None if it can."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        readonly = False
        with contextlib.suppress(OSError):
            readonly = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        return f"{probe} is on a read-only file system" if readonly else (
            f"{probe} is not writable (permission denied)"
        )
    return None


def check_writable(folder: Path, option: str, fix: str = "") -> None:
    """Refuse before any work when `folder` (set by `option`) cannot be written."""
    problem = unwritable(folder)
    if problem is not None:
        raise StorageError(f"{option}={folder} cannot be written: {problem}{fix}")
