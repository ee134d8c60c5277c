"""`python -m MODULE ARGS` (or `python SCRIPT ARGS`) for the tests, forked from one
pre-imported Python.

A fresh interpreter's imports (torch, Hydra, TensorBoard, torchvision) are most of what a short
command-line test costs (docs/development.md has the figures). A zygote process imports them
once and forks a child per command. The child runs the module as `__main__` as `python -m`
does, with the command's argv, `sys.path`, working folder, environment, stdin/stdout/stderr
pipes and process group, and it shuts down as the interpreter does (threads joined, then the
atexit hooks), so the exit status, the output and signals sent to its pid behave as for a real
subprocess. The zygote never runs a torch operation, so no child inherits a thread pool, CUDA
or a random state in use.

A command whose environment changes what Python or torch read at start-up (a fault-injecting
`sitecustomize` on `PYTHONPATH`, thread-count variables) runs as a real subprocess instead:
`popen` and `run` decide, and callers do not need to know. What must be a real interpreter
start (the installed console script, the wheel, the launcher's own imports) is not run here.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what a child may set freely: read by the project at run time, not by the interpreter at start
_RUNTIME_PREFIXES = ("GAN_EXP_", "HYDRA_", "SUBMITIT_", "PYTEST_", "PYTHONUNBUFFERED")
PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL


# ---------------------------------------------------------------- the zygote (its own process)


def _preload() -> None:
    """Import what a run, a sweep's parent and the tools import, without running anything."""
    import pkgutil

    import hydra_plugins  # the launchers and sweepers Hydra discovers on every start
    import tensorboard.backend.event_processing.event_accumulator  # noqa: F401
    import torch  # noqa: F401
    import torch.utils.tensorboard  # noqa: F401
    import torchvision  # noqa: F401

    import gan_exp

    for pkg in (gan_exp, hydra_plugins):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            # an optional extra that is not installed: the child fails as a real run would
            if not info.name.endswith("__main__"):
                with contextlib.suppress(Exception):
                    __import__(info.name)


