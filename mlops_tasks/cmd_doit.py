"""doit's own commands that run tasks or write the dependency DB (`run`, `clean`, `forget`,
`ignore`, `reset-dep`, `strace`), replaced through doit's plugin entry points by the same
commands taking the workspace mutex and installing the signal handlers first. Nothing of
this happens when the dodo is merely imported (`doit list`, `doit info`)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from doit import get_var
from doit.cmd_clean import Clean as DoitClean
from doit.cmd_forget import Forget as DoitForget
from doit.cmd_ignore import Ignore as DoitIgnore
from doit.cmd_info import Info as DoitInfo
from doit.cmd_list import List as DoitList
from doit.cmd_resetdep import ResetDep as DoitResetDep
from doit.cmd_run import Run as DoitRun
from doit.cmd_strace import Strace as DoitStrace
from doit.exceptions import InvalidDodoFile

from . import console, interrupt, layout, workspace
from .config import load_config
from .doit_names import TASK_PREFIXES
from .errors import MlopsError
from .profiles import activate


def prepare_workspace(root: Path, runs_tasks: bool) -> None:
    """Before the first task: hold the workspace, stop kernels and installers on a signal,
    and (for commands that run tasks) close the runs a killed doit left RUNNING."""
    try:
        config = load_config(root)
        workspace.acquire(root, wait=config.workspace_busy == "wait")
    except MlopsError as err:
        raise InvalidDodoFile(str(err)) from None
    interrupt.install()
    if runs_tasks:  # a run that runs nothing leaves no results for Jenkins to publish again
        (root / layout.junit_report()).unlink(missing_ok=True)
    if runs_tasks and any(root.glob(layout.running_records())):
        from .execute import close_killed_runs

        close_killed_runs(config)


def is_pipeline(command: Any) -> bool:
    """The loaded dodo is an mlops-tasks pipeline: other doit projects in the same Python
    get doit's commands exactly as doit has them (no workspace, no stage order)."""
    from .dodo import task_mlops

    namespace = getattr(getattr(command, "loader", None), "namespace", None) or {}
    return namespace.get("task_mlops") is task_mlops


def stage_order(task_list: list[Any]) -> list[str] | None:
    """What a plain `doit` runs: each stage's group (its chain, logging included) in graph
    order, so one stage is logged before the next starts and a failure in one never leaves
    another's finished run unlogged. doit's own default, every task in definition order,
    would run all venv tasks, then all execute tasks, then all log tasks."""
    groups = [t.name for t in task_list
              if ":" not in t.name and not t.actions and t.name not in TASK_PREFIXES]
    return groups or None


def guarded(base: Any, runs_tasks: bool = False) -> Any:
    """`base` with the workspace prepared once the dodo is loaded (doit has changed into the
    project folder by then) and before any task runs. doit reads `_execute`'s signature to
    pass its options, so the wrapper keeps it."""

    @functools.wraps(base._execute)
    def _execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_pipeline(self):
            return base._execute(self, *args, **kwargs)
        prepare_workspace(Path.cwd(), runs_tasks)
        if runs_tasks and self.sel_default_tasks and not self.sel_tasks:
            self.sel_tasks = stage_order(self.task_list)
        try:
            return base._execute(self, *args, **kwargs)
        finally:
            if runs_tasks:
                rewrite_report(self)

    def execute(self: Any, params: Any, args: Any) -> Any:
        self.mlops_params = params  # to reopen the dep DB for the report after the run
        profile = os.environ.get("MLOPS_PROFILE") or get_var("profile")
        if runs_tasks and profile:
            try:
                activate(Path.cwd(), str(profile))
            except MlopsError as err:
                console.error(str(err))
                return 3
        code = base.execute(self, params, args)
        if runs_tasks and isinstance(code, int):
            interrupt.exit_now(code)
        return code

    return type(base.__name__, (base,), {"_execute": _execute, "execute": execute,
                                         "__doc__": base.__doc__})


