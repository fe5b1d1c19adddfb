"""doit's own commands that run tasks or write the dependency DB (`run`, `clean`, `forget`,
`ignore`, `reset-dep`, `strace`), replaced through doit's plugin entry points by the same
commands taking the workspace mutex and installing the signal handlers first. Nothing of
this happens when the dodo is merely imported (`doit list`, `doit info`). `list` and `info`
are replaced too, read-only: a group (a stage, `execute`, ...) is up to date when nothing it
runs would run, each task checked once. All but `run` and `strace` end quietly when their
reader closes the pipe (`doit list | head`)."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import time
from collections.abc import Container, Mapping
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

from mlops_tasks.base import console, interrupt
from mlops_tasks.base.doit_names import TASK_PREFIXES
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.pipeline import noop, workspace
from mlops_tasks.pipeline.profiles import activate
from mlops_tasks.project import layout
from mlops_tasks.project.config import load_config


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
        from mlops_tasks.run.lifecycle import close_killed_runs

        close_killed_runs(config)


def keep_state_of_failed_overrides(dep_manager: Any) -> None:
    """doit forgets everything saved for a task whose run failed, so that it runs again. A
    failed `--param` run is not the stage's run (it changed nothing of the stage), nor is an
    execute:S whose venv could not be built (its notebook did not run): forgetting would
    show the stage as `never executed` and run it again once the cause is fixed."""
    forget = dep_manager.remove_success

    def remove_success(task: Any) -> None:
        if (getattr(task, "options", None) or {}).get("param"):
            return
        if any(getattr(check, "build_failed", False)
               for check, *_ in getattr(task, "uptodate", None) or ()):
            return
        forget(task)

    dep_manager.remove_success = remove_success


def is_pipeline(command: Any) -> bool:
    """The loaded dodo is an mlops-tasks pipeline: other doit projects in the same Python
    get doit's commands exactly as doit has them (no workspace, no stage order)."""
    from mlops_tasks.pipeline.entry import task_mlops

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


def takes_param(task: Any) -> bool:
    return any(option.get("name") == "param" for option in task.params)


def misplaced_param(selection: list[str], tasks: Mapping[str, Any]) -> str | None:
    """The error for `--param` after a task that takes none (a stage's name, `venv:S`):
    doit's own says only "option --param not recognized"."""
    last = None
    for i, arg in enumerate(selection):
        if not arg.startswith("-"):
            last = arg
        elif (arg.split("=")[0] == "--param" and last is not None and last in tasks
              and not takes_param(tasks[last])):
            # doit reads a bare `name=value` word as a doit variable: only --param=... counts
            params = [a for a in selection[i:] if a.startswith("--param=")]
            stage = last.rpartition(":")[2]
            execute = f"execute:{stage}" if f"execute:{stage}" in tasks else "execute:<stage>"
            return (f"--param overrides one stage's execution, so it follows that stage's "
                    f"execute task, not '{last}' (which takes no --param): doit run {execute} "
                    + (" ".join(params) or "--param=<name>=<value>"))
    return None


# What `ls | head` exits with under `set -o pipefail` (128 + SIGPIPE).
READER_GONE = 141


def quiet_when_reader_leaves(base: Any) -> Any:
    """`base` ending quietly when its reader stops early (`doit list | head`): no
    BrokenPipeError traceback from doit, and none from Python flushing stdout at exit."""

    def execute(self: Any, params: Any, args: Any) -> Any:
        try:
            code = base.execute(self, params, args)
            self.outstream.flush()
            return code
        except BrokenPipeError:
            with contextlib.suppress(OSError, ValueError):  # what is left goes nowhere
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return READER_GONE

    return type(base.__name__, (base,), {"execute": execute, "__doc__": base.__doc__})


class _Replayed(Exception):
    """The no-op shortcut holds: doit's tasks are not loaded."""

    def __init__(self, replay: noop.Replay):
        super().__init__("no-op")
        self.replay = replay


def no_op_key(command: Any, params: Any, args: list[str]) -> str | None:
    """The stamp key of this `doit run` command line (pipeline/noop.py), or None."""
    from mlops_tasks.pipeline.reporter import PipelineReporter

    if not noop.enabled() or not only_stage_tasks(command):
        return None
    return noop.command_key(args, params, PipelineReporter)


def only_stage_tasks(command: Any) -> bool:
    """The dodo makes the stage tasks and nothing else: a task of the user's own (another
    `task_*` function, an object with `create_doit_tasks`) reads files no stamp keeps."""
    if not is_pipeline(command):
        return False
    namespace = command.loader.namespace
    return not any((name.startswith("task_") and name != "task_mlops")
                   or hasattr(value, "create_doit_tasks") for name, value in namespace.items())


