"""A stage run's life in MLflow: the pinned experiment, a run created with its tags (or a local
id while the store cannot be reached), and runs closed that a superseded execution or a
killed doit left open."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError, TrackingError
from mlops_tasks.base.redact import redact
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.spec import Stage
from mlops_tasks.run import record
from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import tags as tag


def experiment(config: Config) -> tuple[str, str]:
    """The tracking URI and the experiment's id (store and experiment made on first use),
    checked against the id this project pinned and against the store (artifact location)."""
    uri = config.resolved_tracking_uri()
    local = uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
    own = config.root / layout.mlflow_db()
    if uri.startswith("sqlite:") and "'" in uri and '"' in uri:
        # MLflow's first migration writes the folder into an SQL string and breaks on it
        raise TrackingError(f"the MLflow store {redact(uri)} cannot be created or opened: its "
                            "path holds both ' and \" (MLflow's sqlite store breaks on that); "
                            "rename a folder of the path, or set tracking_uri in "
                            "[tool.mlops_tasks] (or MLFLOW_TRACKING_URI) to a store elsewhere")
    exp_id = tracking.ensure_experiment(
        uri, config.experiment_name(),
        config.root / layout.mlflow_artifacts() if local else None,
        config.root / layout.mutex_file("tracking", "store"),
        own if uri == "sqlite:///" + own.as_posix() else None,
        config.root / layout.experiment_pins(), layout.experiment_pins(),
    )
    return uri, exp_id


LOCAL_RUN = "local-"  # a run id made here while the store could not be reached


def local_run_id() -> str:
    import uuid

    return LOCAL_RUN + uuid.uuid4().hex


def is_local_run(run_id: str) -> bool:
    """A run that exists only in this project's records until log:S publishes it. Pure."""
    return run_id.startswith(LOCAL_RUN)


def offline_text(uri: str, why: str) -> str:
    return (f"tracking server {redact(uri)} not reachable ({redact(why)}): executing without "
            "the stage cache; the run is recorded locally and published by the next doit")


def store_or_offline(config: Config) -> tuple[str, str, str | None]:
    """The tracking URI, the experiment's id and, when the store does not answer its first
    contact (one probe of at most tracking.PROBE_SECONDS), why: the stage then runs without
    it, under the experiment id this project pinned ("" when none is)."""
    uri = config.resolved_tracking_uri()
    why = tracking.unreachable(uri, config.experiment_name())
    if why is None:
        return (*experiment(config), None)
    pinned = tracking.pinned_experiment(config.root / layout.experiment_pins(), uri,
                                        config.experiment_name())
    return uri, pinned or "", why


def close_unlogged_run(root: Path, stage: Stage, uri: str) -> None:
    """A run executed but never logged (its execution is about to be replaced) would stay
    RUNNING in MLflow forever: end it as KILLED, tagged as superseded."""
    try:
        previous = record.read(record.ExecuteRecord, root / layout.execute_record(stage), root)
        logged = record.read(record.LogRecord, root / layout.log_record(stage), root)
    except MlopsError:
        return
    if previous is None or (logged is not None and logged.run_id == previous.run_id):
        return
    if is_local_run(previous.run_id):  # never created in the store: nothing to close
        return
    if previous.tracking_uri != redact(uri):
        return
    try:
        tracking.close_run(uri, previous.run_id, {tag.SUPERSEDED: "true"})
    except MlopsError as err:
        console.say(f"could not close the unlogged run {previous.run_id}: {err}",
                    "execute", stage.name)


def close_killed_runs(config: Config) -> None:
    """Runs whose doit was killed (SIGKILL, power loss) stay RUNNING in MLflow: the next doit,
    holding the workspace, closes each as KILLED and records the interruption."""
    root, uri = config.root, config.resolved_tracking_uri()
    for path in sorted(root.glob(layout.running_records())):
        try:
            left = record.read(record.RunningRecord, path, root)
        except MlopsError:
            path.unlink(missing_ok=True)
            continue
        if left is None:
            continue
        if left.tracking_uri != redact(uri):
            console.notice(f"run {left.run_id} of stage '{left.stage}' was left RUNNING at "
                           f"{left.tracking_uri}, not the current store; close it there")
            path.unlink(missing_ok=True)
            continue
        try:
            if not is_local_run(left.run_id):
                tracking.close_run(uri, left.run_id, {tag.INTERRUPTED: "true"})
        except MlopsError as err:
            console.notice(f"could not close run {left.run_id} of stage '{left.stage}' "
                           f"left RUNNING by a killed doit: {err}")
            continue
        record.write(root / layout.failure_record(left.stage),
                     record.FailureRecord(
                         stage=left.stage, task="execute", outcome="interrupted",
                         cause="doit was killed during the run", cell=None, notebook=None,
                         run_id=left.run_id, invocation_id=left.invocation_id,
                         start=left.start, end=record.timestamp(), key=left.key))
        path.unlink()
        console.notice(f"closed run {left.run_id} of stage '{left.stage}' as KILLED: the doit "
                       "running it was killed")


def creation_tags(stage: Stage, git: Mapping[str, Any], marker: Mapping[str, Any],
             key: record.StageKey, override: bool = False,
             restored_from: str | None = None, project_run: str | None = None,
             profile: str = "") -> dict[str, str]:
    """Tags set when the run is created, so a run can be found by its stage key."""
    tags = {
        tag.STAGE: stage.name,
        tag.GIT_SHA: git["sha"],
        tag.GIT_BRANCH: git["branch"],
        tag.GIT_DIRTY: str(git["dirty"]).lower(),
        tag.ENV_FINGERPRINT: str(marker.get("fingerprint", "")),
        tag.INVOCATION_ID: record.invocation_id(),
        tag.STAGE_KEY: key.key,
        tag.KEY_FREEZE: key.freeze,
        tag.KEY_CODE: key.code,
        tag.KEY_PARAMETERS: key.parameters,
        tag.KEY_INPUTS: key.inputs,
        "mlflow.source.name": stage.notebook,
        "mlflow.source.type": "NOTEBOOK",
    }
    if override:
        tags[tag.OVERRIDE] = "true"
    if restored_from:
        tags[tag.RESTORED_FROM] = restored_from
    if profile:
        tags[tag.PROFILE] = profile
    if project_run:  # started by `mlflow run` (MLflow Projects): a child of its run
        tags[tag.PROJECT_RUN_ID] = project_run
        tags["mlflow.parentRunId"] = project_run
    return tags
