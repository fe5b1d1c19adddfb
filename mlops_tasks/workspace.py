"""One doit run at a time per workspace: commands that run tasks take `.mlops/workspace.lock`
(an OS file lock, released when the holder exits or dies), so two Jenkins executors or a
user and Jenkins queue instead of racing. Read-only commands never wait."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .audit import redact
from .errors import MlopsError

DOIT_COMMANDS = frozenset({"run", "list", "info", "help", "clean", "forget", "ignore",
                           "dumpdb", "strace", "tabcompletion", "reset-dep", "auto"})
READ_ONLY = frozenset({"list", "info", "help", "dumpdb", "strace", "tabcompletion",
                       "wheels", "lock", "gc", "audit"})

_held: list[FileLock] = []


def command_of(argv: Sequence[str], plugins: frozenset[str] = READ_ONLY) -> str:
    """The doit command a command line runs: its first word if that is a command, else run."""
    if argv and (argv[0] in DOIT_COMMANDS or argv[0] in plugins):
        return argv[0]
    return "run"


def needs_lock(argv: Sequence[str]) -> bool:
    return command_of(argv) not in READ_ONLY


def _owner_text(path: Path) -> str:
    try:
        owner: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another doit process"
    return (f"doit pid {owner.get('pid')} on {owner.get('host')} by {owner.get('user')}, "
            f"`{owner.get('command')}`, since {owner.get('since')}")


def acquire(state_dir: Path, wait: bool) -> None:
    """Hold the workspace lock for the rest of this process; wait for a holder, or fail."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "workspace.lock"))
    owner = state_dir / "workspace.owner.json"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder = _owner_text(owner)
        if not wait:
            raise MlopsError(f"the workspace is busy: {holder}. Wait for it, or set "
                             "workspace_busy = \"wait\" in [tool.mlops_tasks]") from None
        sys.stderr.write(f"mlops-tasks: waiting for the workspace, held by {holder}\n")
        sys.stderr.flush()
        lock.acquire()
    _held.append(lock)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    tmp = owner.with_name(f".{owner.name}.{os.getpid()}")
    tmp.write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "user": user,
        "command": redact("doit " + " ".join(sys.argv[1:])),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }), encoding="utf-8")
    os.replace(tmp, owner)