def shortcut(key: str) -> noop.Replay | None:
    """With the workspace held, the stamp of a no-op whose files are all as stamped."""
    root = Path.cwd()
    if not noop.stamp_file(root, key).is_file() or any(root.glob(layout.running_records())):
        return None
    prepare_workspace(root, runs_tasks=True)
    return noop.current(root, key)


def replay(replayed: noop.Replay, params: Any) -> int:
    """Say what the no-op that was stamped said: its warnings, then each task up to date."""
    from types import SimpleNamespace

    from mlops_tasks.pipeline.reporter import PipelineReporter

    console.safe_streams()
    for warning in replayed.warnings:
        console.write(f"{warning}\n", sys.stderr)
    reporter = PipelineReporter(params["outfile"],
                                {"failure_verbosity": params.get("failure_verbosity", 0)})
    for name in replayed.uptodate:
        reporter.skip_uptodate(SimpleNamespace(name=name, actions=True, title=lambda n=name: n))
    reporter.complete_run()
    return 0


def guarded(base: Any, runs_tasks: bool = False, stamps: bool = False) -> Any:
    """`base` with the workspace prepared once the dodo is loaded (doit has changed into the
    project folder by then) and before any task runs. doit reads `_execute`'s signature to
    pass its options, so the wrapper keeps it. With `stamps` (`doit run`), a no-op is
    stamped and the same command finds its stamp current without loading the tasks."""

    @functools.wraps(base._execute)
    def _execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_pipeline(self):
            return base._execute(self, *args, **kwargs)
        if runs_tasks:
            problem = misplaced_param(list(self.sel_tasks or []),
                                      {t.name: t for t in self.task_list})
            if problem:
                console.error(problem)
                return 3
        prepare_workspace(Path.cwd(), runs_tasks)
        keep_state_of_failed_overrides(self.dep_manager)
        if runs_tasks and self.sel_default_tasks and not self.sel_tasks:
            self.sel_tasks = stage_order(self.task_list)
        if runs_tasks:
            plan_kernels(self)
        taken = stamp_taken(self)
        try:
            code = base._execute(self, *args, **kwargs)
            if taken is not None:
                stamp_no_op(self.noop_key, taken, code)
            return code
        finally:
            if runs_tasks:
                from mlops_tasks.run import kernels

                kernels.drop_all()
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
        if stamps and not profile:
            self.loader.load_tasks = tasks_unless_stamped(self, params)
        try:
            code = base.execute(self, params, args)
        except _Replayed as hit:
            self.dep_manager.close()
            code = replay(hit.replay, params)
        if runs_tasks and isinstance(code, int):
            interrupt.exit_now(code)
        return code

    return type(base.__name__, (base,), {"_execute": _execute, "execute": execute,
                                         "__doc__": base.__doc__})


def plan_kernels(command: Any) -> None:
    """Which stages this run executes, in order, and the stages as its tasks were made from
    (run/kernels.py boots the next one's kernel ahead)."""
    from mlops_tasks.pipeline.entry import loaded
    from mlops_tasks.run import kernels

    project = loaded()
    kernels.plan(*kernels.stage_plan(command.sel_tasks or [],
                                     kernels.task_deps(command.task_list)),
                 project.stages if project is not None else ())


def tasks_unless_stamped(command: Any, params: Any) -> Any:
    """doit's loader step that makes the tasks, after the dodo is imported and its config
    merged: skipped (`_Replayed`) when this command's no-op stamp is current."""
    load_tasks = command.loader.load_tasks
    command.noop_key = None

    def load(cmd: Any, pos_args: list[str]) -> Any:
        command.noop_key = key = no_op_key(command, params, list(pos_args or []))
        replayed = shortcut(key) if key else None
        if replayed is not None:
            raise _Replayed(replayed)
        command.noop_since = time.time_ns()  # a file changed after this may not be loaded
        return load_tasks(cmd=cmd, pos_args=pos_args)

    return load


def stamp_taken(command: Any) -> noop.Taken | None:
    """Before doit checks any task: the stats a no-op stamp would keep."""
    from mlops_tasks.pipeline.entry import loaded

    project = loaded()
    params = getattr(command, "mlops_params", None)
    if not getattr(command, "noop_key", None) or project is None or params is None:
        return None
    with contextlib.suppress(OSError):  # a stamp is a shortcut, never a reason to fail
            return noop.take(Path.cwd(), project.stages, project.config.specs_dir,
                         str(params["dep_file"]), [str(w) for w in project.warnings],
                         since_ns=getattr(command, "noop_since", None),
                         dodo=os.path.basename(str(params["dodoFile"])))
    return None


