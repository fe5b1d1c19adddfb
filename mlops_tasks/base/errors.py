"""Errors a user can act on. Anything else escaping the package is a bug."""

from __future__ import annotations


def task_label(task: str, stage: str | None) -> str:
    """The `task:stage` name doit shows for a stage's task (`execute:train`)."""
    return f"{task}:{stage}" if stage else task


class MlopsError(Exception):
    """Base of every user-facing error: the message says what, where and the fix."""


class SpecError(MlopsError):
    """A stage spec is invalid; carries the file, line and key."""

    def __init__(self, path: str, message: str, *, line: int | None = None, key: str | None = None):
        self.path = path
        self.line = line
        self.key = key
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}")


class ConfigError(MlopsError):
    """The [tool.mlops_tasks] table is invalid."""


class InterpreterNotFound(MlopsError):
    """No local interpreter satisfies a stage's python request."""


class StageError(MlopsError):
    """Something went wrong in one task of one stage; the message starts `task:stage:`."""

    def __init__(self, task: str, stage: str, cause: str):
        self.task = task
        self.stage = stage
        self.cause = cause
        super().__init__(f"{task_label(task, stage)}: {cause}")


class EnvBuildError(StageError):
    """A stage venv could not be built."""

    def __init__(self, stage: str, cause: str):
        super().__init__("venv", stage, cause)


class StageFailed(StageError):
    """A stage's notebook failed (cell error, kernel death, timeout, missing output).

    `cell` is the failing code cell's number in the source notebook (1-based, counting code
    cells, as `doit info` does); `notebook` the executed notebook kept with the error."""

    def __init__(self, stage: str, cause: str, *, task: str = "execute", cell: int | None = None,
                 notebook: str | None = None):
        self.cell = cell
        self.notebook = notebook
        super().__init__(task, stage, cause)


class TrackingError(MlopsError):
    """The MLflow tracking store could not be reached or written."""


class RecordError(MlopsError):
    """A run record is unreadable or of another schema version."""


class CommandFailed(MlopsError):
    """A subprocess exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str):
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        cmd = " ".join(argv)
        super().__init__(f"command failed with exit code {returncode}: {cmd}\n{stderr_tail}")


class NoSpaceLeft(MlopsError):
    """A write failed because the file system holding `path` is full."""

    def __init__(self, path: str, what: str):
        self.path = path
        self.device = NoSpaceLeft.mount_of(path)
        super().__init__(f"no space left on {self.device} (the file system holding {path}): "
                         f"{what}; free space there and run doit again")

    @staticmethod
    def mount_of(path: str) -> str:
        """The mount point holding `path` (the folder a user frees space on)."""
        import os

        folder = os.path.realpath(path)  # a symlinked folder lives on its target's disk
        while not os.path.ismount(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        return folder


class StateDBError(MlopsError):
    """The doit dependency DB could not be read or written for a reason other than
    corruption (an I/O error, permissions): it is left as it is, never moved aside."""

    def __init__(self, path: str, what: str, cause: str):
        self.path = path
        super().__init__(f"the dependency DB {path} {what} ({cause}); it is not corrupted, so "
                         "it was left as it is: check that its folder is writable and its disk "
                         "healthy (the system log names I/O errors), then run doit again")
