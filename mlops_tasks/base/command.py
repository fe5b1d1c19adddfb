"""The one place that starts processes: logged argv, never a shell, typed failures."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mlops_tasks.base import console, interrupt
from mlops_tasks.base.errors import CommandFailed

TAIL_LINES = 25


def _display(argv: Sequence[str]) -> str:
    return " ".join(f'"{a}"' if (" " in a or not a) else a for a in argv)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    echo: bool = True,
    timeout: float | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> str:
    """Run argv to completion; return stdout. Raise CommandFailed with stderr's tail.
    `on_stderr` sees each stderr line as it comes (progress of a long install)."""
    args = [os.fspath(a) for a in argv]
    if echo:
        console.detail(f"$ {_display(args)}")
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
    except FileNotFoundError:
        raise CommandFailed(args, 127, f"{args[0]}: no such file or command") from None
    interrupt.track(proc.pid)
    try:
        if on_stderr is None:
            stdout, stderr = proc.communicate(timeout=timeout)
        else:
            stdout, stderr = _stream(proc, on_stderr, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise CommandFailed(args, -1, f"timed out after {timeout} s") from None
    except BaseException:
        proc.kill()
        raise
    finally:
        interrupt.untrack(proc.pid)
    if proc.returncode != 0:
        tail = "\n".join((stderr or stdout).strip().splitlines()[-TAIL_LINES:])
        raise CommandFailed(args, proc.returncode, tail)
    if echo and stderr.strip() and on_stderr is None:
        console.log_only(stderr)  # what it said on the way: in the stage's log
    return stdout


def _stream(proc: subprocess.Popen[str], on_stderr: Callable[[str], None],
            timeout: float | None) -> tuple[str, str]:
    """Collect stdout in a thread while stderr's lines go to on_stderr as they arrive."""
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read() if proc.stdout
                                                           else ""), daemon=True)
    reader.start()
    lines: list[str] = []
    for line in proc.stderr or []:
        lines.append(line)
        on_stderr(line.rstrip("\n"))
    proc.wait(timeout=timeout)
    reader.join()
    return "".join(chunks), "".join(lines)


def output(argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None,
           timeout: float | None = 60) -> str:
    """Run a quick query command silently and return its stripped stdout."""
    return run(argv, cwd=cwd, echo=False, timeout=timeout).strip()
