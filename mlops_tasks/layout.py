"""Where each stage's files live, relative to the project root. Pure."""

from __future__ import annotations

import os

from .spec import Stage

STATE = ".mlops"
MARKER = ".mlops-env.json"
FREEZE = "pip-freeze.txt"


def venv_python(env_dir: str, windows: bool | None = None) -> str:
    """The venv's interpreter: Scripts/python.exe on Windows, bin/python elsewhere."""
    if windows is None:
        windows = os.name == "nt"
    return f"{env_dir}/Scripts/python.exe" if windows else f"{env_dir}/bin/python"


def lock_path(stage: Stage) -> str:
    """Pinned requirements for a stage: its spec file with the .lock suffix."""
    return os.path.splitext(stage.spec_path)[0] + ".lock"


def freeze_file(stage: Stage) -> str:
    return f"{stage.env_dir}/{FREEZE}"


def kernels_dir() -> str:
    return f"{STATE}/jupyter/kernels"


def kernel_json(stage: Stage) -> str:
    return f"{kernels_dir()}/{stage.kernel_name}/kernel.json"


def executed_notebook(stage: Stage) -> str:
    return f"{STATE}/executed/{stage.name}.ipynb"


def failed_notebook(stage: Stage) -> str:
    return f"{STATE}/executed/{stage.name}.failed.ipynb"


def execute_record(stage: Stage) -> str:
    return f"{STATE}/executed/{stage.name}.json"


def runs_dir(stage: Stage) -> str:
    return f"{STATE}/runs/{stage.name}"


def log_record(stage: Stage) -> str:
    return f"{runs_dir(stage)}/last-run.json"


def lock_file(kind: str, name: str) -> str:
    return f"{STATE}/locks/{kind}-{name}.lock"
