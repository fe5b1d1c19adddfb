"""Inside a stage's kernel: the notebook's own mlflow calls land where the notebook asked.

Loaded by the kernel as an IPython extension (`mlops_kernel_hook`, a copy of this file in the
state folder), so it runs on the stage's Python (3.8 up) with whatever mlflow the stage
pinned: it imports nothing of the package and touches mlflow only once the notebook imports
it. The rule (DESIGN.md section 5):

| in the notebook                                   | lands in                              |
|---------------------------------------------------|---------------------------------------|
| a logging call with no run started                | the stage run                         |
| `start_run()` with no experiment, the first time  | the stage run                         |
| `start_run(experiment_id=X)`, `set_experiment(X)` | a new run in X, linked to the stage   |
| `start_run(nested=True)` inside a run             | a child of that run (MLflow's rule)   |

A linked run carries `mlflow.parentRunId` and `mlops.stage_run_id`; every run the notebook
creates carries `mlops.stage` (the stage that made it) and, when the notebook gave it no name,
the name `<stage>/<n>` (its nth run) instead of MLflow's random one; each is appended to the
file named by MLOPS_NOTEBOOK_RUNS, which the stage run lists.

The kernel starts before the stage's run exists (it boots while doit creates the run): the
run's id and the store's address reach it in the file named by MLOPS_KERNEL_CONTEXT, read
before the first cell runs.

Every stage kernel loads it, with or without mlflow, for one more job: its exit (see
`exit_quickly`). A kernel without mlflow gets only that."""

from __future__ import annotations  # the annotations below stay text on Python 3.8

import atexit
import contextlib
import functools
import gc
import importlib.abc
import importlib.util
import inspect
import io
import json
import logging
import os
import sys
import weakref
from typing import Any

STAGE_TAG = "mlops.stage"
STAGE_RUN_TAG = "mlops.stage_run_id"
PARENT_TAG = "mlflow.parentRunId"
NAME_TAG = "mlops.notebook_run_name"


class _Stage:
    run_id: str | None = None
    experiment_id: str | None = None
    runs_file: str | None = None
    name: str | None = None  # the stage's name (MLOPS_STAGE)
    created = 0  # runs the notebook has created so far
    taken = False  # the notebook has resumed the stage run once


def decide(run_id: str | None, experiment_id: str | None, parent_run_id: str | None,
           active: bool, current_experiment: str | None, stage_experiment: str | None,
           taken: bool) -> str:
    """'as-is' (MLflow decides: an explicit run, or nested under the active one), 'stage'
    (resume the stage run) or 'linked' (a new run in the experiment asked for, linked)."""
    if run_id or parent_run_id or active:
        return "as-is"
    target = experiment_id if experiment_id is not None else current_experiment
    if not taken and target is not None and str(target) == str(stage_experiment):
        return "stage"
    return "linked"


def _current_experiment(fluent: Any) -> str | None:
    try:
        found = fluent._get_experiment_id()
    except Exception:
        found = getattr(fluent, "_active_experiment_id", None) or os.environ.get(
            "MLFLOW_EXPERIMENT_ID")
    return None if found is None else str(found)


def _record(run: Any) -> None:
    if _Stage.runs_file and run is not None:
        with open(_Stage.runs_file, "a", encoding="utf-8") as f:
            f.write(f"{run.info.run_id}\t{run.info.experiment_id}\n")


def mark_created(given: dict[str, Any], tags: dict[str, Any], stage: str | None,
                 number: int) -> None:
    """A run the notebook creates: tagged with its stage, named `<stage>/<number>` unless
    the notebook named it."""
    if stage:
        tags.setdefault(STAGE_TAG, stage)
        if not given.get("run_name") and "mlflow.runName" not in tags:
            given["run_name"] = f"{stage}/{number}"


def _wrap(start_run: Any, fluent: Any) -> Any:
    try:
        signature = inspect.signature(start_run)
    except (TypeError, ValueError):
        return start_run

    @functools.wraps(start_run)
    def stage_start_run(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return start_run(*args, **kwargs)  # MLflow's own message
        given = dict(bound.arguments)
        tags = dict(given.get("tags") or {})
        action = decide(given.get("run_id"), given.get("experiment_id"),
                        given.get("parent_run_id"), fluent.active_run() is not None,
                        _current_experiment(fluent), _Stage.experiment_id, _Stage.taken)
        if action == "stage":
            given["run_id"] = _Stage.run_id
            given.pop("experiment_id", None)
            name = given.pop("run_name", None)
            if name:
                tags.setdefault(NAME_TAG, str(name))
            if tags:
                given["tags"] = tags
            _Stage.taken = True
            return start_run(**given)
        if action == "linked":
            if given.get("experiment_id") is None:
                given["experiment_id"] = _current_experiment(fluent)
            tags.setdefault(PARENT_TAG, _Stage.run_id)
        if not given.get("run_id"):
            tags.setdefault(STAGE_RUN_TAG, _Stage.run_id)
            _Stage.created += 1
            mark_created(given, tags, _Stage.name, _Stage.created)
            given["tags"] = tags
        elif given["run_id"] == _Stage.run_id:
            _Stage.taken = True
        run = start_run(**given)
        if not given.get("run_id"):
            _record(run)
        return run

    stage_start_run.__mlops_wrapped__ = True  # type: ignore[attr-defined]
    return stage_start_run


def patch(mlflow: Any) -> None:
    """Route the fluent API's start_run (what log_* calls use to start a run, too)."""
    fluent: Any = sys.modules.get("mlflow.tracking.fluent")
    original = getattr(fluent, "start_run", None)
    if fluent is None or original is None or getattr(original, "__mlops_wrapped__", False):
        return
    wrapped = _wrap(original, fluent)
    fluent.start_run = wrapped
    for module in (mlflow, sys.modules.get("mlflow.tracking")):
        if module is not None and getattr(module, "start_run", None) is original:
            setattr(module, "start_run", wrapped)  # noqa: B010


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patch mlflow once its package has been imported, whichever version it is."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "mlflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_patch(module: Any) -> None:
            exec_module(module)
            try:
                patch(module)
            except Exception as err:  # the notebook runs on with MLflow's own behaviour
                sys.stderr.write(f"mlops-tasks: notebook MLflow runs are not linked: {err}\n")

        spec.loader.exec_module = exec_then_patch  # type: ignore[method-assign]
        return spec


def forget_hook_dir(environ: Any = os.environ) -> None:
    """The notebook and its own subprocesses do not see the folder the hook came from."""
    hook_dir = environ.pop("MLOPS_KERNEL_HOOK_DIR", None)
    if hook_dir:
        rest = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != hook_dir]
        if rest:
            environ["PYTHONPATH"] = os.pathsep.join(rest)
        else:
            environ.pop("PYTHONPATH", None)
        if hook_dir in sys.path:
            sys.path.remove(hook_dir)


