"""Pieces the benchmark scripts share: a clean environment, venv paths, folder removal."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

WINDOWS = os.name == "nt"


class BenchError(RuntimeError):
    pass


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
