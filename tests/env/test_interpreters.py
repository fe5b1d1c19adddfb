"""Interpreter resolution: version matching, search layouts (POSIX and Windows), errors."""

from __future__ import annotations

import os
import platform
import re
import sys

import pytest

from mlops_tasks.base.errors import InterpreterNotFound
from mlops_tasks.env.interpreters import (
    Resolver,
    candidate_paths,
    parse_py_launcher,
    version_matches,
)


def test_version_matching():
    assert version_matches("3.10.13", "3.10")
    assert version_matches("3.11.7", "3.11.7")
    assert not version_matches("3.11.8", "3.11.7")
    assert not version_matches("3.1.0", "3.10")


def test_posix_layout():
    env = {"PATH": "/usr/bin:/home/u/.pyenv/shims:/opt/py/bin"}
    pats = candidate_paths("3.10", env, windows=False, home="/home/u")
    assert "/usr/bin/python3.10" in pats and "/opt/py/bin/python3.10" in pats
    assert not any("shims" in p for p in pats)
    assert "/home/u/.pyenv/versions/3.10*/bin/python3.10" in pats
    assert "/home/u/.local/share/uv/python/cpython-3.10*/bin/python3.10" in pats


def test_windows_layout():
    env = {"PATH": r"C:\Windows;C:\Python310", "LOCALAPPDATA": r"C:\Users\u\AppData\Local",
           "APPDATA": r"C:\Users\u\AppData\Roaming"}
    pats = candidate_paths("3.10", env, windows=True, home=r"C:\Users\u")
    assert r"C:\Python310\python.exe" in pats
    assert r"C:\Users\u\AppData\Local\Programs\Python\Python310\python.exe" in pats
    assert r"C:\Users\u\AppData\Roaming\uv\python\cpython-3.10*\python.exe" in pats
    assert r"C:\Users\u\.pyenv\pyenv-win\versions\3.10*\python.exe" in pats


def test_current_interpreter_is_the_default(tmp_path, monkeypatch):
    from mlops_tasks.base import command

    probes: list[list[str]] = []
    real = command.output

    def counted(argv, **kw):
        probes.append(list(argv))
        return real(argv, **kw)

    monkeypatch.setattr(command, "output", counted)
    found = Resolver(tmp_path / "cache.json").resolve("s", None, None)
    assert found.version.startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert len(probes) == 1
    # a second resolver (another doit process) answers from the cache file without probing
    again = Resolver(tmp_path / "cache.json").resolve("s", None, None)
    assert again == found and len(probes) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX message")
def test_windows_python_exe_on_posix_is_clear(tmp_path):
    with pytest.raises(InterpreterNotFound, match="Windows path"):
        Resolver(tmp_path / "c.json").resolve("train", None, r"C:\Python310\python.exe")


def test_missing_python_exe(tmp_path):
    with pytest.raises(InterpreterNotFound, match="does not exist"):
        Resolver(tmp_path / "c.json").resolve("train", None, str(tmp_path / "nope"))


def test_unknown_version_lists_what_was_found(tmp_path):
    """The interpreter running the tests, on PATH, is listed with its version and path."""
    running = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    with pytest.raises(InterpreterNotFound) as info:
        Resolver(tmp_path / "c.json").resolve("train", "2.1", None,
                                              {"PATH": os.path.dirname(running)})
    message = str(info.value)
    head = ("stage 'train': no Python 2.1 found on PATH, pyenv, uv or the usual install "
            "folders. Found: ")
    assert message.startswith(head)
    listing, rest = message[len(head):].split(". Install Python 2.1 ", 1)
    assert rest.startswith("(e.g. `uv python install 2.1` or pyenv)")
    found = {(version, os.path.realpath(path))
             for version, path in re.findall(r"(\S+) \(([^()]+)\)", listing)}
    assert (platform.python_version(), running) in found, listing


def test_py_launcher_output_both_formats():
    new = (" -V:3.12 *  C:\\Users\\u\\AppData\\Local\\Programs\\Python\\Python312\\python.exe\n"
           " -V:3.10          C:\\Python310\\python.exe\n"
           " -V:ContinuumAnalytics/Anaconda39-64 C:\\Anaconda\\python.exe\n")
    old = " -3.9-64        C:\\Python39\\python.exe\n -2.7-32 *      C:\\Python27\\python.exe\n"
    assert parse_py_launcher(new) == [
        "C:\\Users\\u\\AppData\\Local\\Programs\\Python\\Python312\\python.exe",
        "C:\\Python310\\python.exe"]
    assert parse_py_launcher(old) == ["C:\\Python39\\python.exe", "C:\\Python27\\python.exe"]
