"""What doit runs for each task. Heavy imports (papermill, mlflow) happen inside actions,
never at load time, so `doit list` stays fast."""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from . import console, layout
from .config import Config
from .envs import build_env, plan_for, read_marker
from .errors import MlopsError
from .spec import Stage


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """At the doit boundary a user-caused failure becomes TaskFailed with its message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            func(*args, **kwargs)
        except MlopsError as err:
            return TaskFailed(str(err))
        return None

    return wrapper


@user_errors
def build_venv(config: Config, stage: Stage) -> None:
    from filelock import FileLock

    plan = plan_for(config, stage)
    mutex = config.root / layout.mutex_file("venv", stage.name)
    mutex.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(mutex)):
        start = time.perf_counter()
        why = build_env(stage, plan, config.root, config)
        if why:
            console.step(f"built in {time.perf_counter() - start:.1f} s", "venv", stage.name)


@user_errors
def write_kernel(config: Config, stage: Stage) -> None:
    from .kernels import write_kernelspec

    marker = read_marker(config.root / stage.env_dir) or {}
    write_kernelspec(config.root, stage, str(marker.get("python_version", "")))


def remove_kernel(config: Config, stage: Stage, path: Path) -> None:
    """doit clean for kernel:S: the project's kernelspec, and the user's copy when this
    project registered one (`doit jupyter`)."""
    from .kernels import remove_user_kernelspec

    remove_tree(path)
    removed = remove_user_kernelspec(config.root, stage)
    if removed:
        console.say(f"removed {removed}")


def remove_tree(path: Path) -> None:
    """doit clean for kernelspecs: the whole folder goes."""
    if path.exists():
        shutil.rmtree(path)
        console.say(f"removed {path}")


def clean_outputs(config: Config, stage: Stage) -> None:
    """doit clean for execute:S: its outputs (files or folders, which validation keeps away
    from the user's sources), executed notebook and record."""
    from .outputs import remove

    for rel in (*stage.outputs, *stage.metrics, layout.executed_notebook(stage),
                layout.execute_record(stage)):
        path = config.root / rel
        if path.exists() or path.is_symlink():
            remove(path)
            console.say(f"removed {rel}")


@user_errors
def remove_env(config: Config, stage: Stage) -> None:
    """doit clean for venvs: only a folder that is a venv (never .venv running doit)."""
    from .envs import discard

    if (config.root / stage.env_dir).exists():
        discard(stage, config.root)
        console.say(f"removed {stage.env_dir}")


@user_errors
def execute_stage(config: Config, stage: Stage, param: list[str] | None = None) -> None:
    from .execute import execute_stage as execute
    from .execute import parse_overrides

    overrides = parse_overrides(stage, param or [])
    done = execute(config, stage, overrides)
    if overrides:  # log:S does not run for an override run: record it now
        from .log import log_stage as log

        log(config, stage, override=done.run_id)


@user_errors
def log_stage(config: Config, stage: Stage) -> None:
    from .log import log_stage as log

    log(config, stage)
