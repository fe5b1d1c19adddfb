"""A stage's kernel process (jupyter_client): started as soon as the stage is known to run,
so it boots while the orchestrator opens the MLflow store and creates the run, and stopped
with a shutdown request as the stage ends. No papermill import here: it costs a second."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from mlops_tasks.base import interrupt
from mlops_tasks.run.stage_cache import SIGNING_KEY_ENV

# nbclient adds this to the kernels it starts itself; a kernel started here gets it too, so
# it never writes the user's IPython history database.
IN_MEMORY_HISTORY = "--HistoryManager.hist_file=:memory:"


class StageKernelManager(AsyncKernelManager):
    """A kernel manager that adds per-stage variables to the kernel's environment."""

    extra_env: dict[str, str] = {}
    drop_env: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    output: IO[bytes] | None = None  # the kernel process's stdout and stderr go here

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

    async def _async_finish_shutdown(self, waittime: float | None = None,
                                     pollinterval: float = 0.01, restart: bool = False
                                     ) -> None:
        # jupyter_client looks every 0.1 s whether the kernel has exited; a stage's next
        # step waits for that, so look ten times as often
        await super()._async_finish_shutdown(waittime, pollinterval, restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        pid = getattr(self, "kernel_pid", None)
        if pid:
            interrupt.untrack(pid)
        await super()._async_cleanup_resources(restart=restart)

    def client(self, **kwargs: Any) -> Any:
        """A client of this kernel, kept so that `stop` closes it: nbclient, given a kernel
        it does not own, never stops its client's channels, and each would keep a zmq
        context, its two threads and a heartbeat thread for the rest of the doit run (a
        thousand stages: thousands of threads and file descriptors)."""
        kc = super().client(**kwargs)
        self.__dict__.setdefault("stage_clients", []).append(kc)
        return kc

    def close_clients(self) -> None:
        for kc in self.__dict__.pop("stage_clients", []):
            with contextlib.suppress(Exception):  # a channel already stopped
                kc.stop_channels()


def venv_bin(venv: str, windows: bool) -> str:
    """The folder of a venv's executables: Scripts on Windows, bin elsewhere. Pure."""
    return venv.rstrip("\\/") + "\\Scripts" if windows else venv.rstrip("/") + "/bin"


def shell_env(venv: str, path: str, importable: tuple[str, ...], pythonpath: str,
              windows: bool) -> dict[str, str]:
    """The variables that make a notebook's shell the stage's own: its venv's bin folder
    first on PATH and VIRTUAL_ENV, so `!python` and `!pip` act on the stage's venv, never
    on the orchestrator's Python; `importable` folders first on PYTHONPATH. Pure."""
    sep = ";" if windows else ":"
    first = venv_bin(venv, windows)
    rest = [p for p in path.split(sep) if p and p != first]
    env = {"PATH": sep.join([first, *rest]), "VIRTUAL_ENV": venv}
    folders = [*importable, *(p for p in pythonpath.split(sep) if p)]
    if folders:
        env["PYTHONPATH"] = sep.join(dict.fromkeys(folders))
    return env


def kernel_manager(stage: str, kernel_name: str, kernel_dir: Path, env: Mapping[str, str],
                   drop_env: tuple[str, ...], sockets: Path | None, cwd: Path,
                   kernel_args: tuple[str, ...] = (), workdir: Path | None = None
                   ) -> StageKernelManager:
    """The stage's kernel, from the project's kernelspecs, with the stage's environment.
    `cwd` is the project root (doit's cwd); `workdir` the kernel's, when it is another."""
    ksm = KernelSpecManager(kernel_dirs=[str(kernel_dir)])
    km = StageKernelManager(kernel_name=kernel_name, kernel_spec_manager=ksm)
    path = str(sockets / f"{stage}-{os.getpid()}") if sockets is not None else ""
    # a relative socket path would be read from two folders when the kernel runs elsewhere
    relative_ok = workdir is None or workdir == cwd
    if sockets is not None and os.name != "nt" and (len(path) < 90 or relative_ok):
        # Local sockets instead of TCP ports on 127.0.0.1: no other user of the machine can
        # connect, and ipykernel has no cause to warn about unencrypted TCP. A deep project
        # gets a path relative to its root (the cwd of doit and of the kernel), to stay
        # short of the 107-byte limit of a socket path.
        sockets.mkdir(parents=True, exist_ok=True)
        km.transport = "ipc"
        km.ip = path if len(path) < 90 else os.path.relpath(path, cwd)
    km.extra_env = dict(env)
    km.extra_args = kernel_args
    # Let the stage kernel write bytecode into its own venv: later starts import fast.
    km.drop_env = ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONPATH",
                   SIGNING_KEY_ENV, *drop_env)  # a notebook never holds the cache's key
    return km


def launch(km: StageKernelManager, cwd: Path, log: Path | None) -> None:
    """Start the kernel process and return at once (it boots on its own; papermill waits for
    it to answer). A kernel that cannot be launched (a kernelspec or an interpreter gone)
    is left unstarted: papermill starts it again and reports the failure as it always has,
    inside the stage's run."""
    km.output = open(log, "ab") if log is not None else None  # noqa: SIM115
    try:
        run_sync(km.start_kernel)(cwd=str(cwd), extra_arguments=[IN_MEMORY_HISTORY])
    except Exception:  # noqa: BLE001 - raised again, with its message, by papermill's start
        return


def stop(km: StageKernelManager, now: bool = False) -> None:
    """Stop the kernel as the stage ends (one kernel per running stage), with a shutdown
    request, so the notebook's atexit handlers run; a kernel that does not answer is killed
    after the manager's wait. `now`: kill it (a kernel whose notebook will not run)."""

    async def shutdown() -> None:
        if await km.is_alive():
            await km.shutdown_kernel(now=now)
        else:
            await km.cleanup_resources()

    try:
        run_sync(shutdown)()
    except RuntimeError as err:  # "No kernel is running!": it stopped on its own
        if "No kernel" not in str(err):
            raise
    finally:
        km.close_clients()
        if km.output is not None:
            km.output.close()
            km.output = None
