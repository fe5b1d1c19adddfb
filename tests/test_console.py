"""No output of the tool crashes on a console that cannot encode it: a Western-locale Windows
agent (cp1252) is emulated with PYTHONIOENCODING=cp1252."""

from __future__ import annotations

import io
import sys

import pytest

from mlops_tasks.base import console

from .helpers import clean_env, doit, make_project


def cp1252_stream() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="cp1252")


def test_what_cp1252_cannot_show_falls_back_to_ascii():
    out = cp1252_stream()
    console.write("python 3.10.1 → 3.11.7 ✓ 日本 é\n", out)
    out.seek(0)
    assert out.read() == "python 3.10.1 -> 3.11.7 ok \\u65e5\\u672c é\n"


def test_safe_streams_covers_what_doit_prints_itself(monkeypatch):
    stdout, stderr = cp1252_stream(), cp1252_stream()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    console.safe_streams()
    print("reason: 'greeting' changed: \"hi\" → \"ho\"")
    sys.stderr.write("TaskError → failed\n")
    for stream in (stdout, stderr):
        stream.seek(0)
        assert "->" in stream.read()


@pytest.mark.integration
def test_a_cp1252_console_runs_info_and_rebuilds(tmp_path, wheelhouse):
    root = make_project(tmp_path / "p", wheelhouse, with_use=False)
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text() + "packages: [idna==3.6]\n", encoding="utf-8")
    env = clean_env(PYTHONIOENCODING="cp1252")
    doit(root, env=env)  # the full run
    spec.write_text(spec.read_text().replace("greeting: hi", "greeting: ho"), encoding="utf-8")
    info = doit(root, "info", "execute:make", env=env, check=False)
    assert info.returncode == 1, info.stderr  # doit's own status for "would run"; a crash is 3
    assert '"hi" -> "ho"' in info.stdout and "Traceback" not in info.stderr
    spec.write_text(spec.read_text().replace("idna==3.6", "idna>3.6"), encoding="utf-8")
    rebuilt = doit(root, "run", "venv:make", env=env)
    assert "packages: idna==3.6 -> idna>3.6" in rebuilt.stdout


def test_a_console_without_cursor_codes_gets_the_plain_log():
    """A Windows console whose virtual-terminal mode cannot be turned on (here: no
    ctypes.windll at all) must not be sent `\\r\\x1b[K`."""
    assert console._cursor_codes(windows=True) is False
    assert console._cursor_codes(windows=False) is True
