"""Pieces the benchmark scripts share, one copy each: a clean environment, running and timing
commands, medians, the order of the sides in each run, machine load, versions and git
revisions, wheel downloads, generated mlops-tasks projects and markdown tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

WINDOWS = os.name == "nt"
RUN_TIMEOUT = 1800
T = TypeVar("T")


class BenchError(RuntimeError):
    pass


# --------------------------------------------------------------------------- environment


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a machine without pip, uv, MLflow or Jupyter configuration, so a
    benchmark measures what a user's machine does, not this machine's mirrors and caps."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "MLFLOW_", "JUPYTER_"))
           and k not in ("VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if WINDOWS else "bin/python")


def rmtree(path: Path) -> None:
    """Remove a folder, read-only files included (git objects, dvc cache)."""
    def retry(func, name, _exc):
        os.chmod(name, 0o700)
        func(name)

    if not path.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


# --------------------------------------------------------------------------- commands


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Ran:
    seconds: float
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(argv: Sequence[str | os.PathLike[str]], env: dict[str, str], cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT) -> Ran:
    """Run argv without standard input, output captured; return its wall time and output.
    Raise BenchError with the output's tail when it fails or times out."""
    args = [os.fspath(a) for a in argv]
    start = time.perf_counter()
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(args)}") from err
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        where = f" (in {cwd})" if cwd else ""
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(args)}{where}\n{tail}")
    return Ran(seconds, proc.stdout, proc.stderr)


def timed(argv: Sequence[str | os.PathLike[str]], env: dict[str, str],
          cwd: Path | None = None) -> float:
    return run(argv, env, cwd=cwd).seconds


# --------------------------------------------------------------------------- runs and medians


def rotated(items: Sequence[T], i: int) -> list[T]:
    """The order of the sides in run i: each run starts one further along, so every side
    runs first, in the middle and last equally often over len(items) runs."""
    k = i % len(items) if items else 0
    return list(items[k:]) + list(items[:k])


def summary(values: Sequence[float]) -> dict[str, object]:
    """The median of every run (the headline), with min, max and each run."""
    return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3), "runs_s": [round(v, 3) for v in values]}


def ratio(a: float, b: float, digits: int = 1) -> float:
    return round(a / b, digits) if b else float("inf")


class Load:
    """The 1-minute load average at the start, after each timed round and at the end, so a
    table can say whether other work shared the machine while it was measured."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.sample()

    def sample(self) -> None:
        if hasattr(os, "getloadavg"):  # not on Windows
            self.samples.append(round(os.getloadavg()[0], 2))

    def describe(self) -> str:
        if not self.samples:
            return "load average n/a"
        s = self.samples
        return (f"load average (1 min) {s[0]:.2f} at the start, {max(s):.2f} at most, "
                f"{s[-1]:.2f} at the end")

    def as_dict(self) -> dict[str, object]:
        s = self.samples
        return {"load_start": s[0], "load_max": max(s), "load_end": s[-1]} if s else {}


def machine(runs: int) -> dict[str, object]:
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "runs": runs,
    }


# --------------------------------------------------------------------------- versions


def find_uv() -> str:
    """uv from the Python running this script (the `uv` package mlops-tasks depends on, the
    one its venv tasks use), next to it, or on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / ("uv.exe" if WINDOWS else "uv")
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if not found:
        raise BenchError("uv not found: install it (python -m pip install uv) or run this "
                         "script with the project's venv, which has it")
    return found


def uv_version(uv: str) -> str:
    return run([uv, "--version"], clean_env()).stdout.strip()


def package_version(python: str | Path, dist: str) -> str:
    out = run([python, "-c", f"from importlib.metadata import version; print(version({dist!r}))"],
              clean_env()).stdout
    return out.strip()


def git_revision(checkout: Path) -> str | None:
    """The short commit of a git checkout, with a note when its mlops_tasks/ has uncommitted
    changes; None outside a git checkout."""
    try:
        sha = run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], clean_env())
        dirty = run(["git", "-C", checkout, "status", "--porcelain", "--", "mlops_tasks"],
                    clean_env())
    except (OSError, BenchError):
        return None
    return sha.stdout.strip() + (" (mlops_tasks/ modified)" if dirty.stdout.strip() else "")


