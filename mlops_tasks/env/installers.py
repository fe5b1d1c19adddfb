"""The installers a venv is built with, behind one protocol: uv (fast, hardlinks from its
cache) and pip (the fallback, and an option), registered by name; where they find wheels,
and the environment they run in."""

from __future__ import annotations

import os
import shlex
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mlops_tasks.project.config import Config

_uv_mutex = threading.Lock()


_uv_path: list[str | None] = []


def find_uv() -> str | None:
    """The uv binary (shipped as a dependency), else uv on PATH. Looked up once per process,
    under a mutex: uv's lookup reads sysconfig, which is not thread-safe before Python 3.12,
    and `doit -n 2` builds venvs from two threads."""
    with _uv_mutex:
        if not _uv_path:
            try:
                from uv import find_uv_bin

                _uv_path.append(find_uv_bin())
            except (ImportError, FileNotFoundError):
                _uv_path.append(shutil.which("uv"))
        return _uv_path[0]


def wheel_sources(config: Config) -> tuple[list[str], bool]:
    """Index options by policy, and whether the install is offline."""
    cache = config.root / config.wheels_cache
    filled = cache.is_dir() and any(cache.glob("*.whl"))
    if config.index_policy == "online":
        return (["--find-links", str(cache)] if filled else []), False
    if config.index_policy == "offline" or filled:
        return ["--no-index", "--find-links", str(cache)], True
    return [], False


def installer_env() -> dict[str, str]:
    """The installer sees the user's settings, minus what would leak the orchestrator in."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONHOME", None)
    return env


class Installer(Protocol):
    """One way to make a venv, install requirements into it and read its freeze."""

    @property
    def name(self) -> str: ...

    def venv_argv(self, python: str, env_dir: Path) -> list[str]: ...

    def install_argv(self, venv_py: Path, requirements: Path, pinned: bool) -> list[str]:
        """Exact from a pins file (`pinned`: sync / --no-deps), else resolved."""
        ...

    def freeze_argv(self, venv_py: Path) -> list[str]: ...

    def shims(self, env_dir: Path, windows: bool) -> dict[str, str]:
        """Scripts (name: text) the venv's bin folder needs so that `!pip` in a notebook
        acts on this venv: none where the venv has a pip of its own."""
        ...


@dataclass(frozen=True)
class Uv:
    exe: str
    name: str = "uv"

    def venv_argv(self, python: str, env_dir: Path) -> list[str]:
        return [self.exe, "venv", "--quiet", "--python", python, str(env_dir)]

    def install_argv(self, venv_py: Path, requirements: Path, pinned: bool) -> list[str]:
        if pinned:
            return [self.exe, "pip", "sync", "--quiet", "--python", str(venv_py),
                    str(requirements)]
        return [self.exe, "pip", "install", "--python", str(venv_py), "-r", str(requirements)]

    def freeze_argv(self, venv_py: Path) -> list[str]:
        return [self.exe, "pip", "freeze", "--python", str(venv_py)]

    def shims(self, env_dir: Path, windows: bool) -> dict[str, str]:
        """A uv-built venv has no pip: `pip` and `pip3` in its bin folder run `uv pip` on
        this venv (VIRTUAL_ENV names it), so a notebook's `!pip install` lands in the stage's
        venv, where the run sees it, never in the first pip further along PATH."""
        if windows:
            text = f'@set "VIRTUAL_ENV={env_dir}"\r\n@"{self.exe}" pip %*\r\n'
            return {"pip.cmd": text, "pip3.cmd": text}
        venv, uv = shlex.quote(str(env_dir)), shlex.quote(self.exe)
        text = (f"#!/bin/sh\n# uv-built venv: pip runs uv pip on this venv\n"
                f'VIRTUAL_ENV={venv} exec {uv} pip "$@"\n')
        return {"pip": text, "pip3": text}


@dataclass(frozen=True)
class Pip:
    name: str = "pip"

    def venv_argv(self, python: str, env_dir: Path) -> list[str]:
        return [python, "-m", "venv", str(env_dir)]

    def install_argv(self, venv_py: Path, requirements: Path, pinned: bool) -> list[str]:
        argv = [str(venv_py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--no-compile", "-r", str(requirements)]
        return argv + (["--no-deps"] if pinned else [])

    def freeze_argv(self, venv_py: Path) -> list[str]:
        return [str(venv_py), "-m", "pip", "freeze"]

    def shims(self, env_dir: Path, windows: bool) -> dict[str, str]:
        return {}


def _uv() -> Installer | None:
    exe = find_uv()
    return Uv(exe) if exe else None


# the `installer` setting's values; None: not available on this machine
INSTALLERS: dict[str, Callable[[], Installer | None]] = {"uv": _uv, "pip": Pip}


def installer_for(name: str) -> tuple[Installer, str | None]:
    """The installer the setting names, or pip with the reason when it is not available."""
    found = INSTALLERS.get(name, Pip)()
    if found is None:
        return Pip(), f"{name} not found; falling back to pip"
    return found, None


def freeze_text(text: str) -> str:
    """A freeze as the env's identity: its lines stripped and sorted (uv and pip agree)."""
    lines = sorted(line.strip() for line in text.splitlines() if line.strip())
    return "\n".join(lines) + "\n"
