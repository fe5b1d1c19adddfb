"""The `log:S` step: record one executed stage in MLflow (params, metrics, tags, artifacts,
through the `tracking` adapter) and keep a local copy under .mlops/runs/<stage>/<run_id>/,
which `doit audit` and the reports read."""

from __future__ import annotations

import json
import posixpath
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError, RecordError, StageError, TrackingError
from mlops_tasks.base.files import write_json
from mlops_tasks.base.redact import redact, redact_data, redacted_copy
from mlops_tasks.env.drift import Drift, freeze_drift
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import content_stat
from mlops_tasks.project.spec import Stage
from mlops_tasks.render.notebook import notebook_html
from mlops_tasks.run import record, stage_cache
from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import kernel_context as kernel_tracking
from mlops_tasks.tracking import tags as tag

Artifacts = list[tuple[Path, str | None]]


def read_metrics(root: Path, stage: Stage, strict: bool = True) -> dict[str, float]:
    """The numbers in the stage's metrics files. `strict` (logging): an unreadable file is a
    StageError and a non-number is named; otherwise (the report) both are passed over."""
    found: dict[str, float] = {}
    for rel in stage.metrics:
        try:
            data = json.loads((root / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            if not strict:
                continue
            raise StageError("log", stage.name, f"metrics file {rel} is not readable JSON: "
                             f"{err}") from None
        if not isinstance(data, dict):
            if not strict:
                continue
            raise StageError("log", stage.name, f"metrics file {rel} must hold a JSON object "
                             "of {name: number}")
        for key, value in data.items():
            bad = metric_name_problem(str(key))
            if bad or not isinstance(value, int | float) or isinstance(value, bool):
                if strict:
                    console.warn(f"skipping metric {key!r} in {rel}: "
                                 + (bad or "not a number"), "log", stage.name)
                continue
            found[str(key)] = float(value)
    return found


METRIC_NAME = re.compile(r"[/\w.\- ]{1,250}")


def metric_name_problem(name: str) -> str | None:
    """Why MLflow would refuse `name` as a metric name on any agent (Windows refuses the
    colon Linux accepts); None when it is fine."""
    if not METRIC_NAME.fullmatch(name):
        return ("an MLflow metric name holds 1 to 250 letters, digits, '_', '-', '.', ' ' "
                "or '/'; rename it in the notebook")
    if posixpath.normpath(name) != name or name.startswith(("/", "..")):
        return "an MLflow metric name must not look like a path with '..', '//' or a leading '/'"
    return None


def previous_freeze(root: Path, stage: Stage) -> str | None:
    """The freeze of the stage's last logged run, from its local copy."""
    try:
        last = record.read(record.LogRecord, root / layout.log_record(stage), root)
        if last is None:
            return None
        return (root / last.local_copy / layout.FREEZE).read_text(encoding="utf-8")
    except (OSError, MlopsError):
        return None


def env_drift(root: Path, stage: Stage, freeze_text: str) -> Drift | None:
    """What changed in the env since the last logged run (None: no earlier run)."""
    previous = previous_freeze(root, stage)
    drift = freeze_drift(previous, freeze_text) if previous is not None else None
    if drift:
        console.say(f"env drift since the last run ({drift.summary()}):", "log", stage.name)
        for line in drift.lines():
            console.say(f"    {line}")
    return drift


def split_outputs(root: Path, stage: Stage, done: record.ExecuteRecord, limit_mb: float
                  ) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Outputs small enough to upload, and those recorded by size and hash only."""
    limit = limit_mb * 1024 * 1024
    uploaded, by_reference = [], {}
    for rel in stage.written:
        stat = content_stat(root / rel)
        if stat is None:
            continue
        size = stat[-2]  # a file's size, or a folder's total
        if size <= limit:
            uploaded.append(rel)
        else:
            by_reference[rel] = {"size": size, "sha256": done.outputs.get(rel)}
            console.say(f"{rel} ({size / 2**20:.1f} MB) is not uploaded, over artifact_max_mb "
                        f"= {limit_mb:g} in [tool.mlops_tasks]; audit.json records its size "
                        "and hash", "log", stage.name)
    return uploaded, by_reference


def audit_json(done: record.ExecuteRecord, drift: Drift | None,
               by_reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """audit.json: the execution record (diff as its own file), drift, outputs left out."""
    data = record.to_json(done)
    data.pop("git_diff")
    data["git"]["diff_file"] = "git.diff" if done.git_diff else None
    data["env_drift"] = None if drift is None else asdict(drift)
    data["outputs_not_uploaded"] = by_reference
    return redact_data(data)


def notebook_page(stage: Stage, done: record.ExecuteRecord, notebook: Path, target: Path
                  ) -> Path:
    """The executed notebook rendered as a self-contained HTML page."""
    git = f"{done.git.sha} ({done.git.branch})" + (" dirty" if done.git.dirty else "")
    target.write_text(notebook_html(
        json.loads(notebook.read_text(encoding="utf-8")), f"{stage.name}: {stage.notebook}",
        {"run": done.run_id, "git": git, "python": done.python.version, "start": done.start,
         "duration": f"{done.duration_s} s"}), encoding="utf-8")
    return target


def local_copy(root: Path, stage: Stage, run: Execution, local: Path,
               freeze_text: str, drift: Drift | None) -> Artifacts:
    """Write the run's files under .mlops/runs/; return them as (file, artifact folder)."""
    done, executed = run.done, run.notebook
    notebook = redacted_copy(executed, local / executed.name)
    freeze = local / layout.FREEZE
    freeze.write_text(freeze_text, encoding="utf-8")
    artifacts: Artifacts = [
        (notebook, "notebook"),
        (notebook_page(stage, done, notebook, local / f"{stage.name}.html"), "notebook"),
        (freeze, "env"),
        (redacted_copy(root / stage.spec_path, local / Path(stage.spec_path).name), "spec"),
    ]
    pins = root / layout.pins_file(stage)
    if pins.is_file():
        artifacts.append((redacted_copy(pins, local / pins.name), "spec"))
    if drift:
        drift_file = local / "env-drift.txt"
        drift_file.write_text("\n".join(drift.lines()) + "\n", encoding="utf-8")
        artifacts.append((drift_file, "env"))
    if done.git_diff:
        diff = local / "git.diff"
        diff.write_text(done.git_diff, encoding="utf-8")
        artifacts.append((diff, None))
    return artifacts


def untracked_files(root: Path, stage: Stage, done: record.ExecuteRecord, limit_mb: float
                    ) -> Artifacts:
    """Files the run depends on that git does not track: kept with the run (a notebook
    never committed is otherwise lost to the audit trail), within the size limit."""
    kept: Artifacts = []
    for rel in done.git.untracked:
        path = root / rel
        stat = content_stat(path)
        if stat is None:
            continue
        if stat[-2] > limit_mb * 2**20:
            console.say(f"untracked {rel} is not uploaded, over artifact_max_mb = {limit_mb:g}",
                        "log", stage.name)
            continue
        kept.append((path, Path("untracked", rel).parent.as_posix()))
    return kept


def logged_tags(stage: Stage, done: record.ExecuteRecord, drift: Drift | None) -> dict[str, str]:
    tags = {
        tag.NOTEBOOK_CODE_SHA256: done.key.code,
        tag.SPEC_SHA256: done.spec_sha256,
        tag.PYTHON_VERSION: done.python.version,
        tag.PYTHON_PATH: done.python.base_interpreter,
        tag.VENV: stage.env_dir,
        tag.FREEZE_SHA256: done.key.freeze,
        tag.HOST: done.host.get("host", ""),
        tag.USER: done.host.get("user", ""),
        tag.ENV_DRIFT: "unknown" if drift is None else str(bool(drift)).lower(),
        **{tag.VERSION_PREFIX + k: v for k, v in done.tools.items()},
    }
    if drift:
        tags[tag.ENV_DRIFT_SUMMARY] = drift.summary()
    if done.venv_changed:
        tags[tag.VENV_CHANGED_IN_RUN] = ", ".join(done.venv_changed)
    if done.restored_from:
        tags[tag.RESTORED_FROM] = done.restored_from
    if done.notebook_runs:
        tags[tag.NOTEBOOK_RUNS] = kernel_tracking.runs_tag([r[0] for r in done.notebook_runs])
    return tags


@dataclass(frozen=True)
class Execution:
    """One execution to log: its record, its executed notebook, where its outputs are (the
    project, or an override run's own folder) and where its logging is recorded."""

    done: record.ExecuteRecord
    notebook: Path
    outputs: Path
    log_record: Path


def find_execution(root: Path, stage: Stage, override: str | None) -> Execution:
    if override is None:
        return Execution(read_execution(root / layout.execute_record(stage), root, stage),
                         root / layout.executed_notebook(stage), root,
                         root / layout.log_record(stage))
    folder = root / layout.override_dir(stage, override)
    return Execution(read_execution(folder / layout.OVERRIDE_RECORD, root, stage),
                     folder / f"{stage.name}.ipynb", folder / layout.OVERRIDE_OUTPUTS,
                     folder / layout.OVERRIDE_LOG)


def read_execution(path: Path, root: Path, stage: Stage) -> record.ExecuteRecord:
    try:
        done = record.read(record.ExecuteRecord, path, root)
    except RecordError as err:
        raise StageError("log", stage.name, f"{err}; run `doit run execute:{stage.name}`"
                         ) from None
    if done is None:
        raise StageError("log", stage.name, f"no execution to record; run `doit run "
                         f"execute:{stage.name}` first")
    return done


def where_to_log(config: Config, stage: Stage, done: record.ExecuteRecord, uri: str,
                 marker: Path) -> str:
    """The run to log into: the one execute:S created; for a run that executed while the
    store could not be reached, the run that publishes it (created once, named in `marker`
    so that a retried log:S logs into the same one); or, when the tracking URI changed
    since (that run is in another store), a new run here with a message; the run left in
    the other store is closed there as superseded when that store can be reached."""
    from mlops_tasks.run.lifecycle import is_local_run

    if is_local_run(done.run_id):
        return publishing_run(config, stage, done, uri, marker)
    if done.tracking_uri == redact(uri):
        return done.run_id
    run_id = recreate(config, stage, done, uri, f"{done.run_id} at {done.tracking_uri}")
    console.say(f"the tracking URI changed since the stage ran: run {done.run_id} is at "
                f"{done.tracking_uri}; recording the execution as run {run_id} at "
                f"{redact(uri)}", "log", stage.name)
    if "***" in done.tracking_uri:
        console.say(f"run {done.run_id} stays RUNNING at {done.tracking_uri} (its credentials "
                    "are not kept); close it there", "log", stage.name)
        return run_id
    try:
        tracking.close_run(done.tracking_uri, done.run_id,
                           {tag.SUPERSEDED: "true", tag.RECREATED_AS: run_id})
    except MlopsError as err:
        console.say(f"run {done.run_id} stays RUNNING at {done.tracking_uri}, which cannot be "
                    f"reached now: {err}", "log", stage.name)
    return run_id


def recreate(config: Config, stage: Stage, done: record.ExecuteRecord, uri: str,
             recreated_from: str) -> str:
    """A run in the store at `uri` for an execution recorded elsewhere, with the tags
    execute:S would have given it."""
    from mlops_tasks.run.lifecycle import creation_tags, experiment

    _, experiment_id = experiment(config)
    git = {"sha": done.git.sha, "branch": done.git.branch, "dirty": done.git.dirty}
    tags = {**creation_tags(stage, git, {"fingerprint": done.env_fingerprint}, done.key),
            tag.INVOCATION_ID: done.invocation_id, tag.RECREATED_FROM: recreated_from}
    return tracking.start_run(uri, experiment_id, done.run_name, tags)


def publishing_run(config: Config, stage: Stage, done: record.ExecuteRecord, uri: str,
                   marker: Path) -> str:
    """The store's run for a local one: the one an earlier attempt created (named in the
    marker), else a new one, named in the marker before anything is logged into it."""
    try:
        known = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if known.get("published_as") and known.get("tracking_uri") == redact(uri):
        return str(known["published_as"])
    run_id = recreate(config, stage, done, uri, f"{done.run_id}, executed while "
                      f"{done.tracking_uri} could not be reached")
    write_json(marker, {"local_run": done.run_id, "tracking_uri": redact(uri),
                        "published_as": run_id})
    console.say(f"publishing run {done.run_id}, recorded while the store could not be "
                f"reached, as run {run_id}", "log", stage.name)
    return run_id


def keep_to_publish(stage: Stage, done: record.ExecuteRecord, run: Execution, marker: Path,
                    why: str) -> None:
    """The store cannot be reached: the run stays in its local copy with a marker, and
    log:S has no record (its target), so the next doit runs it again and publishes."""
    if not marker.is_file():
        write_json(marker, {"local_run": done.run_id, "tracking_uri": done.tracking_uri,
                            "published_as": None})
    run.log_record.unlink(missing_ok=True)
    console.say(f"tracking server {done.tracking_uri} not reachable ({redact(why)}): run "
                f"{done.run_id} is recorded in {marker.parent.name} under "
                f"{layout.runs_dir(stage)}; the next doit publishes it", "log", stage.name)


def cache_tags(config: Config, stage: Stage, done: record.ExecuteRecord, override: str | None,
               by_reference: dict[str, Any], uri: str = "", run_id: str = "") -> dict[str, str]:
    """The tags that offer run `run_id` to the shared stage cache, written after its last
    artifact (signed when the agent has a key); none for an override run, a restored run (it
    names its producer instead), a stage that does not offer, a run whose notebook changed
    its venv, or a run whose outputs were not all uploaded (said once). A key that got an
    entry while this run executed keeps it: this run is marked superseded by that entry, and
    its outputs stay this workspace's."""
    if override or done.restored_from or not stage_cache.offers(config, stage):
        return {}
    if done.venv_changed:
        console.say("not offered to the stage cache: the notebook changed its venv during "
                    "the run, so the stage key does not say what it ran on", "log", stage.name)
        return {}
    if by_reference:
        console.say(f"not offered to the stage cache: {', '.join(by_reference)} "
                    f"{'is' if len(by_reference) == 1 else 'are'} over artifact_max_mb = "
                    f"{config.artifact_max_mb:g} and not uploaded", "log", stage.name)
        return {}
    entry = stage_cache.winner(config, stage, uri, _experiment_of(config, done, run_id),
                               done.key, step=None)
    if entry is not None and entry.run_id != run_id:
        console.say(f"run {entry.run_id} became this stage key's cache entry while this run "
                    "executed; it stays the entry (the oldest wins), this run is marked "
                    "superseded by it", "log", stage.name)
        return {tag.CACHE_SUPERSEDED_BY: entry.run_id}
    outputs = {rel: done.outputs.get(rel) for rel in stage.written}
    return stage_cache.entry_tags(stage_cache.trust(config),
                                  stage_cache.key_for(config, stage, done.key), outputs, run_id)


def _experiment_of(config: Config, done: record.ExecuteRecord, run_id: str) -> str:
    """The experiment of the run being logged (another one when the tracking URI changed)."""
    if run_id == done.run_id:
        return done.experiment_id
    from mlops_tasks.run.lifecycle import experiment

    return experiment(config)[1]


def run_metrics(uri: str, stage: Stage, run: Execution) -> dict[str, float]:
    """The metrics to log: the metrics files'; for a restored run, first every metric of the
    run that executed (those its notebook logged itself included)."""
    copied = tracking.run_metrics(uri, run.done.restored_from) if run.done.restored_from else {}
    return {**copied, **read_metrics(run.outputs, stage)}


def ran_freeze(root: Path, stage: Stage, done: record.ExecuteRecord, uri: str) -> str:
    """The freeze of the env the outputs were made in: the venv's, or for a run restored
    without building one, the freeze its producer logged."""
    path = root / layout.freeze_file(stage)
    if path.is_file() or not done.restored_from:
        return path.read_text("utf-8")
    try:
        got = tracking.download(uri, done.restored_from, f"env/{layout.FREEZE}",
                                root / layout.restore_dir(stage))
        return got.read_text("utf-8")
    except (MlopsError, OSError):
        return (f"# no venv was built here: the outputs were restored from run "
                f"{done.restored_from}, whose freeze is logged with it\n")


def log_stage(config: Config, stage: Stage, override: str | None = None
              ) -> record.LogRecord | None:
    """Record the executed run (or the override run `override`, a run id): MLflow params,
    metrics, tags, artifacts; a local copy. A run that executed while the store could not be
    reached is published now, or, if it still cannot be, kept to publish (None)."""
    from mlops_tasks.run.lifecycle import is_local_run

    root, uri, t0 = config.root, config.resolved_tracking_uri(), time.perf_counter()
    run = find_execution(root, stage, override)
    done = run.done
    local = root / layout.run_copy(stage, done.run_id)
    local.mkdir(parents=True, exist_ok=True)
    freeze_text = redact(ran_freeze(root, stage, done, uri))
    drift = None if done.restored_from else env_drift(root, stage, freeze_text)
    uploaded, by_reference = split_outputs(run.outputs, stage, done, config.artifact_max_mb)
    artifacts = local_copy(root, stage, run, local, freeze_text, drift)
    artifacts += untracked_files(root, stage, done, config.artifact_max_mb)
    write_json(local / layout.AUDIT, audit_json(done, drift, by_reference))
    artifacts.append((local / layout.AUDIT, None))
    artifacts += [(run.outputs / rel, Path("outputs", rel).parent.as_posix())
                  for rel in uploaded]
    params = {**done.stage_parameters, "stage_name": stage.name}
    marker = root / layout.to_publish(stage, done.run_id)
    why = tracking.unreachable(uri, config.experiment_name()) \
        if is_local_run(done.run_id) else None
    if why:
        keep_to_publish(stage, done, run, marker, why)
        return None
    why = tracking.wait_for(uri, config.experiment_name())  # a restart is waited for
    if why:
        raise TrackingError(f"cannot log run {done.run_id} to {redact(uri)}: {redact(why)} "
                            f"(waited {tracking.retry_seconds():g} s); the next doit logs it")
    run_id = where_to_log(config, stage, done, uri, marker)
    metrics = tracking.log_run(uri, run_id, params=redact_data(params),
                     metrics=run_metrics(uri, stage, run),
                     tags=redact_data(logged_tags(stage, done, drift)), artifacts=artifacts,
                     final_tags=cache_tags(config, stage, done, override, by_reference,
                                           uri, run_id))
    logged = record.LogRecord(
        stage=stage.name, run_id=run_id, logged=record.timestamp(),
        tracking_uri=redact(uri), local_copy=local.relative_to(root).as_posix(),
        log_seconds=round(time.perf_counter() - t0, 3),
        env_drift=drift,
        outputs_not_uploaded=by_reference,
        recreated_from=None if run_id == done.run_id else done.run_id, metrics=metrics)
    record.write(run.log_record, logged)
    marker.unlink(missing_ok=True)
    console.step(f"run {run_id} logged in {time.perf_counter() - t0:.1f} s", "log", stage.name)
    url = tracking.run_url(redact(uri), done.experiment_id, run_id)
    if url and run_id == done.run_id:
        console.say(f"view it at {url}", "log", stage.name)
    return logged