def rewrite_report(command: Any) -> None:
    """After a run that ran tasks (it left junit.xml), the report page again: with the dep
    DB reopened, as doit closed it. A report that cannot be written never fails the run."""
    root = Path.cwd()
    params = getattr(command, "mlops_params", None)
    if params is None or not (root / layout.junit_report()).is_file():
        return
    from doit.dependency import Dependency

    from .cmd_report import doit_status, write_report
    from .project import load_project

    try:
        dep = Dependency(command._backends.get(params["backend"]), params["dep_file"],
                         checker_cls=command.get_checker_cls(params["check_file_uptodate"]),
                         codec_cls=command.get_codec_cls(params["codec_cls"]))
        try:
            write_report(root, load_project(root), doit_status(command.task_list, dep))
        finally:
            dep.close()
    except Exception as err:  # noqa: BLE001 - the run's own outcome stands
        console.notice(f"the report page could not be written: {type(err).__name__}: {err}")


class _Forget(DoitForget):
    """`doit forget` with no task named and no default tasks forgets every task (doit's own
    would fail with a TypeError)."""

    def _execute(self, forget_sub: bool, forget_disable_default: bool, forget_all: bool
                 ) -> Any:
        if not self.sel_tasks and not forget_disable_default:
            forget_all = True
        return super()._execute(forget_sub, forget_disable_default, forget_all)


class List(DoitList):
    """`doit list --status` with groups (a stage, `venv`, `execute`, ...) marked up to date
    when every task they run is (doit's own marks a group R forever)."""

    def _group_status(self, task: Any, tasks: dict[str, Any], seen: dict[str, str]) -> str:
        if task.name in seen:
            return seen[task.name]
        seen[task.name] = "up-to-date"  # a cycle cannot make it stale
        # a task is run with everything it depends on: `log:S` up to date on its own still
        # runs when its `execute:S` is stale (a file_dep on another task's target is a task
        # dependency for doit's run, not yet in the task list `list` reads)
        producers = self.__dict__.setdefault("_producers", {
            target: name for name, t in tasks.items() for target in t.targets})
        deps = [*task.task_dep, *(producers[f] for f in task.file_dep if f in producers)]
        parts = [self._group_status(tasks[dep], tasks, seen) for dep in deps]
        if task.actions:
            parts.append(self.dep_manager.get_status(task, tasks).status)
        status = "up-to-date" if all(p == "up-to-date" for p in parts) else "run"
        seen[task.name] = status
        return status

    def _print_task(self, template: str, task: Any, status: bool, list_deps: bool,
                    tasks: dict[str, Any]) -> None:
        if not (status and not task.actions and task.task_dep):
            super()._print_task(template, task, status, list_deps, tasks)
            return
        cache: dict[str, str] = self.__dict__.setdefault("_statuses", {})
        state = self._group_status(task, tasks, cache)
        self.outstream.write(template.format(name=task.name, doc=task.doc,
                                             status=self.STATUS_MAP[state]))


class Info(DoitInfo):
    """`doit info execute:S` for a stale stage also says whether the shared stage cache holds
    a complete run with the stage's current key (the run it would be restored from)."""

    def _execute(self, pos_args: list[str], hide_status: bool = False) -> Any:
        code = super()._execute(pos_args, hide_status=hide_status)
        if code == 1 and is_pipeline(self) and pos_args and pos_args[0].startswith("execute:"):
            from .stage_cache import cached_run_line

            line = cached_run_line(Path.cwd(), pos_args[0].partition(":")[2])
            if line:
                self.outstream.write(f"\nstage cache: {line}\n")
        return code


Run = guarded(DoitRun, runs_tasks=True)
Clean = guarded(DoitClean)
Forget = guarded(_Forget)
Ignore = guarded(DoitIgnore)
ResetDep = guarded(DoitResetDep)
Strace = guarded(DoitStrace, runs_tasks=True)