def stamp_no_op(key: str, taken: noop.Taken, code: Any) -> None:
    """After the run: stamp it when it found every task up to date; else drop the stamp."""
    from mlops_tasks.pipeline.reporter import PipelineReporter

    reporter = PipelineReporter.last
    with contextlib.suppress(OSError, MlopsError):  # unwritable: the next no-op is full
        if code == 0 and reporter is not None and not reporter.did_work:
            noop.save(Path.cwd(), key, taken, reporter.uptodate)
        else:
            noop.forget(Path.cwd(), key)


def rewrite_report(command: Any) -> None:
    """After a run that ran tasks (it left junit.xml), the report page again: with the dep
    DB reopened, as doit closed it. A report that cannot be written never fails the run."""
    root = Path.cwd()
    params = getattr(command, "mlops_params", None)
    if params is None or not (root / layout.junit_report()).is_file():
        return
    from doit.dependency import Dependency

    from mlops_tasks.pipeline.report import doit_status, write_report
    from mlops_tasks.project.load import load_project

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


def producer_index(tasks: Mapping[str, Any]) -> dict[str, str]:
    """target -> the task that makes it: a file_dep on another task's target is a task
    dependency for doit's run, not yet in the task list `list` and `info` read."""
    return {target: name for name, task in tasks.items() for target in task.targets}


class RunStatus:
    """What `doit run` would do, task by task, for the read-only commands: a task's own
    status (doit's check), and whether it runs at all, which it does when it or anything
    it depends on is stale (`log:S` up to date on its own still runs when its `execute:S`
    is stale). Each task is checked once, and the index of producers is built once."""

    def __init__(self, dep_manager: Any, tasks: Mapping[str, Any], reasons: bool = False):
        self.dep_manager, self.tasks, self.reasons = dep_manager, tasks, reasons
        self.producers = producer_index(tasks)
        self.checked: dict[str, Any] = {}  # task name -> doit's DependencyStatus
        self.runs: dict[str, str] = {}  # task name -> "up-to-date" or "run"

    def deps(self, task: Any) -> list[str]:
        return [*task.task_dep, *(self.producers[f] for f in task.file_dep
                                  if f in self.producers)]

    def own(self, task: Any) -> str:
        """doit's status of the task alone ("ignore" for an ignored one; a group, which
        has no action of its own, is up to date)."""
        if not task.actions:
            return "up-to-date"
        if self.dep_manager.status_is_ignore(task):
            return "ignore"
        if task.name not in self.checked:
            self.checked[task.name] = self.dep_manager.get_status(
                task, self.tasks, get_log=self.reasons)
        return str(self.checked[task.name].status)

    def order(self, name: str, known: Container[str] = ()) -> list[str]:
        """name and everything it runs, dependencies first, each once, without going into
        the tasks in `known` (decided already: a listing walks each task once); without
        recursion (a chain of a thousand stages is deeper than Python's recursion limit)."""
        seen, order = {name}, []
        stack = [(name, iter(self.deps(self.tasks[name])))]
        while stack:
            current, deps = stack[-1]
            dep = next(deps, None)
            if dep is None:
                stack.pop()
                order.append(current)
            elif dep not in seen and dep not in known and dep in self.tasks:
                seen.add(dep)
                stack.append((dep, iter(self.deps(self.tasks[dep]))))
        return order

    def shown(self, name: str) -> str:
        """A task's status as `list --status` and `info` show it: its own, or "wait" when it
        is up to date on its own but something it depends on would run (it reruns if what
        that upstream makes changes; doit decides once the upstream has run)."""
        task = self.tasks[name]
        own = self.own(task)
        if own == "up-to-date" and any(self.status(dep) != "up-to-date"
                                       for dep in self.deps(task) if dep in self.tasks):
            return "wait"
        return own

    def stale_upstream(self, name: str) -> list[str]:
        """The tasks `name` depends on, directly or not, that would run on their own."""
        return [dep for dep in self.order(name)[:-1]
                if self.own(self.tasks[dep]) not in ("up-to-date", "ignore")]

    def status(self, name: str) -> str:
        """"up-to-date" when neither the task nor anything it depends on would run."""
        if name not in self.runs:
            for current in self.order(name, known=self.runs):
                task = self.tasks[current]
                # a dependency not decided yet is part of a cycle: it cannot make it stale
                fine = self.own(task) in ("up-to-date", "ignore") and all(
                    self.runs.get(dep, "up-to-date") == "up-to-date" for dep in self.deps(task))
                self.runs[current] = "up-to-date" if fine else "run"
        return self.runs[name]


