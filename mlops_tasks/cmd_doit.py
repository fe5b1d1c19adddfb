"""doit's own commands that run tasks or write the dependency DB (`run`, `clean`, `forget`,
`ignore`, `reset-dep`, `strace`), replaced through doit's plugin entry points by the same
commands taking the workspace mutex and installing the signal handlers first. Nothing of
this happens when the dodo is merely imported (`doit list`, `doit info`)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from doit.cmd_clean import Clean as DoitClean
from doit.cmd_forget import Forget as DoitForget
from doit.cmd_ignore import Ignore as DoitIgnore
from doit.cmd_resetdep import ResetDep as DoitResetDep
from doit.cmd_run import Run as DoitRun
from doit.cmd_strace import Strace as DoitStrace
from doit.exceptions import InvalidDodoFile

from . import interrupt, workspace
from .config import load_config
from .errors import MlopsError


def prepare_workspace(root: Path) -> None:
    """Before the first task: hold the workspace, stop kernels and installers on a signal."""
    try:
        workspace.acquire(root, wait=load_config(root).workspace_busy == "wait")
    except MlopsError as err:
        raise InvalidDodoFile(str(err)) from None
    interrupt.install()


def guarded(base: Any) -> Any:
    """`base` with the workspace prepared once the dodo is loaded (doit has changed into the
    project folder by then) and before any task runs. doit reads `_execute`'s signature to
    pass its options, so the wrapper keeps it."""

    @functools.wraps(base._execute)
    def _execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        prepare_workspace(Path.cwd())
        return base._execute(self, *args, **kwargs)

    return type(base.__name__, (base,), {"_execute": _execute, "__doc__": base.__doc__})


Run = guarded(DoitRun)
Clean = guarded(DoitClean)
Forget = guarded(DoitForget)
Ignore = guarded(DoitIgnore)
ResetDep = guarded(DoitResetDep)
Strace = guarded(DoitStrace)