def _child(request: dict, fds: list[int], started: int) -> None:
    """In the forked child: become `python -m MODULE ARGS` and exit as it would."""
    import io
    import runpy
    import signal

    stdin, stdout, stderr = fds
    if request["new_session"]:
        os.setsid()
    os.write(started, b"1")  # its session exists before the test learns its pid, as with exec
    os.close(started)
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    # the standard streams a fresh interpreter makes on these descriptors
    raw = [open(fd, mode, buffering=0, closefd=False)  # noqa: SIM115 (the process's own)
           for fd, mode in ((0, "rb"), (1, "wb"), (2, "wb"))]
    sys.stdin = io.TextIOWrapper(io.BufferedReader(raw[0]), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(raw[1] if unbuffered else io.BufferedWriter(raw[1]),
                                  encoding="utf-8", write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(raw[2], encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    module, script = request.get("module"), request.get("script")
    sys.argv = [module or script, *request["args"]]
    if module in sys.modules:  # `python -m` has not imported the module it runs as __main__
        del sys.modules[module]
        parent, _, leaf = module.rpartition(".")
        if parent and hasattr(sys.modules.get(parent), leaf):
            delattr(sys.modules[parent], leaf)
    # the path `python` starts with: the script's folder or, for -m, the working folder, then
    # PYTHONPATH's entries
    sys.path[0] = os.path.dirname(os.path.abspath(script)) if script else os.getcwd()
    added = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[1:1] = [os.path.abspath(p) for p in added if p not in sys.path]
    code = 0
    try:
        if module:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # what the interpreter prints for an uncaught exception
        import traceback

        traceback.print_exc()
        code = 1
    try:  # the interpreter's own shutdown: join threads (and their exit hooks), then atexit
        import threading

        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # a closed pipe at exit: the interpreter ignores it too
        pass
    os._exit(code)


def _supervise(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Fork the command, tell the test its pid, wait, tell it the wait status."""
    started_r, started_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        conn.close()
        os.close(started_r)
        _child(request, fds, started_w)
    os.close(started_w)
    os.read(started_r, 1)
    os.close(started_r)
    for fd in set(fds):
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{status}\n".encode())
    conn.close()
    os._exit(0)


def serve(path: str) -> None:
    _preload()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    server.settimeout(1.0)
    print("ready", flush=True)
    while True:
        try:
            conn, _ = server.accept()
        except TimeoutError:
            conn = None
        while True:  # reap the supervisors that are done
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if conn is None:
            if os.getppid() == 1:  # the test session is gone
                return
            continue
        conn.settimeout(None)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        request = json.loads(data)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            server.close()
            _supervise(conn, request, fds)
        conn.close()
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------- the test side

_zygote: dict = {}


def _start() -> str:
    """The zygote's socket, starting the zygote on first use."""
    if "path" not in _zygote:
        folder = tempfile.mkdtemp(prefix="gan_exp_zygote_")
        path = os.path.join(folder, "sock")
        log = open(os.path.join(folder, "zygote.log"), "w")  # noqa: SIM115 (the zygote's life)
        proc = subprocess.Popen([sys.executable, "-m", "tests.zygote", path], cwd=ROOT,
                                stdin=DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True)
        ready = proc.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the test zygote did not start: {ready!r}, see {log.name}")
        atexit.register(_stop, proc, folder)
        _zygote.update(path=path, proc=proc, env=dict(os.environ))
    return _zygote["path"]


def _stop(proc: subprocess.Popen, folder: str) -> None:
    """At the test session's end: the zygote and its socket folder go."""
    proc.kill()
    proc.wait()
    shutil.rmtree(folder, ignore_errors=True)


def _forkable(env: dict[str, str]) -> bool:
    """True when `env` differs from the zygote's only in what is read at run time, or in
    PYTHONPATH folders that hold no `sitecustomize` (which Python runs at start-up)."""
    here = _zygote["env"]
    changed = {k for k in set(env) | set(here) if env.get(k) != here.get(k)}
    if "PYTHONPATH" in changed:
        if here.get("PYTHONPATH"):
            return False
        folders = [Path(p) for p in env["PYTHONPATH"].split(os.pathsep) if p]
        if any((f / name).exists() for f in folders
               for name in ("sitecustomize.py", "usercustomize.py")):
            return False
        changed.discard("PYTHONPATH")
    return all(k.startswith(_RUNTIME_PREFIXES) for k in changed)


class Forked:
    """The part of `subprocess.Popen` the tests use, for a command the zygote forked."""

    def __init__(self, command: list[str], *, cwd, env, stdout, stderr, text,
                 start_new_session):
        self.args = [sys.executable, *command]
        self.returncode: int | None = None
        self._text = text
        keep: list[int] = []
        null = os.open(os.devnull, os.O_RDWR)
        keep.append(null)
        self.stdout = self.stderr = None
        out_w = err_w = null
        if stdout == PIPE:
            r, out_w = os.pipe()
            keep.append(out_w)
            self.stdout = os.fdopen(r, "r" if text else "rb")
        if stderr == PIPE:
            r, err_w = os.pipe()
            keep.append(err_w)
            self.stderr = os.fdopen(r, "r" if text else "rb")
        elif stderr == STDOUT:
            err_w = out_w
        target = ({"module": command[1]} if command[0] == "-m"
                  else {"script": str(Path(cwd, command[0]))})
        request = {**target, "args": [str(a) for a in command[1 + (command[0] == "-m"):]],
                   "cwd": str(cwd), "env": dict(env), "new_session": start_new_session}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(_zygote["path"])
        socket.send_fds(self._sock, [json.dumps(request).encode()], [null, out_w, err_w])
        for fd in keep:
            os.close(fd)
        self._reply = self._sock.makefile("r")
        self.pid = int(self._reply.readline())

    def poll(self) -> int | None:
        self._collect(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._collect(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def _collect(self, timeout: float | None) -> bool:
        """Read the wait status if it comes within `timeout`; True once it has come."""
        if self.returncode is None:
            ready = selectors.DefaultSelector()
            ready.register(self._sock, selectors.EVENT_READ)
            if not ready.select(timeout):
                return False
            self._finish()
        return True

    def _finish(self) -> None:
        line = self._reply.readline()
        if not line:
            raise RuntimeError("the test zygote lost a child")
        self.returncode = os.waitstatus_to_exitcode(int(line))
        self._reply.close()
        self._sock.close()

    def communicate(self, timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        streams = [s for s in (self.stdout, self.stderr) if s is not None and not s.closed]
        chunks: dict = {id(s): [] for s in streams}
        ready = selectors.DefaultSelector()
        for s in streams:
            ready.register(s.fileno(), selectors.EVENT_READ, s)
        while ready.get_map():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = ready.select(left)
            if not events:
                raise subprocess.TimeoutExpired(self.args, timeout)
            for key, _ in events:
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[id(key.data)].append(data)
                else:
                    ready.unregister(key.fd)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        self.wait(left)

        def joined(s):
            if s is None or id(s) not in chunks:
                return None
            data = b"".join(chunks[id(s)])
            s.close()
            return data.decode("utf-8", "replace") if self._text else data

        return joined(self.stdout), joined(self.stderr)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)


def popen(command: list, *, cwd, env: dict | None = None, stdout=PIPE, stderr=PIPE,
          text: bool = True, start_new_session: bool = False):
    """`subprocess.Popen([python, *command], ...)`, forked when it can be.

    `command` is `["-m", MODULE, *args]` or `[SCRIPT, *args]` (SCRIPT relative to `cwd`).
    """
    command = [str(c) for c in command]
    env = dict(os.environ if env is None else env)
    _start()  # its environment is what a fork is compared with
    if _forkable(env):
        return Forked(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=text,
                      start_new_session=start_new_session)
    return subprocess.Popen([sys.executable, *command], cwd=cwd, env=env, stdout=stdout,
                            stderr=stderr, text=text, start_new_session=start_new_session)


def run(command: list, *, cwd, env: dict | None = None,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """`subprocess.run([python, *command], capture_output=True, text=True, ...)`."""
    proc = popen(command, cwd=cwd, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


if __name__ == "__main__":
    serve(sys.argv[1])
