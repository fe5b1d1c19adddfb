"""Kernelspecs in the project-local Jupyter data dir (.mlops/jupyter), one per stage."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from mlops_tasks.base.files import atomic_write
from mlops_tasks.project import layout
from mlops_tasks.project.spec import Stage


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


def kernelspec_current(root: Path, stage: Stage, python_version: str) -> bool:
    """The project's kernelspec of the stage is there and says what it would be written as."""
    venv_python = os.path.abspath(root / layout.venv_python(stage.env_dir))
    try:
        found = json.loads((root / layout.kernel_json(stage)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(found == kernelspec(stage, venv_python, python_version))


def write_kernelspec(root: Path, stage: Stage, python_version: str) -> Path:
    venv_python = os.path.abspath(root / layout.venv_python(stage.env_dir))
    spec = kernelspec(stage, venv_python, python_version)
    target = root / layout.kernel_json(stage)
    mutex = root / layout.mutex_file("kernel", stage.kernel_name)
    mutex.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(mutex)):
        atomic_write(target, json.dumps(spec, indent=1) + "\n")
    return target


def user_kernel_dir(stage: Stage) -> Path:
    """Where Jupyter and VS Code look for the user's kernels (JUPYTER_DATA_DIR honoured)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "kernels" / stage.kernel_name


def write_user_kernelspec(root: Path, stage: Stage, python_version: str) -> Path:
    """The stage's kernelspec for the user, marked with the project it belongs to."""
    venv_python = os.path.abspath(root / layout.venv_python(stage.env_dir))
    spec = kernelspec(stage, venv_python, python_version)
    spec["metadata"]["mlops_tasks"]["project"] = str(root)
    target = user_kernel_dir(stage) / "kernel.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, json.dumps(spec, indent=1) + "\n")
    return target


def remove_user_kernelspec(root: Path, stage: Stage) -> Path | None:
    """Remove the user's kernelspec of this stage if this project wrote it; its folder."""
    folder = user_kernel_dir(stage)
    try:
        spec = json.loads((folder / "kernel.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if spec.get("metadata", {}).get("mlops_tasks", {}).get("project") != str(root):
        return None  # another project's, or the user's own
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    return folder
