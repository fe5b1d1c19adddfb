"""What the pipeline report page shows: each stage's state and reason (from doit's own checks),
its last run, parameters, metrics and env, read from local records only; written after every
doit that ran tasks and by `doit report`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.redact import redact
from mlops_tasks.project import layout
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage
from mlops_tasks.render.report_page import Reproduction, StageView, page
from mlops_tasks.run import record
from mlops_tasks.run.log import read_metrics
from mlops_tasks.tracking.client import run_url

Status = Callable[[str], tuple[str, str]]  # task name -> (doit status, reason in words)


# what decides a stage's state: its venv is built only when it must execute (a restored
# stage has none), so venv:S and kernel:S do not count
CHAIN = ("execute", "log")


def reason_words(reasons: Mapping[str, Any]) -> str:
    """doit's reasons for a stale task, as a sentence. Pure."""
    said: list[str] = []
    for utd, _, _ in reasons.get("uptodate_false") or []:
        said.append(re.sub(r"^<|>$", "", str(utd)))
    for key, words in (("missing_target", "missing"), ("changed_file_dep", "changed"),
                       ("missing_file_dep", "missing input"),
                       ("removed_file_dep", "no longer an input"),
                       ("added_file_dep", "a new input")):
        for item in reasons.get(key) or []:
            said.append(f"{words}: {item}")
    if reasons.get("checker_changed"):
        said.append("the file check changed")
    return "; ".join(said) or "not run since its dependencies changed"


def run_metrics(root: Path, stage: Stage, logged: record.LogRecord | None) -> dict[str, float]:
    """The stage's metrics: its metrics files, and what its last logged run holds, which
    includes the metrics the notebook logged itself (mlflow.log_metric) and wins: the page
    shows that run. A log record without the field (older ones) gives the files alone."""
    kept: dict[str, Any] = getattr(logged, "metrics", None) or {}
    return {**read_metrics(root, stage, strict=False),
            **{str(k): float(v) for k, v in kept.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}}


def stage_view(root: Path, stage: Stage, upstream: tuple[str, ...], status: Status
               ) -> StageView:
    done = record.read_or_none(record.ExecuteRecord, root / layout.execute_record(stage), root)
    logged = record.read_or_none(record.LogRecord, root / layout.log_record(stage), root)
    failed = record.read_or_none(record.FailureRecord, root / layout.failure_record(stage), root)
    state, reason = "up-to-date", ""
    for task in CHAIN:
        code, why = status(f"{task}:{stage.name}")
        if code != "up-to-date":
            state, reason = "stale", f"{task}: {why}"
            break
    if failed is not None and (done is None or failed.end >= done.end):
        where = f"code cell {failed.cell}: " if failed.cell else ""
        state = "failed"
        reason = f"{failed.outcome} at {failed.end}: {where}{failed.cause.splitlines()[0]}"
    elif done is None:
        state, reason = "never-run", "no run yet"
    elif state == "up-to-date" and done.restored_from:
        state = "restored"
    if done is None:
        return StageView(stage.name, state, reason, upstream, parameters=stage.parameters)
    run_id = logged.run_id if logged else done.run_id
    uri = logged.tracking_uri if logged else done.tracking_uri
    url = run_url(uri, done.experiment_id, run_id) if "***" not in uri else None
    notebook = None
    if logged:
        page_file = root / logged.local_copy / f"{stage.name}.html"
        if page_file.is_file():
            notebook = "../" + Path(logged.local_copy).relative_to(layout.STATE).as_posix() \
                + f"/{stage.name}.html"
    freeze = ""
    if logged:
        try:
            freeze = (root / logged.local_copy / layout.FREEZE).read_text(encoding="utf-8")
        except OSError:
            freeze = ""
    drift: list[str] = []
    if logged and logged.env_drift:
        d = logged.env_drift
        drift = ([f"added {k} {v}" for k, v in d.added.items()]
                 + [f"removed {k} {v}" for k, v in d.removed.items()]
                 + [f"{k}: {' -> '.join(v)}" for k, v in d.changed.items()])
    return StageView(
        stage.name, state, reason, upstream, run_id=run_id, run_url=url, run_store=uri,
        reproductions=reproductions_of(root, run_id, done.experiment_id),
        when=done.start, duration_s=done.duration_s,
        commit=f"{done.git.sha[:10]} ({done.git.branch}){' dirty' if done.git.dirty else ''}",
        by=f"{done.host.get('user', '')}@{done.host.get('host', '')}",
        notebook_href=notebook, restored_from=done.restored_from,
        parameters=done.stage_parameters, metrics=run_metrics(root, stage, logged),
        python=done.python.version, freeze=freeze, drift=drift)


def reproductions_of(root: Path, run_id: str, experiment_id: str) -> list[Reproduction]:
    """What `doit reproduce` found for the run, oldest first (its list beside the page), with
    why when it could not reproduce."""
    try:
        known = json.loads((root / layout.reproductions()).read_text(encoding="utf-8"))
        entries = known.get(run_id) or []
    except (OSError, ValueError, AttributeError):
        return []
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        run, uri = entry.get("run"), str(entry.get("tracking_uri") or "")
        url = run_url(uri, experiment_id, run) if run and "***" not in uri else None
        found.append(Reproduction(str(entry.get("when", "")), str(entry.get("verdict", "")),
                                  run, url, str(entry.get("reason") or "")))
    return found


def store_label(root: Path, uri: str) -> str:
    """A tracking URI as a reader knows it: the project's own store by its path. Pure."""
    local = "sqlite:///" + root.as_posix() + "/"
    return f"the local store {uri[len(local):]}" if uri.startswith(local) else uri


def write_report(root: Path, project: Project, status: Status) -> Path:
    stages = [stage_view(root, project.stage(name), project.graph.upstream.get(name, ()),
                         status) for name in project.graph.order]
    stages = [replace(s, run_store=store_label(root, s.run_store)) for s in stages]
    target = root / layout.report_page()
    atomic_write(target, page(project.config.experiment_name(), record.timestamp(),
                              store_label(root, redact(project.config.resolved_tracking_uri())),
                              stages, project.graph.waves()))
    return target


def doit_status(task_list: list[Any], dep_manager: Any) -> Status:
    tasks = {t.name: t for t in task_list}

    def status(name: str) -> tuple[str, str]:
        task = tasks.get(name)
        if task is None:
            return "up-to-date", ""
        found = dep_manager.get_status(task, tasks, get_log=True)
        return found.status, reason_words(found.reasons) if found.status != "up-to-date" else ""

    return status
