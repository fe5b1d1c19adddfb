"""Every line the package shows a user goes through here: one prefix rule (`task:stage:`),
one mutex so lines from parallel stages never interleave, and writes that no console
encoding can crash (a character the stream cannot encode is escaped, not fatal)."""

from __future__ import annotations

import codecs
import contextlib
import sys
import threading
from typing import TextIO

from .errors import task_label

_lock = threading.Lock()

# What a character becomes on a console that cannot show it (cp1252 on a Western-locale
# Windows agent has no arrow); anything else unencodable is escaped as \uXXXX.
ASCII_FALLBACK = {"\u2192": "->", "\u2190": "<-", "\u2014": "-", "\u2013": "-",
                  "\u2026": "...", "\u2018": "'", "\u2019": "'", "\u201c": '"',
                  "\u201d": '"', "\u2713": "ok", "\u2717": "x", "\u00d7": "x"}
ERRORS = "mlops-fallback"


def _fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeEncodeError):
        raise err
    text = err.object[err.start:err.end]
    return "".join(ASCII_FALLBACK.get(ch) or ch.encode("ascii", "backslashreplace").decode()
                   for ch in text), err.end


codecs.register_error(ERRORS, _fallback)


def safe_streams() -> None:
    """Let doit's own output (task titles, `doit info` reasons, error reports) survive any
    console encoding too: characters stdout and stderr cannot encode fall back to ASCII."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            # a stream that cannot change now keeps its own handler
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors=ERRORS)


def write(text: str, stream: TextIO | None = None) -> None:
    """Write text as it is (a newline is not added)."""
    out = stream or sys.stdout
    with _lock:
        try:
            out.write(text)
        except UnicodeEncodeError:
            encoding = getattr(out, "encoding", None) or "ascii"
            out.write(text.encode(encoding, ERRORS).decode(encoding))
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
