"""Stop cleanly on SIGINT/SIGTERM (a Jenkins abort): kill the kernels (each leads its own
process group) and installers this process started, then unwind so doit saves what
finished, and exit with 128 + the signal number."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

from mlops_tasks.base import console

_children: dict[int, bool] = {}  # pid -> leads its own process group
_lock = threading.RLock()  # the signal handler may run while the main thread holds it
_installed = False


def track(pid: int, group: bool = False) -> None:
    """Remember a running child; `group` when it leads its own process group (kernels)."""
    with _lock:
        _children[pid] = group


def untrack(pid: int) -> None:
    with _lock:
        _children.pop(pid, None)


def kill_children() -> None:
    with _lock:
        pids = list(_children.items())
        _children.clear()
    for pid, group in pids:
        try:
            if os.name == "nt":
                os.kill(pid, signal.SIGTERM)
            elif group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass


def _exit_when_main_thread_ends(code: int) -> None:
    """doit's worker threads are not daemons and would keep a stopped run alive: once the
    main thread has unwound (and doit has saved its DB), end the process."""
    deadline = time.monotonic() + 60
    while threading.main_thread().is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_received: list[str] = []


def received() -> str | None:
    """The signal that stopped this run, if one did (for the reports)."""
    return _received[0] if _received else None


def _on_signal(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    _received.append(name)
    kill_children()
    console.write("\n", sys.stderr)
    console.notice(f"{name} received: stopped the running stage; finished tasks are "
                   "recorded, the interrupted one will run again")
    threading.Thread(target=_exit_when_main_thread_ends, args=(128 + signum,),
                     daemon=True).start()
    raise SystemExit(128 + signum)


def doit_is_the_program() -> bool:
    """Whether this process is `doit` / `python -m doit` (not a program that imported it)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return bool(spec.name in ("doit", "doit.__main__"))
    return os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0] == "doit"


def exit_now(code: int) -> None:
    """End a finished doit run that loaded mlflow without the interpreter's teardown of its
    modules (most of a second after a run, every run): the exit handlers run, the streams
    are flushed, every file and database was closed by doit and the steps. Only when doit
    is the program."""
    if "mlflow" not in sys.modules or not doit_is_the_program():
        return
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: the usual exit
        return
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def install() -> None:
    """Install the handlers once, from the main thread (by the commands that run tasks)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM", "SIGBREAK", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _on_signal)
    _installed = True
