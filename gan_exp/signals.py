"""Stop signals (SIGTERM, SIGINT, SIGHUP), in one place: what they do to a run and to a sweep.

- A lone run: during start-up (imports, data, the metrics classifier) a stop signal ends it at
  once, writing nothing (`StartupInterrupted`); in the training loop it only records itself,
  and the loop saves a checkpoint of the step it is on and stops (`Interrupted`, exit 128+N).
- A sweep run by the basic or the joblib launcher: the parent passes the signal on to its
  worker processes and waits; in every job a stop signal only records itself, so a job that is
  training saves a checkpoint of its step and stops, and a job that has not started training
  stops before it writes anything. The parent then says where each job stopped and prints the
  one command that resumes them all (the same sweep: job folders with checkpoints resume).
- Under submitit (`hydra/launcher=slurm` or `local`) SIGTERM is submitit's, which ignores it;
  its preemption signal (USR2) makes the loop save a checkpoint, then goes back to submitit,
  which requeues the job.

No torch here: a sweep's parent uses this module.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gan_exp.errors import StartupInterrupted

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                     if hasattr(signal, name))
_requested: int | None = None


def requested() -> int | None:
    """The first stop signal this process received since it started, if any."""
    return _requested


def request(signum: int, frame: Any = None) -> None:
    """A handler that only records the signal: the loop, or the next job, acts on it."""
    global _requested
    if _requested is None:
        _requested = signum


def raise_at_startup(signum: int, frame: Any = None) -> None:
    """A lone run's handler until its loop starts: stop now (a BaseException, so that no
    library's `except Exception` swallows it)."""
    raise StartupInterrupted(signum)


@contextlib.contextmanager
def handling(handler: Callable[[int, Any], None],
             sigs: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """`handler` for `sigs` inside the block, the previous handlers after it (left alone
    outside the main thread, where Python cannot set them)."""
    previous = {}
    with contextlib.suppress(ValueError):
        for sig in sigs:
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Stop signals blocked inside the block and delivered right after it: an exception raised
    from a handler inside an import can be swallowed by a library's own `except Exception` and
    leave modules half-initialised."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def in_sweep_job() -> None:
    """In a job of a basic or joblib sweep: from now on a stop signal only records itself
    (a joblib worker keeps it between jobs, so the next job sees it and does not start)."""
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) not in (request, _pass_on):
            with contextlib.suppress(ValueError):
                signal.signal(sig, request)


def in_sweep_parent() -> None:
    """In a sweep's parent (basic or joblib launcher): record a stop signal and pass SIGTERM on
    to the worker processes, so that each running job checkpoints and stops, instead of the
    launcher killing them."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _pass_on)


def _pass_on(signum: int, frame: Any = None) -> None:
    request(signum)
    for pid in _children():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def _children() -> list[int]:
    """This process's child processes (Linux /proc; elsewhere none are found, and Ctrl-C
    still reaches the workers through the terminal's process group)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(stat.parent.name))
    return found


def run_passing_stops(cmd: list[str], **popen: Any) -> int:
    """Run `cmd` (a sweep, for a tool that launches one) to its end and return its exit status.
    A stop signal this process receives is recorded and passed on to it, and the child is
    waited for, so that it stops the way its own handling says (a sweep's jobs checkpoint)
    instead of being killed, as `subprocess.run` kills its child on Ctrl-C."""
    import subprocess

    child = subprocess.Popen(cmd, **popen)

    def pass_on(signum: int, frame: Any = None) -> None:
        request(signum)
        with contextlib.suppress(OSError):  # Ctrl-C already reached it: a second is harmless
            child.send_signal(signum)

    with handling(pass_on):
        return child.wait()


def report_stopped_sweep(sweep_dir: Path, argv: list[str]) -> None:
    """After a stopped sweep's jobs have ended: where each stopped, the command that resumes
    the whole sweep, and the signal's exit status. Nothing when no stop signal came."""
    signum = requested()
    if signum is None:
        return
    from gan_exp.summary import find_jobs

    name = signal.Signals(signum).name
    lines = [f"[gan_exp][WARNING] - sweep stopped by {name}; every job that was training saved "
             f"a checkpoint of the step it reached ({sweep_dir}):"]
    for job in find_jobs(sweep_dir) if sweep_dir.is_dir() else []:
        where = "finished" if job.status == "finished" else (
            f"stopped at step {job.step}" if job.step else "stopped before its first step")
        lines.append(f"  {job.path.name}: {where}")
    args = [a for a in argv if not a.startswith(("hydra.sweep.dir=", "+hydra.sweep.dir="))]
    command = shlex.join(["python", "-m", "gan_exp.train", *args,
                          f"hydra.sweep.dir={sweep_dir}"])
    lines.append(f"[gan_exp][WARNING] - resume the whole sweep (jobs not started included) "
                 f"with: {command}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(128 + signum)
