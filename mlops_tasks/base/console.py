"""Every line the package shows a user goes through here: one prefix rule (`task:stage:`),
one mutex so lines from parallel stages never interleave, and writes that no console
encoding can crash (a character the stream cannot encode is escaped, not fatal)."""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mlops_tasks.base.errors import task_label
from mlops_tasks.base.redact import redact

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


def _raw(out: TextIO, text: str) -> None:
    try:
        out.write(text)
    except UnicodeEncodeError:
        encoding = getattr(out, "encoding", None) or "ascii"
        out.write(text.encode(encoding, ERRORS).decode(encoding))


def write(text: str, stream: TextIO | None = None) -> None:
    """Write text as it is (a newline is not added); at a terminal, above the live line."""
    out = stream or sys.stdout
    with _lock:
        shown = _status_shown[0]
        if shown:
            _raw(sys.stdout, "\r\x1b[K")
            sys.stdout.flush()
        _raw(out, text)
        out.flush()
        if shown:
            _draw()


# -- the terminal: live progress, or the full log (MLOPS_VERBOSE=1, or not a terminal) ------

_mode: list[bool] = []
_status: dict[str, tuple[str, float]] = {}  # task label -> (what it is doing, since)
_status_shown = [False]
_ticker: list[threading.Thread] = []
_local = threading.local()
_warned: set[str] = set()


def live() -> bool:
    """At a terminal, unless MLOPS_VERBOSE=1: one line per task and a live progress line;
    cell output and installer logs go to the stage's log file only."""
    if not _mode:
        verbose = os.environ.get("MLOPS_VERBOSE", "").lower() in ("1", "true", "yes")
        tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
        _mode.append(tty and not verbose and _cursor_codes())
    return _mode[0]


def _cursor_codes(windows: bool | None = None) -> bool:
    """Whether the terminal moves the cursor on `\r\x1b[K`: a Windows console does once
    its virtual-terminal mode is on (Windows 10 and later); if it cannot be, the plain log."""
    if not (os.name == "nt" if windows is None else windows):
        return True
    try:
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.GetStdHandle(-11)  # STD_OUTPUT_HANDLE
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        return bool(kernel32.SetConsoleMode(handle, mode.value | 0x0004))
    except (ImportError, AttributeError, OSError):
        return False


def _draw() -> None:
    now = time.monotonic()
    parts = [f"{label}: {what} ({now - since:.0f} s)" for label, (what, since) in
             sorted(_status.items())]
    width = shutil.get_terminal_size((100, 20)).columns - 1
    _raw(sys.stdout, "\r\x1b[K" + " | ".join(parts)[:width])
    sys.stdout.flush()
    _status_shown[0] = bool(parts)


def _tick() -> None:
    while True:
        time.sleep(0.5)
        with _lock:
            if _status:
                _draw()


def progress(label: str, what: str) -> None:
    """What a running task is doing now (shown live at a terminal; nothing otherwise)."""
    if not live():
        return
    with _lock:
        since = _status.get(label, (what, time.monotonic()))[1]
        _status[label] = (what, since)
        _draw()
        if not _ticker:
            _ticker.append(threading.Thread(target=_tick, name="progress", daemon=True))
            _ticker[0].start()


def progress_done(label: str) -> None:
    if not live():
        return
    with _lock:
        _status.pop(label, None)
        if _status_shown[0]:
            _raw(sys.stdout, "\r\x1b[K")
            sys.stdout.flush()
            _status_shown[0] = False
        if _status:
            _draw()


@contextlib.contextmanager
def logging_to(path: Path) -> Iterator[None]:
    """Within: detail lines of this thread (cell output, installer logs) go to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = getattr(_local, "log", None)
    with open(path, "a", encoding="utf-8", errors="replace") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        _local.log = log
        try:
            yield
        finally:
            _local.log = previous


def log_only(text: str) -> None:
    """A line for the stage's log file only (credentials in URLs hidden)."""
    log = getattr(_local, "log", None)
    if log is not None:
        text = redact(text)
        log.write(text if text.endswith("\n") else text + "\n")
        log.flush()


def detail(text: str) -> None:
    """Cell output and installer lines: always in the stage's log file; on the console in
    full only when not live (Jenkins, MLOPS_VERBOSE=1), as plain text. What a notebook or
    an installer prints may hold a URL's credentials: they are hidden in both."""
    text = redact(text)
    log_only(text)
    if not live():
        write(ANSI.sub("", text) if text.endswith("\n") else ANSI.sub("", text) + "\n")


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def say(message: str, task: str | None = None, stage: str | None = None) -> None:
    """One line on stdout, prefixed `task:stage: ` when a task is named."""
    prefix = f"{task_label(task, stage)}: " if task else ""
    write(f"{prefix}{message}\n")


def step(message: str, task: str, stage: str) -> None:
    """Where a task is (building, run id, done in): a line of its own when not live; at a
    terminal, the task's live line (and the stage's log)."""
    if not live():
        say(message, task, stage)
        return
    log_only(f"{task_label(task, stage)}: {message}")
    progress(task_label(task, stage), message)


def warn(message: str, task: str | None = None, stage: str | None = None) -> None:
    """One warning line, in the task's output (stdout); the same warning once per run."""
    prefix = f"{task_label(task, stage)}: " if task else ""
    line = f"{prefix}warning: {message}\n"
    with _lock:
        if line in _warned:
            return
        _warned.add(line)
    write(line)


def error(message: str) -> None:
    """An error line on stderr, in doit's own `ERROR: ...` form."""
    write(f"ERROR: {message}\n", sys.stderr)


def notice(message: str) -> None:
    """A line about the run as a whole (workspace, DB, signals), on stderr."""
    write(f"mlops-tasks: {message}\n", sys.stderr)
