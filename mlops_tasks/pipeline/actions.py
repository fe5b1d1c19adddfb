"""What doit runs for each task. Heavy imports (papermill, mlflow) happen inside actions,
never at load time, so `doit list` stays fast."""

from __future__ import annotations

import errno
import functools
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.exceptions import TaskFailed

from mlops_tasks.base import console
from mlops_tasks.base.errors import EnvBuildError, InterpreterNotFound, MlopsError, NoSpaceLeft
from mlops_tasks.env.plan import read_marker
from mlops_tasks.env.venv import build_locked
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.spec import Stage

if TYPE_CHECKING:
    from mlops_tasks.pipeline import checks


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """At the doit boundary a user-caused failure becomes TaskFailed with its message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            func(*args, **kwargs)
        except MlopsError as err:
            return TaskFailed(str(err))
        except OSError as err:  # a full disk is the user's to fix, wherever the write was
            if err.errno != errno.ENOSPC:
                raise
            from mlops_tasks.run.outputs import full_folder

            stage = next((a for a in args if isinstance(a, Stage)), None)
            path = err.filename or str(full_folder(Path.cwd(), stage))
            return TaskFailed(str(NoSpaceLeft(path, f"could not write in {path}")))
        return None

    return wrapper


@user_errors
def build_venv(config: Config, stage: Stage) -> None:
    build_locked(config, stage)


@user_errors
def write_kernel(config: Config, stage: Stage) -> None:
    from mlops_tasks.env.kernelspecs import write_kernelspec

    marker = read_marker(config.root / stage.env_dir) or {}
    write_kernelspec(config.root, stage, str(marker.get("python_version", "")))


def remove_kernel(config: Config, stage: Stage, path: Path, dryrun: bool = False) -> None:
    """doit clean for kernel:S: the project's kernelspec, and the user's copy when this
    project registered one (`doit jupyter`)."""
    from mlops_tasks.env.kernelspecs import remove_user_kernelspec

    remove_tree(path, dryrun)
    if dryrun:
        return
    removed = remove_user_kernelspec(config.root, stage)
    if removed:
        console.say(f"removed {removed}")


def remove_tree(path: Path, dryrun: bool = False) -> None:
    """doit clean for kernelspecs: the whole folder goes."""
    if path.exists():
        if not dryrun:
            shutil.rmtree(path)
        console.say(f"{'would remove' if dryrun else 'removed'} {path}")


def clean_outputs(config: Config, stage: Stage, dryrun: bool = False) -> None:
    """doit clean for execute:S: the outputs its last run wrote and recorded, each only while
    its content is still what the record says (a file the tool cannot prove it made, or one
    edited since, is kept and named), then its executed notebook and record."""
    from mlops_tasks.pipeline.checks import last_execution
    from mlops_tasks.project.output_rules import clean_plan
    from mlops_tasks.run.outputs import remove
    from mlops_tasks.run.provenance import content_hashes

    done = last_execution(config.root, stage)
    written = [rel for rel in stage.written
               if (config.root / rel).exists() or (config.root / rel).is_symlink()]
    plan = clean_plan(written, done.outputs if done else None,
                      content_hashes(config.root, written))
    # the record proves what the run wrote: it goes only with everything it vouches for
    own = [] if any(why for _, why in plan) else [
        rel for rel in (layout.executed_notebook(stage), layout.execute_record(stage))
        if (config.root / rel).exists()]
    for rel, why_kept in [*plan, *((rel, None) for rel in own)]:
        if why_kept:
            console.say(f"kept {rel}: {why_kept}", "clean", stage.name)
        elif dryrun:
            console.say(f"would remove {rel}")
        else:
            remove(config.root / rel)
            console.say(f"removed {rel}")


@user_errors
def remove_env(config: Config, stage: Stage, dryrun: bool = False) -> None:
    """doit clean for venvs: only a folder that is a venv (never .venv running doit)."""
    from mlops_tasks.env.venv import discard

    if (config.root / stage.env_dir).exists():
        if not dryrun:
            discard(stage, config.root)
        console.say(f"{'would remove' if dryrun else 'removed'} {stage.env_dir}")


@user_errors
def run_execute(config: Config, stage: Stage, env: checks.EnvAsBuilt | None = None,
                param: list[str] | None = None) -> None:
    """execute:S, with `--param` overrides read from text; an override run is logged at once
    (log:S does not run for it). `env`: the task's env check, which says whether nothing but
    the environment changed."""
    from mlops_tasks.run.execute import execute_stage
    from mlops_tasks.run.log import log_stage
    from mlops_tasks.run.parameters import parse_overrides

    overrides = parse_overrides(stage, param or [])
    env_only = not overrides and env is not None and env.only_env()
    try:
        done = execute_stage(config, stage, overrides, env_only)
    except (EnvBuildError, InterpreterNotFound):
        if env is not None:  # the notebook did not run: the stage's last run still stands
            env.build_failed = True
        raise
    if overrides and done is not None:
        log_stage(config, stage, override=done.run_id)


@user_errors
def run_log(config: Config, stage: Stage) -> None:
    """log:S."""
    from mlops_tasks.run.log import log_stage

    log_stage(config, stage)
