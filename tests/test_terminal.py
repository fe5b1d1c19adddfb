"""What a run shows: at a terminal, one line per task and a live progress line, the detail
in the stage's log file; without one (Jenkins) or with MLOPS_VERBOSE=1, the full log as
plain text. Never papermill's cell bookkeeping, MLflow's table set-up or a warning twice."""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import PYTHON, clean_env, doit, make_project

pytestmark = pytest.mark.skipif(os.name == "nt", reason="pseudo-terminals are POSIX")


def run_in_pty(root: Path, *args: str, **env: str) -> str:
    """doit with a pseudo-terminal as its stdout and stderr; everything it wrote."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([PYTHON, "-m", "doit", *args], cwd=root, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=clean_env(**env))
    os.close(follower)
    chunks, deadline = [], time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the follower closed: doit is done
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode("utf-8", errors="replace")


def screen_lines(raw: str) -> list[str]:
    """The lines a terminal keeps: a carriage return or erase-line starts the line over."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        current = ""
        for part in line.replace("\x1b[K", "\r").split("\r"):
            current = part or current if part else ""
        lines.append(current)
    return [line for line in lines if line.strip()]


@pytest.mark.integration
def test_at_a_terminal_one_line_per_task_and_live_progress(tmp_path, wheelhouse):
    root = make_project(tmp_path / "p", wheelhouse, with_use=False)
    raw = run_in_pty(root)
    assert "execute:make: cell 3 of 3" in raw  # the live line saw the cells go by
    lines = screen_lines(raw)
    done = [line for line in lines if line.startswith(("\u2713 ", "ok "))]
    assert [line.split()[1] for line in done] == ["execute:make", "log:make"]  # builds its venv
    assert all(line.rstrip().endswith(" s") for line in done)
    assert not any(line.startswith(".  ") for line in lines)  # doit's own task lines
    for noise in ("Executing Cell", "Ending Cell", "Creating initial MLflow", "hi hi",
                  " + ipykernel==", "Input Notebook"):  # cell output, installer log, chatter
        assert noise not in raw, noise
    log = (root / ".mlops" / "logs" / "make.log").read_text(encoding="utf-8")
    assert "hi hi" in log and "Installed " in log and "Executing Cell 3" in log
    verbose = run_in_pty(root, "run", "--always-execute", "execute:make", MLOPS_VERBOSE="1",
                         MLOPS_STAGE_CACHE="off")
    assert ".  execute:make" in verbose and "hi hi" in verbose


@pytest.mark.integration
def test_without_a_terminal_the_full_log_in_plain_text(tmp_path, wheelhouse):
    root = make_project(tmp_path / "p", wheelhouse, with_use=False)
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text().replace("repeat: 2", "repeat: 2\n  unused: 1"))
    out = doit(root).stdout
    assert "\r" not in out and "\x1b" not in out
    assert ".  execute:make" in out and "    hi hi" in out and "Installed " in out
    for noise in ("Executing Cell", "Ending Cell", "Creating initial MLflow", "Input Notebook",
                  "Parent appears to have exited", "running over TCP"):
        assert noise not in out, noise
    assert out.count("parameter 'unused' is not declared") == 1  # once, naming the stage
    assert "execute:make: warning: parameter 'unused'" in out
