"""Find local Python interpreters for a version request, with a probe cache."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from mlops_tasks.base import command
from mlops_tasks.base.errors import CommandFailed, InterpreterNotFound
from mlops_tasks.base.files import atomic_write

PROBE = ("import sys,platform;print(platform.python_version());print(sys.implementation.name);"
         "print(sys.executable)")
WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    implementation: str

    @property
    def short(self) -> str:
        return ".".join(self.version.split(".")[:2])


def version_matches(version: str, request: str) -> bool:
    """'3.10' matches 3.10.13; '3.11.7' matches only 3.11.7."""
    want = request.split(".")
    return version.split(".")[: len(want)] == want


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def candidate_paths(request: str, env: Mapping[str, str], windows: bool,
                    home: str) -> list[str]:
    """Glob patterns where an interpreter for `request` may live, most specific first.

    Covers PATH, pyenv (and pyenv-win), uv's managed interpreters, the Windows `py`
    launcher's usual install folders. Only patterns: nothing is started here.
    """
    major_minor = ".".join(request.split(".")[:2])
    nodot = major_minor.replace(".", "")
    patterns: list[str] = []
    sep = ";" if windows else os.pathsep
    for entry in env.get("PATH", "").split(sep):
        if not entry or "shims" in entry.replace("\\", "/").split("/"):
            continue  # pyenv shims pick a version by directory; pyenv's own folders follow
        if windows:
            patterns.append(f"{entry}\\python{nodot}.exe")
            if re.search(rf"Python{nodot}(\b|-)", entry, re.I):
                patterns.append(f"{entry}\\python.exe")
        else:
            patterns.append(f"{entry}/python{major_minor}")
    pyenv_root = env.get("PYENV_ROOT") or (f"{home}\\.pyenv\\pyenv-win" if windows
                                           else f"{home}/.pyenv")
    if windows:
        patterns.append(f"{pyenv_root}\\versions\\{major_minor}*\\python.exe")
        local = env.get("LOCALAPPDATA", f"{home}\\AppData\\Local")
        program_files = env.get("ProgramFiles", "C:\\Program Files")
        patterns += [
            f"{local}\\Programs\\Python\\Python{nodot}\\python.exe",
            f"{program_files}\\Python{nodot}\\python.exe",
            f"C:\\Python{nodot}\\python.exe",
            f"{env.get('APPDATA', home)}\\uv\\python\\cpython-{major_minor}*\\python.exe",
        ]
    else:
        patterns.append(f"{pyenv_root}/versions/{major_minor}*/bin/python{major_minor}")
        data = env.get("UV_PYTHON_INSTALL_DIR") or (
            f"{env.get('XDG_DATA_HOME') or home + '/.local/share'}/uv/python")
        patterns.append(f"{data}/cpython-{major_minor}*/bin/python{major_minor}")
        patterns += [f"/usr/local/bin/python{major_minor}", f"/usr/bin/python{major_minor}"]
    return patterns


PY_LAUNCHER_LINE = re.compile(r"^\s*-(?:V:)?(\d+\.\d+)[^\s]*\s+(?:\*\s+)?(\S.*?)\s*$")


def parse_py_launcher(output: str) -> list[str]:
    """Interpreter paths from `py -0p` (Windows launcher), old and new formats. Pure."""
    paths = []
    for line in output.splitlines():
        match = PY_LAUNCHER_LINE.match(line)
        if match and match.group(2).lower().endswith(".exe"):
            paths.append(match.group(2))
    return paths


def windows_registered() -> list[str]:
    """Interpreters registered by the Windows `py` launcher and in the registry (PEP 514)."""
    paths: list[str] = []
    with contextlib.suppress(CommandFailed):
        paths += parse_py_launcher(command.output(["py", "-0p"], timeout=20))
    if sys.platform != "win32":
        return paths
    import winreg
    for hive in (winreg.HKEY_CURRENT_USER, winreg.HKEY_LOCAL_MACHINE):
        try:
            core = winreg.OpenKey(hive, r"Software\Python\PythonCore")
        except OSError:
            continue
        for index in range(winreg.QueryInfoKey(core)[0]):
            tag = winreg.EnumKey(core, index)
            try:
                with winreg.OpenKey(core, tag + r"\InstallPath") as key:
                    exe = winreg.QueryValueEx(key, "ExecutablePath")[0]
            except OSError:
                continue
            paths.append(exe)
    return paths


_resolvers: dict[Path, Resolver] = {}
_resolvers_lock = threading.Lock()


class Resolver:
    """Resolves version requests to interpreters; probes are cached by path, size, mtime.
    `for_cache` gives one resolver per cache file and process."""

    @classmethod
    def for_cache(cls, cache_file: Path) -> Resolver:
        with _resolvers_lock:
            if cache_file not in _resolvers:
                _resolvers[cache_file] = cls(cache_file)
            return _resolvers[cache_file]

    def __init__(self, cache_file: Path | None = None):
        self.cache_file = cache_file
        self._cache: dict[str, dict[str, object]] = {}
        self._resolved: dict[tuple[str | None, str | None], Interpreter] = {}
        if cache_file and cache_file.is_file():
            try:
                self._cache = json.loads(cache_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._cache = {}

    def _stamp(self, path: str) -> list[int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    def probe(self, path: str) -> Interpreter | None:
        stamp = self._stamp(path)
        if stamp is None:
            return None
        hit = self._cache.get(path)
        if hit and hit.get("stamp") == stamp:
            return Interpreter(path, str(hit["version"]), str(hit["implementation"]))
        try:
            out = command.output([path, "-c", PROBE], timeout=30).splitlines()
        except CommandFailed:
            return None
        if len(out) < 2:
            return None
        exe = out[2].strip() if len(out) > 2 and out[2].strip() else path
        found = Interpreter(exe, out[0].strip(), out[1].strip())
        self._cache[path] = {**asdict(found), "stamp": stamp}
        self._save()
        return found

    def _save(self) -> None:
        if not self.cache_file:
            return
        atomic_write(self.cache_file, json.dumps(self._cache, indent=1, sort_keys=True))

    def find(self, request: str, patterns: Iterable[str]) -> tuple[Interpreter | None,
                                                                  list[Interpreter]]:
        """Best match for `request` (highest patch), and every interpreter seen."""
        seen: dict[str, Interpreter] = {}
        for pattern in patterns:
            for path in sorted(glob.glob(pattern)):
                real = os.path.realpath(path)
                if real in seen or not os.access(real, os.X_OK):
                    continue
                found = self.probe(real)
                if found:
                    seen[real] = found
        matches = [i for i in seen.values() if version_matches(i.version, request)]
        best = max(matches, key=lambda i: _version_key(i.version)) if matches else None
        return best, list(seen.values())

    def resolve(self, stage_name: str, python: str | None, python_exe: str | None,
                env: Mapping[str, str] | None = None) -> Interpreter:
        """The interpreter for a stage's request; found once per request and process (a
        thousand specs asking for "3.11" search the disk once)."""
        if env is not None and env is not os.environ:
            return self._resolve(stage_name, python, python_exe, env)
        key = (python, python_exe)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(stage_name, python, python_exe, os.environ)
        return self._resolved[key]

    def _resolve(self, stage_name: str, python: str | None, python_exe: str | None,
                 env: Mapping[str, str]) -> Interpreter:
        windows = os.name == "nt"
        if python_exe:
            if WINDOWS_PATH.match(python_exe) and not windows:
                raise InterpreterNotFound(
                    f"stage '{stage_name}': python_exe {python_exe!r} is a Windows path and "
                    "this machine is not Windows; use `python: \"3.x\"` (a version, resolved "
                    "on every machine) instead of python_exe")
            found = self.probe(python_exe)
            if found is None:
                raise InterpreterNotFound(
                    f"stage '{stage_name}': python_exe {python_exe!r} does not exist or does "
                    "not run; install that Python or point python_exe at one that exists")
            return found
        if not python:
            current = self.probe(sys.executable)
            assert current is not None
            return current
        home = str(Path.home())
        patterns = candidate_paths(python, env, windows, home)
        if windows:
            patterns += [glob.escape(p) for p in windows_registered()]
        best, seen = self.find(python, patterns)
        if best is None:
            # Widen the search to list what exists, so the message can help.
            _, others = self.find("3", candidate_paths("3.*", env, windows, home))
            listing = ", ".join(sorted({f"{i.version} ({i.path})" for i in seen + others}))
            raise InterpreterNotFound(
                f"stage '{stage_name}': no Python {python} found on PATH, pyenv, uv or the "
                f"usual install folders. Found: {listing or 'none'}. Install Python {python} "
                "(e.g. `uv python install " + python + "` or pyenv), or change 'python' in "
                "the stage spec to one of the versions found")
        return best