def install(environ: Any = os.environ) -> None:
    _Stage.run_id = environ.pop("MLOPS_STAGE_RUN_ID", None)
    _Stage.experiment_id = environ.get("MLFLOW_EXPERIMENT_ID")
    _Stage.runs_file = environ.pop("MLOPS_NOTEBOOK_RUNS", None)
    _Stage.name = environ.get("MLOPS_STAGE")
    # The stage run is resumed through this hook only: MLflow would resume it for any first
    # start_run, whatever experiment that asked for.
    environ.pop("MLFLOW_RUN_ID", None)
    forget_hook_dir(environ)
    if "mlflow" in sys.modules:
        patch(sys.modules["mlflow"])
    else:
        sys.meta_path.insert(0, _AfterImport())


def apply_context(path: str, environ: Any = os.environ) -> None:
    """The stage's run and the store's address, which exist only once the kernel has
    started: read from the file doit wrote before the first cell, then removed (doit
    checks that it was read)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        os.remove(path)
    except (OSError, ValueError) as err:
        sys.stderr.write(f"mlops-tasks: no stage context in {path} ({err}); the notebook's "
                         "MLflow calls are not routed to the stage run\n")
        return
    environ.update({str(k): str(v) for k, v in values.items()})
    install(environ)


class _BeforeFirstCell:
    def __init__(self, path: str, environ: Any = os.environ) -> None:
        self.path: str | None = path
        self.environ = environ

    def __call__(self, *args: Any) -> None:  # IPython 7 and up pass the cell's info
        path, self.path = self.path, None
        if path:
            apply_context(path, self.environ)


def _clear_namespace() -> None:
    """IPython's own exit work: the notebook's variables dropped (their files closed)."""
    ipython = sys.modules.get("IPython")  # nothing can be imported this late
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        shell.atexit_operations()


def _flush_files() -> None:
    """Every file object still open anywhere (a module's global, a cycle) written out."""
    for obj in gc.get_objects():
        if isinstance(obj, io.IOBase):
            with contextlib.suppress(Exception):  # a broken file leaves the others written
                if not obj.closed and obj.writable():
                    obj.flush()


def _stop_pool_children() -> None:
    if "multiprocessing.util" in sys.modules:
        sys.modules["multiprocessing.util"]._exit_function()


def exit_quickly() -> None:
    """The kernel's last exit handler: registered as the kernel starts, so it runs after
    every handler the notebook and its libraries registered. It does what the rest of the
    interpreter's exit would still do that a notebook can depend on (its variables dropped,
    every open file flushed, logging's handlers closed, weakref finalizers and a
    multiprocessing pool's children stopped), then ends the process without tearing down
    each module one by one: most of a stop (0.85 s of it for a kernel that imported pandas,
    scikit-learn and matplotlib, 0.3 s left), paid by every stage before the next starts."""
    for step in (_clear_namespace, _flush_files, logging.shutdown,
                 weakref.finalize._exitfunc,  # type: ignore[attr-defined]
                 _stop_pool_children):
        try:
            step()
        except BaseException as err:  # noqa: BLE001 - the next steps still run
            sys.stderr.write(f"mlops-tasks: at kernel exit, {step.__name__}: {err!r}\n")
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):  # a closed stream has nothing to write
            stream.flush()  # type: ignore[union-attr]
    os._exit(0)


def load_ipython_extension(ipython: Any) -> None:
    atexit.register(exit_quickly)
    context = os.environ.pop("MLOPS_KERNEL_CONTEXT", None)
    if context:  # the kernel started before the stage's run existed
        forget_hook_dir()
        ipython.events.register("pre_run_cell", _BeforeFirstCell(context))
    elif os.environ.get("MLOPS_STAGE_RUN_ID"):
        install()
    else:  # no mlflow in the venv: the quick exit only
        forget_hook_dir()
