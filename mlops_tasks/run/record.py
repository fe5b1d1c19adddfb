"""The run records: one typed, versioned record per execution, per logging and per failure
or interruption. This module owns their shape; every reader (up-to-date checks, log:S,
`doit audit`, reports) reads them through it.

A record is JSON with `schema` and `kind` first. A record of another schema version is
refused with a message that says which version wrote it and what to do."""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from mlops_tasks.base.errors import RecordError
from mlops_tasks.base.files import write_json
from mlops_tasks.env.drift import Drift

SCHEMA_VERSION = 1

_invocation: list[str] = []
_invocation_lock = threading.Lock()


def invocation_id() -> str:
    """One id per doit invocation, shared by the runs of every stage it executes
    (MLOPS_INVOCATION_ID chooses it, e.g. Jenkins' BUILD_TAG)."""
    with _invocation_lock:
        if not _invocation:
            _invocation.append(os.environ.get("MLOPS_INVOCATION_ID") or uuid.uuid4().hex[:12])
        return _invocation[0]


def timestamp() -> str:
    """Now, in UTC, as ISO 8601 to the second: the time format of every record."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StageKey:
    """The stage key and the digests it is made of (see fingerprint.stage_key)."""

    key: str
    freeze: str  # the venv's freeze that ran ("" where no venv was built: a restore)
    code: str
    parameters: str
    inputs: str
    env: str = ""  # the environment as pinned or asked (its plan fingerprint); in the key


@dataclass(frozen=True)
class GitState:
    sha: str
    branch: str
    dirty: bool
    untracked: list[str] = field(default_factory=list)  # files the run depends on, unversioned


@dataclass(frozen=True)
class PythonEnv:
    version: str
    implementation: str
    base_interpreter: str
    venv: str
    venv_python: str


@dataclass(frozen=True)
class ExecuteRecord:
    """One finished execution of a stage: everything an auditor needs (becomes audit.json)."""

    KIND = "execute"

    stage: str
    run_id: str
    run_name: str
    experiment_id: str
    tracking_uri: str  # redacted
    invocation_id: str
    start: str
    end: str
    duration_s: float
    key: StageKey
    parameters: dict[str, Any]  # as injected, context included
    stage_parameters: dict[str, Any]  # the spec's, with overrides applied
    overrides: dict[str, Any]
    notebook: str
    spec: str
    spec_sha256: str
    git: GitState
    python: PythonEnv
    env_fingerprint: str
    inputs: dict[str, str | None]
    outputs: dict[str, str | None]
    outputs_stat: dict[str, list[int]]
    executed_notebook_sha256: str
    host: dict[str, str]
    tools: dict[str, str]
    git_diff: str = ""  # kept out of audit.json, which names the git.diff artifact instead
    inputs_stat: dict[str, list[int]] = field(default_factory=dict)  # when they were hashed
    # runs the notebook created itself: [run id, experiment id] (see tracking/kernel_hook.py)
    notebook_runs: list[list[str]] = field(default_factory=list)
    restored_from: str | None = None  # a stage-cache hit: the run whose outputs these are
    env: dict[str, str] = field(default_factory=dict)  # the spec's variables, secrets hidden
    venv_changed: list[str] = field(default_factory=list)  # what the notebook installed


@dataclass(frozen=True)
class LogRecord:
    """One execution recorded in MLflow, with its local copy under .mlops/runs/."""

    KIND = "log"

    stage: str
    run_id: str
    logged: str
    tracking_uri: str  # redacted
    local_copy: str
    log_seconds: float
    env_drift: Drift | None  # since the previous logged run; None: no earlier run to compare with
    outputs_not_uploaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    recreated_from: str | None = None  # the run execute:S made, when logged into a new one
    # every metric of the run: its metrics files' and what the notebook logged itself
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FailureRecord:
    """A stage execution that failed or was interrupted, so reports have something to read."""

    KIND = "failure"

    stage: str
    task: str
    outcome: str  # "failed" or "interrupted"
    cause: str
    cell: int | None  # code cell number in the source notebook, as `doit info` counts
    notebook: str | None  # the executed notebook kept with the error
    run_id: str | None
    invocation_id: str
    start: str
    end: str
    key: StageKey | None


@dataclass(frozen=True)
class RunningRecord:
    """A stage run that was created and not yet closed."""

    KIND = "running"

    stage: str
    run_id: str
    tracking_uri: str  # redacted
    invocation_id: str
    start: str
    key: StageKey


R = TypeVar("R", ExecuteRecord, LogRecord, FailureRecord, RunningRecord)


AnyRecord = ExecuteRecord | LogRecord | FailureRecord | RunningRecord


def to_json(record: AnyRecord) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "kind": record.KIND, **asdict(record)}


def write(path: Path, record: AnyRecord) -> None:
    write_json(path, to_json(record))


def _build(cls: Any, data: Any) -> Any:
    """A dataclass from a JSON mapping, nested records included; unknown keys are ignored."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__} must be a JSON object")
    values: dict[str, Any] = {}
    names = _FIELDS.get(cls) or _FIELDS.setdefault(cls, tuple(f.name for f in fields(cls)))
    nested = _NESTED.get(cls.__name__, {})
    for name in names:
        if name not in data:
            continue
        value = data[name]
        kind = nested.get(name)
        if kind is not None and value is not None:
            value = _build(kind, value)
        values[name] = value
    return cls(**values)


_FIELDS: dict[Any, tuple[str, ...]] = {}  # a record type's field names, looked up once
# The fields holding a nested record, per record type.
_NESTED: dict[str, dict[str, type]] = {
    "ExecuteRecord": {"key": StageKey, "git": GitState, "python": PythonEnv},
    "LogRecord": {"env_drift": Drift},
    "FailureRecord": {"key": StageKey},
    "RunningRecord": {"key": StageKey},
}


def from_json(cls: type[R], data: Any, where: str) -> R:
    """Check the schema and kind, then build the record; RecordError when it cannot be."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: not a run record (expected a JSON object)")
    version = data.get("schema")
    if version != SCHEMA_VERSION:
        older = version is None or (isinstance(version, int) and version < SCHEMA_VERSION)
        written = "an older" if older else "a newer"
        fix = ("the stage runs again to replace it (or `doit forget` the stage)" if older else
               "upgrade mlops-tasks to the version that wrote it")
        raise RecordError(f"{where}: run record of schema {version or 0}, written by {written} "
                          f"mlops-tasks; this version reads schema {SCHEMA_VERSION}: {fix}")
    if data.get("kind") != cls.KIND:
        raise RecordError(f"{where}: a record of kind {data.get('kind')!r}, expected {cls.KIND!r}")
    try:
        return _build(cls, data)
    except TypeError as err:
        raise RecordError(f"{where}: incomplete run record ({err}); the stage runs again "
                          "to replace it") from None


def read(cls: type[R], path: Path, root: Path | None = None) -> R | None:
    """The record at path; None when there is none. RecordError when it is unusable."""
    where = path.relative_to(root).as_posix() if root else path.as_posix()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise RecordError(f"{where}: cannot be read: {err}") from None
    try:
        data = json.loads(text)
    except ValueError as err:
        raise RecordError(f"{where}: not valid JSON ({err}); the stage runs again to "
                          "replace it") from None
    return from_json(cls, data, where)


def read_or_none(cls: type[R], path: Path, root: Path | None = None) -> R | None:
    """The record at path; None when there is none or it is unusable (readers that only
    show or compare: the checks then say the stage runs, the report leaves it out)."""
    try:
        return read(cls, path, root)
    except RecordError:
        return None