def measured_mlops_tasks() -> str:
    """Which mlops-tasks the Python running this script imports: the git revision of its
    checkout for an editable install, else the installed version."""
    try:
        import mlops_tasks
    except ImportError as err:
        raise BenchError(f"mlops_tasks is not importable from {sys.executable}: install the "
                         "project (python -m pip install -e .) and run with that Python"
                         ) from err
    checkout = Path(mlops_tasks.__file__).resolve().parent.parent
    revision = git_revision(checkout) if (checkout / "pyproject.toml").is_file() else None
    if revision:
        return f"at {revision}"
    from importlib.metadata import version
    return f"{version('mlops-tasks')} (installed)"


# --------------------------------------------------------------------------- wheels, projects


def has_pip(python: str | Path) -> bool:
    return subprocess.run([os.fspath(python), "-m", "pip", "--version"], env=clean_env(),
                          capture_output=True, check=False).returncode == 0


def download_wheels(dest: Path, packages: Sequence[str], python: str | Path = sys.executable,
                    timeout: float = RUN_TIMEOUT) -> float:
    """Fill dest with binary wheels of packages and their dependencies from the package index
    (the only network use of the benchmarks' timed parts); return the seconds it took."""
    return run([python, "-m", "pip", "download", "--quiet", "--no-cache-dir",
                "--disable-pip-version-check", "--only-binary", ":all:", "--dest", dest,
                *packages], clean_env(), timeout=timeout).seconds


def spec_python() -> str:
    """The `python:` request of the generated stage specs: the version of the Python running
    the benchmark (and the orchestrator), so interpreter resolution is on the measured path."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def notebook_json(cells: Sequence[tuple[str | None, str]]) -> str:
    """A notebook of code cells given as (tag or None, source)."""
    nb = {
        "cells": [{"cell_type": "code", "id": f"c{i}", "execution_count": None, "outputs": [],
                   "metadata": {"tags": [tag]} if tag else {}, "source": source}
                  for i, (tag, source) in enumerate(cells)],
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
    }
    return json.dumps(nb, indent=1) + "\n"


@dataclass
class StageFiles:
    name: str
    notebook: str                       # notebook JSON
    spec: dict[str, object] = field(default_factory=dict)  # spec keys besides name, notebook


def write_mlops_project(root: Path, wheels: Path, stages: Sequence[StageFiles],
                        experiment: str = "bench") -> Path:
    """A generated mlops-tasks project set up as the project ships: [tool.doit] with the
    `sqlite3-durable` backend (as in the repository's pyproject.toml), stage specs asking
    for `python: "X.Y"`, installs offline from the wheel folder."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [tool.doit]
        dep_file = ".mlops/doit.db"
        backend = "sqlite3-durable"
        verbosity = 2
        par_type = "thread"

        [tool.mlops_tasks]
        wheels_cache = {json.dumps(wheels.resolve().as_posix())}
        index_policy = "offline"
        experiment = {json.dumps(experiment)}
        """), encoding="utf-8")
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n", encoding="utf-8")
    (root / "env_specs").mkdir()
    (root / "notebooks").mkdir()
    for stage in stages:
        (root / "notebooks" / f"{stage.name}.ipynb").write_text(stage.notebook,
                                                                encoding="utf-8")
        spec = {"name": stage.name, "notebook": f"notebooks/{stage.name}.ipynb",
                "python": spec_python(), **stage.spec}
        (root / "env_specs" / f"{stage.name}.yaml").write_text(yaml_spec(spec),
                                                               encoding="utf-8")
    return root


def yaml_spec(spec: dict[str, object]) -> str:
    """A stage spec as YAML (strings quoted as JSON, which YAML reads as they are)."""
    lines = []
    for key, value in spec.items():
        if isinstance(value, dict):
            lines.append(f"{key}:" if value else f"{key}: {{}}")
            lines += [f"  {k}: {json.dumps(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            lines.append(f"{key}:" if value else f"{key}: []")
            lines += [f"  - {json.dumps(v)}" for v in value]
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reports


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                   numeric: Sequence[bool] | None = None) -> str:
    """A markdown table; numeric columns are right-aligned."""
    numeric = numeric or [False] + [True] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, data: dict[str, object]) -> None:
    if path:
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")