def is_group(task: Any) -> bool:
    return not task.actions and bool(task.task_dep)


STATUS_MAP = {**DoitList.STATUS_MAP, "wait": "W"}
STATUS_HELP = ("print task status: (R)un, (W)aits on upstream (up to date itself, reruns if "
               "a stale upstream's outputs change), (U)p-to-date, (I)gnored, (E)rror")


@quiet_when_reader_leaves
class List(DoitList):
    """`doit list --status` with groups (a stage, `venv`, `execute`, ...) marked up to date
    when every task they run is (doit's own marks a group R forever), and a task up to date
    itself but downstream of a stale one marked W (waits on upstream), not U."""

    STATUS_MAP = STATUS_MAP
    cmd_options = tuple({**o, "help": STATUS_HELP} if o["name"] == "status" else o
                        for o in DoitList.cmd_options)

    def _print_task(self, template: str, task: Any, status: bool, list_deps: bool,
                    tasks: dict[str, Any]) -> None:
        if not status:
            super()._print_task(template, task, status, list_deps, tasks)
            return
        if getattr(self, "_run_status", None) is None:  # one for the whole listing
            self._run_status = RunStatus(self.dep_manager, tasks)
        state = (self._run_status.status(task.name) if is_group(task)
                 else self._run_status.shown(task.name))
        self.outstream.write(template.format(name=task.name, doc=task.doc,
                                             status=self.STATUS_MAP[state]))
        if list_deps:  # as doit's own
            for dep in task.file_dep:
                self.outstream.write(f" -  {dep}\n")
            self.outstream.write("\n")


REASON_WORDS = {
    "missing_target": "targets missing",
    "changed_file_dep": "file_dep changed",
    "missing_file_dep": "file_dep missing",
    "removed_file_dep": "file_dep removed",
    "added_file_dep": "file_dep added",
}


def brief_reasons(reasons: Mapping[str, Any], most: int = 3) -> list[str]:
    """doit info's reasons for a task, one line each (a group lists many tasks)."""
    def items(values: list[str]) -> str:
        more = f", ... ({len(values) - most} more)" if len(values) > most else ""
        return ", ".join(values[:most]) + more

    lines = []
    if reasons.get("has_no_dependencies"):
        lines.append("no dependencies: runs every time")
    if reasons.get("uptodate_false"):
        checks = [str(utd) for utd, _, _ in reasons["uptodate_false"]]  # each says why
        lines.append("uptodate false: " + ", ".join(checks))
    if reasons.get("checker_changed"):
        lines.append("file_dep checker changed: {} -> {}".format(*reasons["checker_changed"]))
    for key, words in REASON_WORDS.items():
        if reasons.get(key):
            lines.append(f"{words}: {items([str(v) for v in reasons[key]])}")
    return lines


def wait_lines(run: RunStatus, name: str, most: int = 3) -> list[str]:
    """Why a task up to date on its own may still run: the upstream stages that would run,
    each once (the first few, then a count)."""
    by_stage: dict[str, list[str]] = {}
    for task in run.stale_upstream(name):
        by_stage.setdefault(task.partition(":")[2] or task, []).append(task)
    own_stage = name.partition(":")[2]
    lines = []
    for stage, stale in list(by_stage.items())[:most]:
        what = (f"upstream stage '{stage}'" if stage != own_stage
                else f"its own {', '.join(stale)}")
        made = f"{stage}'s outputs change" if stage != own_stage else "what that makes changes"
        lines.append(f"waits on {what} ({', '.join(stale)} would run): {name} reruns if "
                     f"{made}")
    if len(by_stage) > most:
        lines.append(f"and {len(by_stage) - most} more upstream stages that would run")
    return lines


