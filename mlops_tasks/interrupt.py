"""Stop cleanly on SIGINT/SIGTERM (a Jenkins abort): kill the kernels (each leads its own
process group) and installers this process started, then unwind so doit saves what
finished, and exit with 128 + the signal number."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from . import console

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


def install() -> None:
    """Install the handlers once, from the main thread (by the commands that run tasks)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM", "SIGBREAK", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _on_signal)
    _installed = True
