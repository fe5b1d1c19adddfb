"""Every line the package shows a user goes through here: one prefix rule (`task:stage:`),
one mutex so lines from parallel stages never interleave, and writes that no console
encoding can crash (a character the stream cannot encode is escaped, not fatal)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from .errors import task_label

_lock = threading.Lock()


def write(text: str, stream: TextIO | None = None) -> None:
    """Write text as it is (a newline is not added)."""
    out = stream or sys.stdout
    with _lock:
        try:
            out.write(text)
        except UnicodeEncodeError:
            encoding = getattr(out, "encoding", None) or "ascii"
            out.write(text.encode(encoding, "backslashreplace").decode(encoding))
        out.flush()


def say(message: str, task: str | None = None, stage: str | None = None) -> None:
    """One line on stdout, prefixed `task:stage: ` when a task is named."""
    prefix = f"{task_label(task, stage)}: " if task else ""
    write(f"{prefix}{message}\n")


def warn(message: str, task: str | None = None, stage: str | None = None) -> None:
    """One warning line, in the task's output (stdout)."""
    prefix = f"{task_label(task, stage)}: " if task else ""
    write(f"{prefix}warning: {message}\n")


def error(message: str) -> None:
    """An error line on stderr, in doit's own `ERROR: ...` form."""
    write(f"ERROR: {message}\n", sys.stderr)


def notice(message: str) -> None:
    """A line about the run as a whole (workspace, DB, signals), on stderr."""
    write(f"mlops-tasks: {message}\n", sys.stderr)
