"""Kernelspecs in the project-local Jupyter data dir (.mlops/jupyter), one per stage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import layout
from .files import atomic_write
from .spec import Stage


def kernelspec(stage: Stage, venv_python: str, python_version: str) -> dict[str, Any]:
    """The kernel.json for a stage: the venv's python running ipykernel. Pure."""
    return {
        "argv": [venv_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"mlops {stage.name} (Python {python_version})",
        "language": "python",
        "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
        "metadata": {"debugger": True, "mlops_tasks": {"stage": stage.name,
                                                       "env_dir": stage.env_dir}},
    }


def write_kernelspec(root: Path, stage: Stage, python_version: str) -> Path:
    venv_python = os.path.abspath(root / layout.venv_python(stage.env_dir))
    spec = kernelspec(stage, venv_python, python_version)
    target = root / layout.kernel_json(stage)
    mutex = root / layout.mutex_file("kernel", stage.kernel_name)
    mutex.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(mutex)):
        atomic_write(target, json.dumps(spec, indent=1) + "\n")
    return target