def group_lines(name: str, run: RunStatus, closure: list[str], hide_status: bool
                ) -> list[str]:
    """The `tasks` entry of `doit info` for a group: its own tasks (`<prefix>:<name>` and
    the tasks it names) each with its status as `doit list --status` marks it, and the
    reasons of each stale one as `doit info <task>` gives them; of the tasks it runs
    first, those that would run, and a count of the others."""
    named = set(run.tasks[name].task_dep)
    lines, others = [], 0
    for current in closure:
        task = run.tasks[current]
        if not task.actions:
            continue
        own = current in named or current.partition(":")[2] == name
        state = "up-to-date" if hide_status else run.shown(current)
        if state == "up-to-date" and not own:
            others += 1
            continue
        lines.append(f" - {current}" if hide_status else f" - {STATUS_MAP[state]} {current}")
        if state in ("run", "error"):
            lines += ["     " + line for line in brief_reasons(run.checked[current].reasons)]
        elif state == "wait":
            lines += ["     " + line for line in wait_lines(run, current)]
    if others:
        lines.append(f" - and {others} more task{'s' if others > 1 else ''} it runs first"
                     + ("" if hide_status else ", up to date"))
    return lines


@quiet_when_reader_leaves
class Info(DoitInfo):
    """`doit info execute:S` for a stale stage also says whether the shared stage cache holds
    a complete run with the stage's current key (the run it would be restored from).
    `doit info S` for a group (a stage, `execute`, ...) lists the tasks it runs with their
    status and reasons, and exits 0 when none would run (doit's own says "The task has no
    dependencies" and exits 1 forever)."""

    def _execute(self, pos_args: list[str], hide_status: bool = False) -> Any:
        if is_pipeline(self) and len(pos_args) == 1:
            tasks = {t.name: t for t in self.task_list}
            if pos_args[0] in tasks and is_group(tasks[pos_args[0]]):
                return self._group_info(tasks[pos_args[0]], tasks, hide_status)
            if pos_args[0] in tasks and not hide_status:
                run = RunStatus(self.dep_manager, tasks)
                if run.shown(pos_args[0]) == "wait":
                    return self._waiting_info(pos_args, wait_lines(run, pos_args[0]))
        code = super()._execute(pos_args, hide_status=hide_status)
        if code == 1 and is_pipeline(self) and pos_args and pos_args[0].startswith("execute:"):
            self._stage_cache_line(pos_args[0].partition(":")[2])
        return code

    def _waiting_info(self, pos_args: list[str], why: list[str]) -> int:
        """doit's info of a task up to date on its own whose upstream would run: its status
        is "waits on upstream", with the stages it waits on (exit 1: not up to date)."""
        out: Any = self.outstream  # type: ignore[has-type]  # doit's, untyped
        self.outstream = buffer = io.StringIO()  # doit's info, then its status line replaced
        try:
            super()._execute(pos_args)
            text = buffer.getvalue()
        finally:
            self.outstream = out
        status = f"\n{'status':11s}: up-to-date\n"
        waiting = (f"\n{'status':11s}: waits on upstream\n"
                   + "".join(f" * {line}\n" for line in why))
        out.write(text.replace(status, waiting, 1))
        return 1

    def _stage_cache_line(self, stage: str) -> None:
        from mlops_tasks.run.restorable import cached_run_line

        line = cached_run_line(Path.cwd(), stage)
        if line:
            self.outstream.write(f"\nstage cache: {line}\n")

    def _group_info(self, task: Any, tasks: dict[str, Any], hide_status: bool) -> int:
        """In doit info's form: name, doc, status, then the tasks and the task_dep."""
        run = RunStatus(self.dep_manager, tasks, reasons=True)
        out = self.outstream
        out.write(f"\n{task.name}\n")
        if task.doc:
            out.write(f"\n{task.doc}\n")
        state = "up-to-date" if hide_status else run.status(task.name)
        if not hide_status:
            out.write(f"\n{'status':11s}: {state}\n")
        lines = group_lines(task.name, run, run.order(task.name), hide_status)
        out.write(f"\n{'tasks':11s}: \n" + "".join(line + "\n" for line in lines))
        out.write(f"\n{'task_dep':11s}: \n" + "".join(f" - {d}\n" for d in task.task_dep))
        stage_execute = tasks.get(f"execute:{task.name}")
        if stage_execute is not None and not hide_status and run.own(stage_execute) != (
                "up-to-date"):
            self._stage_cache_line(task.name)
        return 0 if state == "up-to-date" else 1


Run = guarded(DoitRun, runs_tasks=True, stamps=True)
Clean = quiet_when_reader_leaves(guarded(DoitClean))
Forget = quiet_when_reader_leaves(guarded(_Forget))
Ignore = quiet_when_reader_leaves(guarded(DoitIgnore))
ResetDep = quiet_when_reader_leaves(guarded(DoitResetDep))
Strace = guarded(DoitStrace, runs_tasks=True)
