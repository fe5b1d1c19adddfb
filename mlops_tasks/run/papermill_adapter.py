"""The papermill/Jupyter adapter: run one notebook on a stage's kernel and turn papermill's
and nbclient's failures into StageFailed with the stage, the cell and the cause (the only
papermill import)."""

from __future__ import annotations

import json
import logging
import os
import re
import textwrap
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.kernelspec import NoSuchKernel
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError
from papermill.iorw import papermill_io

from mlops_tasks.base import console
from mlops_tasks.base.errors import StageFailed
from mlops_tasks.base.redact import redact, redact_data
from mlops_tasks.project.notebooks import early_exit_cell, source_cell_number
from mlops_tasks.run.kernel_launch import StageKernelManager, stop

_logging_ready = False
_logging_lock = threading.Lock()


def _setup_logging() -> None:
    """Papermill logs cell output through `logging`; show it in doit's output. It writes
    the executed notebook through the handler of its path's scheme; register ours."""
    global _logging_ready
    with _logging_lock:
        if not _logging_ready:
            _add_handler()
            papermill_io.register(REDACTED, _RedactedNotebooks())
            _logging_ready = True


# papermill writes the executed notebook after each cell, on failure and at the end: given
# a path with this prefix, each write goes through _RedactedNotebooks, so the file on disk
# never holds a credential that a cell printed (the tracking URI with its password).
REDACTED = "mlops-redacted:"


def _local(path: str) -> str:
    return path[len(REDACTED):] if path.startswith(REDACTED) else path


# output file -> the kernelspec written into its metadata (the stage's, not the source's)
_kernelspecs: dict[str, dict[str, str]] = {}


def kernelspec_of(km: StageKernelManager) -> dict[str, str]:
    """The stage kernel's name, display name and language, as Jupyter keeps them in a
    notebook's metadata, so an executed notebook opens on the stage's interpreter."""
    try:
        spec = km.kernel_spec
    except (NoSuchKernel, OSError, ValueError):
        spec = None
    return {"name": km.kernel_name,
            "display_name": getattr(spec, "display_name", None) or km.kernel_name,
            "language": getattr(spec, "language", None) or "python"}


def redacted_notebook(text: str, kernelspec: Mapping[str, str] | None = None) -> str:
    """A notebook's JSON with credentials in URLs hidden in every string (cell outputs,
    sources, metadata), written as nbformat writes it; with `kernelspec` as its kernel."""
    try:
        nb = json.loads(text)
    except ValueError:
        return redact(text)
    if kernelspec and isinstance(nb.get("metadata"), dict):
        nb["metadata"]["kernelspec"] = dict(kernelspec)
    papermill_meta = nb.get("metadata", {}).get("papermill", {})
    if isinstance(papermill_meta.get("output_path"), str):
        papermill_meta["output_path"] = _local(papermill_meta["output_path"])
    return json.dumps(redact_data(nb), indent=1, sort_keys=True, separators=(",", ": "),
                      ensure_ascii=False)


class _RedactedNotebooks:
    """papermill's I/O handler for the `mlops-redacted:` paths (local files)."""

    def read(self, path: str) -> str:
        return Path(_local(path)).read_text(encoding="utf-8")

    def write(self, buf: str, path: str) -> None:
        local = _local(path)
        Path(local).write_text(redacted_notebook(buf, _kernelspecs.get(local)),
                               encoding="utf-8")

    def pretty_path(self, path: str) -> str:
        return _local(path)

    def listdir(self, path: str) -> list[str]:
        return [os.path.join(path, name) for name in os.listdir(_local(path))]


_running = threading.local()  # the stage this thread runs, and its number of cells
CHATTER = re.compile(r"^(Ending Cell |Input Notebook:|Output Notebook:|Working directory:|"
                     r"Executing notebook with kernel:)")
CELL_START = re.compile(r"^Executing Cell (\d+)-")


