"""The stage kernels of one doit process: launched for a stage as it starts, or booted ahead.

Once a stage's first cell runs, the kernel of the stage doit runs next boots beside it (when
that stage reads what this one writes, and its venv and kernelspec are ready as they are), so
its cells start without waiting for a boot. So at most one kernel waits ahead per running
stage; one that its stage does not claim (restored from the cache, up to date, stopped by a
failure upstream) is killed, at the latest when the doit run ends."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # every doit run plans its kernels: this module imports nothing heavy
    from mlops_tasks.project.config import Config
    from mlops_tasks.project.spec import Stage
    from mlops_tasks.tracking import kernel_context as kernel_tracking

_lock = threading.Lock()
_order: tuple[str, ...] = ()  # the stages whose execute task this doit run may run, in order
_upstream: dict[str, frozenset[str]] = {}  # each of those stages' direct upstream stages
_ahead: dict[str, tuple[Any, kernel_tracking.KernelTracking]] = {}
_stages: dict[str, Stage] = {}  # the project's stages, as this doit run loaded them


def task_deps(tasks: Iterable[Any]) -> dict[str, list[str]]:
    """Each doit task's dependencies as its runner sees them: its task_dep, then the tasks
    whose targets are its file_dep (doit's implicit task_dep). Pure (on the task objects)."""
    producer = {str(target): task.name for task in tasks for target in task.targets}
    return {task.name: [*task.task_dep, *(producer[str(f)] for f in task.file_dep
                                          if str(f) in producer)] for task in tasks}


def doit_order(selected: Iterable[str], task_dep: Mapping[str, Iterable[str]]) -> list[str]:
    """The tasks doit runs for `selected`, in the order its sequential runner takes them:
    each task after its task_dep, depth first, each once. Pure."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name not in task_dep:
            return
        seen.add(name)
        for dep in task_dep[name]:
            visit(dep)
        order.append(name)

    for name in selected:
        visit(name)
    return order


def stage_plan(selected: Iterable[str], task_dep: Mapping[str, Iterable[str]]
               ) -> tuple[list[str], dict[str, frozenset[str]]]:
    """The stages whose execute:S the run takes, in order, and each one's direct upstream
    stages (execute:S waits for log:U of each, by task_dep). Pure."""
    stages = [t.partition(":")[2] for t in doit_order(selected, task_dep)
              if t.startswith("execute:")]
    upstream = {s: frozenset(d.partition(":")[2] for d in task_dep[f"execute:{s}"]
                             if d.startswith("log:")) for s in stages}
    return stages, upstream


def next_stage(order: Iterable[str], upstream: Mapping[str, frozenset[str]], current: str
               ) -> str | None:
    """The stage that runs after `current` when it reads what `current` writes; None when
    the next one is another's (or there is none). Pure."""
    stages = list(order)
    if current not in stages:
        return None
    after = stages[stages.index(current) + 1:]
    if after and current in upstream.get(after[0], frozenset()):
        return after[0]
    return None


def plan(order: Iterable[str], upstream: Mapping[str, frozenset[str]],
         stages: Iterable[Stage] = ()) -> None:
    """What this doit run will execute (set once its tasks are selected), and the stages as
    loaded for its tasks (a kernel booted ahead needs its stage: a thousand stages are not
    loaded again for each)."""
    global _order, _upstream, _stages
    with _lock:
        _order, _upstream = tuple(order), dict(upstream)
        _stages = {s.name: s for s in stages}


def kernel_shell(root: Path, stage: Stage, pythonpath: str) -> dict[str, str]:
    """PATH, VIRTUAL_ENV and PYTHONPATH of the stage's kernel: its venv's shell, with the
    notebook's own folder importable whatever its working folder."""
    from mlops_tasks.run.kernel_launch import shell_env

    folder = os.path.abspath(root / (os.path.dirname(stage.notebook) or "."))
    return shell_env(os.path.abspath(root / stage.env_dir), os.environ.get("PATH", ""),
                     (folder,), pythonpath, os.name == "nt")


def launch_kernel(config: Config, stage: Stage) -> tuple[Any, kernel_tracking.KernelTracking]:
    """The stage's kernel process, started before any MLflow work so that it boots while the
    run is created; and how it will reach the store."""
    from mlops_tasks.project import layout
    from mlops_tasks.run.kernel_launch import kernel_manager, launch
    from mlops_tasks.tracking import client as tracking
    from mlops_tasks.tracking import kernel_context as kernel_tracking

    root = config.root
    kernel = kernel_tracking.for_stage(root, root / layout.freeze_file(stage),
                                       config.resolved_tracking_uri())
    context_file = root / layout.kernel_context(stage)
    context_file.unlink(missing_ok=True)
    env = {**stage.env, **kernel.launch_env(root, stage.name, layout.notebook_runs(stage),
                                            layout.kernel_context(stage))}
    env.update(kernel_shell(root, stage, env.get("PYTHONPATH", "")))
    km = kernel_manager(stage.name, stage.kernel_name, root / layout.kernels_dir(), env,
                        tuple(tracking.ORCHESTRATOR_ONLY_ENV), root / layout.kernel_sockets(),
                        root, kernel.kernel_args(), root / stage.workdir)
    log = root / layout.stage_log(stage)
    log.parent.mkdir(parents=True, exist_ok=True)
    launch(km, root / stage.workdir, log)
    return km, kernel


def take(config: Config, stage: Stage) -> tuple[Any, kernel_tracking.KernelTracking]:
    """The stage's kernel: the one booted ahead for it, else one launched now."""
    with _lock:
        ahead = _ahead.pop(stage.name, None)
    if ahead is not None:
        from mlops_tasks.base import console

        console.say("its kernel booted while the stage before it ran", "execute", stage.name)
        return ahead
    return launch_kernel(config, stage)


def boot_ahead(config: Config, current: str) -> None:
    """Boot the next stage's kernel in the background (see the module's doc); called as
    `current`'s first cell starts."""
    if not config.boot_ahead:
        return
    with _lock:
        name = next_stage(_order, _upstream, current)
        if name is None or name in _ahead:
            return
    threading.Thread(target=_boot, args=(config, name), name=f"kernel-ahead-{name}",
                     daemon=True).start()


def _boot(config: Config, name: str) -> None:
    from mlops_tasks.base.errors import MlopsError
    from mlops_tasks.env.venv import ready_if_built
    from mlops_tasks.project.load import load_project

    try:
        stage = _stages.get(name) or next(
            (s for s in load_project(config.root).stages if s.name == name), None)
        if stage is None or not ready_if_built(config, stage):
            return  # its execute task builds what it needs, as ever
        km, kernel = launch_kernel(config, stage)
        # a kernel with mlflow reaches the local store through a server of this process:
        # it starts loading now, not when that stage starts
        booted = (km, kernel.with_store_served(config.root))
    except (MlopsError, OSError):
        return  # its execute task launches it, and says what is wrong
    with _lock:
        _ahead[name] = booted


def drop(name: str) -> None:
    """The stage will not run its notebook: a kernel booted for it is killed."""
    with _lock:
        ahead = _ahead.pop(name, None)
    if ahead is not None:
        _kill(ahead[0])


def drop_all() -> None:
    """As the doit run ends: no kernel booted ahead outlives it."""
    with _lock:
        left = list(_ahead.values())
        _ahead.clear()
    for km, _ in left:
        _kill(km)


def _kill(km: Any) -> None:
    from mlops_tasks.run.kernel_launch import stop

    with contextlib.suppress(Exception):  # a kernel that is gone already
        stop(km, now=True)
