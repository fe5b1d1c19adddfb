"""One doit run at a time per workspace: the commands that run tasks or write the dependency
DB take the workspace mutex (an OS file lock, released when the holder exits or dies), so
two Jenkins executors, or a user and Jenkins, queue instead of racing. Read-only commands
(`list`, `info`, ...) never take it."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.base.redact import redact
from mlops_tasks.project import layout

_held: list[FileLock] = []


def _read_owner(path: Path) -> dict[str, Any] | None:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _is_current(owner: dict[str, Any] | None) -> bool:
    """Whether the owner file names a live process (one on another host is taken as is)."""
    if owner is None:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid", 0)), 0)
    except (OSError, ValueError, OverflowError):
        return False
    return True


def _owner_text(path: Path, patience: float = 2.0) -> str:
    """Who holds the workspace. The holder writes its owner file just after taking the mutex:
    give it a moment, so a file left by an earlier holder is not named instead."""
    deadline = time.monotonic() + patience
    owner = _read_owner(path)
    while not _is_current(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
        owner = _read_owner(path)
    if owner is None or not _is_current(owner):  # none yet, or an earlier holder's
        return "another doit process"
    return (f"doit pid {owner.get('pid')} on {owner.get('host')} by {owner.get('user')}, "
            f"`{owner.get('command')}`, since {owner.get('since')}")


def _write_owner(path: Path) -> None:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "user": user,
        "command": redact("doit " + " ".join(sys.argv[1:])),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }), encoding="utf-8")
    os.replace(tmp, path)


def acquire(root: Path, wait: bool) -> None:
    """Hold the workspace mutex for the rest of this process; wait for a holder, or fail.
    Taking it again in the same process is a no-op."""
    if _held:
        return
    mutex = root / layout.workspace_mutex()
    mutex.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(mutex))
    owner = root / layout.workspace_owner()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _owner_text(owner)
        if not wait:
            raise MlopsError(f"the workspace is busy: {holder}. Wait for it, or set "
                             "workspace_busy = \"wait\" in [tool.mlops_tasks]") from None
        console.notice(f"waiting for the workspace, held by {holder}")
        lock.acquire()
    _held.append(lock)
    _write_owner(owner)
