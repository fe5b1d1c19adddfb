"""Errors a user can act on. Anything else escaping the package is a bug."""

from __future__ import annotations


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


class EnvBuildError(MlopsError):
    """A stage venv could not be built."""


class StageFailed(MlopsError):
    """A stage's notebook failed (cell error, kernel death, timeout, missing output)."""


class TrackingError(MlopsError):
    """The MLflow tracking store could not be reached or written."""


class CommandFailed(MlopsError):
    """A subprocess exited non-zero."""

    def __init__(self, argv: list[str], returncode: int, stderr_tail: str):
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        cmd = " ".join(argv)
        super().__init__(f"command failed with exit code {returncode}: {cmd}\n{stderr_tail}")
