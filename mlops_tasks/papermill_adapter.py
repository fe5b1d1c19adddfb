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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import papermill
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from papermill.exceptions import PapermillExecutionError

from . import console, interrupt
from .errors import StageFailed
from .notebooks import early_exit_cell, source_cell_number
from .redact import redact

_logging_ready = False
_logging_lock = threading.Lock()


def _setup_logging() -> None:
    """Papermill logs cell output through `logging`; show it in doit's output."""
    global _logging_ready
    with _logging_lock:
        if not _logging_ready:
            _add_handler()
            _logging_ready = True


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


class StageKernelManager(AsyncKernelManager):
    """A kernel manager that adds per-stage variables to the kernel's environment."""

    extra_env: dict[str, str] = {}
    drop_env: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    output: Any = None  # a file the kernel process writes its stdout and stderr to

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        env = dict(kw.pop("env", None) or os.environ)
        for name in self.drop_env:
            env.pop(name, None)
        env.update(self.extra_env)
        kw["env"] = env
        return await super()._async_pre_start_kernel(**kw)

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        if self.output is not None:  # the kernel's own warnings: the stage's log, not the terminal
            kw["stdout"] = kw["stderr"] = self.output
        await super()._async_launch_kernel([*kernel_cmd, *self.extra_args], **kw)
        pid = getattr(self.provisioner, "pid", None)
        if pid:  # jupyter_client starts kernels in their own session: stop them on abort
            self.kernel_pid = pid
            interrupt.track(pid, group=os.name != "nt")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        pid = getattr(self, "kernel_pid", None)
        if pid:
            interrupt.untrack(pid)
        await super()._async_cleanup_resources(restart=restart)


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


def kernel_manager(stage: str, kernel_name: str, kernel_dir: Path, env: Mapping[str, str],
                   drop_env: tuple[str, ...], sockets: Path | None, cwd: Path,
                   kernel_args: tuple[str, ...] = ()) -> StageKernelManager:
    """The stage's kernel, from the project's kernelspecs, with the stage's environment."""
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    km = StageKernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm)
    if sockets is not None and os.name != "nt":
        # Local sockets instead of TCP ports on 127.0.0.1: no other user of the machine can
        # connect, and ipykernel has no cause to warn about unencrypted TCP. A deep project
        # gets a path relative to its root (the cwd of doit and of the kernel), to stay
        # short of the 107-byte limit of a socket path.
        sockets.mkdir(parents=True, exist_ok=True)
        km.transport = "ipc"
        path = str(sockets / f"{stage}-{os.getpid()}")
        km.ip = path if len(path) < 90 else os.path.relpath(path, cwd)
    km.extra_env = dict(env)
    km.extra_args = kernel_args
    # Let the stage kernel write bytecode into its own venv: later starts import fast.
    km.drop_env = ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH",
                   *drop_env)
    return km


def run_notebook(
    *,
    stage: str,
    notebook: Path,
    output: Path,
    failed: Path,
    kernel_name: str,
    kernel_dir: Path,
    parameters: Mapping[str, Any],
    cwd: Path,
    env: Mapping[str, str],
    drop_env: tuple[str, ...],
    timeout: float | None,
    allow_early_exit: bool = False,
    spec_path: str = "",
    sockets: Path | None = None,
    kernel_args: tuple[str, ...] = (),
    log: Path | None = None,
) -> None:
    """Execute notebook into output. Raise StageFailed naming the stage, cell and cause.
    The kernel process's own output (warnings) goes to `log`, the stage's log file."""
    _setup_logging()
    km = kernel_manager(stage, kernel_name, kernel_dir, env, drop_env, sockets, cwd,
                        kernel_args)
    km.output = open(log, "ab") if log is not None else None  # noqa: SIM115
    _running.stage, _running.cells = stage, _cell_count(notebook) + 1  # + the injected one
    try:
        nb = papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=dict(parameters),
            kernel_name=kernel_name,
            language="python",
            progress_bar=False,
            log_output=True,
            cwd=str(cwd),
            execution_timeout=timeout,
            km=km,
        )
    except (PapermillExecutionError, DeadKernelError, CellTimeoutError, NoSuchKernel,
            FileNotFoundError, RuntimeError) as err:
        failure = stage_failure(err, stage, output, failed, kernel_name, timeout)
        if failure is err:
            raise
        raise _naming_log(failure, log, cwd) from None
    finally:
        _running.stage = None
        stop_kernel(km)
        if km.output is not None:
            km.output.close()
    stopped = early_exit_cell(nb.cells)
    if stopped and not allow_early_exit:
        raise StageFailed(stage, f"the notebook stopped early: code cell {stopped} called "
                          "sys.exit() and the cells after it never ran. If stopping there is "
                          f"intended, set allow_early_exit: true in {spec_path}",
                          cell=stopped, notebook=str(failed))


def _naming_log(failure: Exception, log: Path | None, cwd: Path) -> Exception:
    if not isinstance(failure, StageFailed) or log is None:
        return failure
    return StageFailed(failure.stage, f"{failure.cause}\nThe cell output and the kernel's own "
                       f"messages: {os.path.relpath(log, cwd)}", cell=failure.cell,
                       notebook=failure.notebook)


def stop_kernel(km: StageKernelManager) -> None:
    """papermill leaves running a kernel whose manager it was given: stop it as the stage ends
    (one kernel per running stage), with a shutdown request, so the notebook's atexit
    handlers run; a kernel that does not answer is killed after the manager's wait."""

    async def stop() -> None:
        if await km.is_alive():
            await km.shutdown_kernel(now=False)
        else:
            await km.cleanup_resources()

    try:
        run_sync(stop)()
    except RuntimeError as err:  # "No kernel is running!": it stopped on its own
        if "No kernel" not in str(err):
            raise


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
