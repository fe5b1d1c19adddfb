"""The installers behind one protocol: what each runs, and the fallback when uv is absent."""

from __future__ import annotations

from pathlib import Path

from mlops_tasks.env import installers
from mlops_tasks.env.installers import Pip, Uv, freeze_text, installer_for


def test_each_installer_builds_installs_and_freezes_its_own_way():
    py, req = Path("/v/bin/python"), Path("/r.txt")
    assert Uv("uv").install_argv(py, req, pinned=True)[:3] == ["uv", "pip", "sync"]
    assert Uv("uv").install_argv(py, req, pinned=False)[:3] == ["uv", "pip", "install"]
    assert Pip().install_argv(py, req, pinned=True)[-1] == "--no-deps"
    assert "--no-deps" not in Pip().install_argv(py, req, pinned=False)
    assert Pip().venv_argv("/usr/bin/python3.11", Path("/e")) == [
        "/usr/bin/python3.11", "-m", "venv", "/e"]
    assert Uv("uv").freeze_argv(py) == ["uv", "pip", "freeze", "--python", "/v/bin/python"]


def test_a_missing_uv_falls_back_to_pip_and_says_so(monkeypatch):
    monkeypatch.setitem(installers.INSTALLERS, "uv", lambda: None)
    found, why = installer_for("uv")
    assert found == Pip() and why == "uv not found; falling back to pip"
    assert installer_for("pip") == (Pip(), None)


def test_the_freeze_is_sorted_and_stripped_whatever_the_installer():
    assert freeze_text("b==2\n  a==1 \n\n") == "a==1\nb==2\n"


def test_a_uv_venv_gets_a_pip_that_acts_on_it_in_both_layouts():
    posix = Uv("/opt/uv bin/uv").shims(Path("/p/.venvs/a"), windows=False)
    assert set(posix) == {"pip", "pip3"}
    assert posix["pip"].startswith("#!/bin/sh\n")
    assert "VIRTUAL_ENV=/p/.venvs/a exec '/opt/uv bin/uv' pip \"$@\"" in posix["pip"]
    windows = Uv("C:\\tools\\uv.exe").shims(Path("C:\\p\\.venvs\\a"), windows=True)
    assert set(windows) == {"pip.cmd", "pip3.cmd"}
    assert windows["pip.cmd"] == ('@set "VIRTUAL_ENV=C:\\p\\.venvs\\a"\r\n'
                                  '@"C:\\tools\\uv.exe" pip %*\r\n')
    assert Pip().shims(Path("/p/.venvs/a"), windows=False) == {}  # pip's venv has its own