class _ConsoleHandler(logging.Handler):
    """papermill's log: cell output as detail (the stage's log file; the console unless
    live), its own bookkeeping to the log file only, cell starts as progress."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        stage, total = getattr(_running, "stage", None), getattr(_running, "cells", 0)
        start = CELL_START.match(message)
        if start:
            console.log_only(message)
            if stage:
                console.progress(f"execute:{stage}", f"cell {start.group(1)} of {total}")
        elif CHATTER.match(message):
            console.log_only(message)
        else:  # cell output, every line indented under its task
            console.detail(textwrap.indent(message.rstrip("\n"), "    ", lambda _: True))


def _add_handler() -> None:
    handler = _ConsoleHandler()
    # The execute step warns about undeclared spec parameters itself; papermill's own warning
    # would also fire for the context it injects (stage_name, mlflow_run_id, ...).
    handler.addFilter(lambda r: not r.getMessage().startswith("Passed unknown parameter"))
    log = logging.getLogger("papermill")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    # nbformat warns for a notebook whose cells have no ids (older tools write none) as it
    # adds them to the copy in memory; the source file is never rewritten
    warnings.filterwarnings("ignore", message=".*missing an id field", category=FutureWarning)


def _cell_count(notebook: Path) -> int:
    try:
        return len(json.loads(notebook.read_text(encoding="utf-8")).get("cells", []))
    except (OSError, ValueError):
        return 0


def _traceback_tail(err: PapermillExecutionError, lines: int = 8) -> str:
    text = "\n".join(err.traceback or [])
    # tracebacks carry ANSI colours for the notebook UI; strip them for logs
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(text.strip().splitlines()[-lines:])


def _failed_cell(output: Path, cell_index: int | None) -> int | None:
    """The failing cell's number in the source notebook, from the notebook papermill saved."""
    if cell_index is None:
        return None
    try:
        cells = json.loads(output.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return None
    return source_cell_number(cells, cell_index)


def run_notebook(
    *,
    stage: str,
    notebook: Path,
    output: Path,
    failed: Path,
    km: StageKernelManager,
    parameters: Mapping[str, Any],
    cwd: Path,
    timeout: float | None,
    allow_early_exit: bool = False,
    spec_path: str = "",
    log: Path | None = None,
    workdir: str = ".",
    on_first_cell: Callable[[], None] | None = None,
) -> None:
    """Execute notebook into output on the stage's kernel (launched already, or started here
    when its launch failed, in its working folder `workdir`, project-relative). `cwd` stays
    the project root: papermill changes the whole process's folder to it, and other stages
    run in other threads. Raise StageFailed naming the stage, cell and cause. The kernel is
    stopped as this returns. `on_first_cell` is called once, as the first cell starts (the
    kernel is up by then)."""
    _setup_logging()
    kernel_name = km.kernel_name
    log_start = _size(log)
    _running.stage, _running.cells = stage, _cell_count(notebook) + 1  # + the injected one
    _kernelspecs[os.path.abspath(output)] = kernelspec_of(km)
    try:
        nb = papermill.execute_notebook(
            str(notebook), REDACTED + os.path.abspath(output), parameters=dict(parameters),
            kernel_name=kernel_name, language="python", progress_bar=False, log_output=True,
            cwd=str(cwd), execution_timeout=timeout, km=km,
            on_cell_start=_once(on_first_cell))
    except (PapermillExecutionError, DeadKernelError, CellTimeoutError, NoSuchKernel,
            FileNotFoundError, RuntimeError) as err:
        failure = stage_failure(err, stage, output, failed, kernel_name, timeout)
        if failure is err:
            raise
        if isinstance(err, PapermillExecutionError) and isinstance(failure, StageFailed) \
                and err.ename == "ModuleNotFoundError":
            failure = StageFailed(stage, failure.cause + import_hint(workdir, spec_path),
                                  cell=failure.cell, notebook=failure.notebook)
        raise _naming_log(failure, log, cwd) from None
    finally:
        _running.stage = None
        _kernelspecs.pop(os.path.abspath(output), None)
        stop(km)
        _redact_log(log, log_start)
    stopped = early_exit_cell(nb.cells)
    if stopped and not allow_early_exit:
        raise StageFailed(stage, f"the notebook stopped early: code cell {stopped} called "
                          "sys.exit() and the cells after it never ran. If stopping there is "
                          f"intended, set allow_early_exit: true in {spec_path}",
                          cell=stopped, notebook=str(failed))


def _once(call: Callable[[], None] | None) -> Callable[..., None] | None:
    """An nbclient cell hook that calls `call` at the first cell only."""
    if call is None:
        return None
    called: list[bool] = []

    def hook(**_: Any) -> None:
        if not called:
            called.append(True)
            call()

    return hook


def import_hint(workdir: str, spec_path: str) -> str:
    """What to try when a notebook cannot import a module. Pure."""
    where = "the project root" if workdir == "." else f"{workdir}/"
    return (f"\nThe notebook ran in {where} (its working folder), with its own folder "
            "importable. A module of the project that sits elsewhere: set 'workdir' in "
            f"{spec_path or 'the stage spec'} to its folder (workdir: notebook for the "
            "notebook's own folder). A package: add it to 'packages' there.")


def _size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def _redact_log(log: Path | None, start: int) -> None:
    """The kernel process writes its own output (os.system, C libraries, its warnings)
    straight into the stage's log; once it has stopped, hide credentials in what this run
    added there too (in place: the log stays open for appending)."""
    if log is None:
        return
    try:
        with open(log, "r+b") as file:
            file.seek(start)
            added = file.read()
            text = added.decode("utf-8", "surrogateescape")
            clean = redact(text)
            if clean != text:
                file.seek(start)
                file.write(clean.encode("utf-8", "surrogateescape"))
                file.truncate()
    except OSError:
        return


def _naming_log(failure: Exception, log: Path | None, cwd: Path) -> Exception:
    if not isinstance(failure, StageFailed) or log is None:
        return failure
    return StageFailed(failure.stage, f"{failure.cause}\nThe cell output and the kernel's own "
                       f"messages: {os.path.relpath(log, cwd)}", cell=failure.cell,
                       notebook=failure.notebook)


def stage_failure(err: Exception, stage: str, output: Path, failed: Path, kernel_name: str,
                  timeout: float | None) -> Exception:
    """papermill's and nbclient's failures as StageFailed naming the stage, cell and cause."""
    if isinstance(err, PapermillExecutionError):
        cell = _failed_cell(output, err.cell_index)
        return StageFailed(stage, redact(
            f"{'code cell ' + str(cell) if cell else 'a cell'} failed with "
            f"{err.ename}: {err.evalue}\n{_traceback_tail(err)}\n"
            f"The executed notebook with the error: {failed}"),
            cell=cell, notebook=str(failed))
    if isinstance(err, DeadKernelError):
        return StageFailed(stage, f"the kernel died ({err}); the notebook so far: {failed}",
                           notebook=str(failed))
    if isinstance(err, CellTimeoutError):
        return StageFailed(stage, f"a cell ran over the spec's timeout of {timeout} s "
                           f"({str(err).splitlines()[0]}); the notebook so far: {failed}",
                           notebook=str(failed))
    # A kernelspec whose interpreter is gone surfaces as one of these at start (a plain
    # RuntimeError: "Kernel died before replying"); papermill's own errors subclass it.
    if isinstance(err, RuntimeError) and type(err) is not RuntimeError:
        return err
    return StageFailed(stage, redact(
        f"could not start kernel '{kernel_name}': {err}. If the stage's venv is broken, "
        f"remove it (`doit clean venv:{stage}`) and run again"))
