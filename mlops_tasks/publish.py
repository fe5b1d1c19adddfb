"""Publish one executed stage: MLflow params, metrics, tags and artifacts, and a local
copy of the record under .mlops/runs/<stage>/<run_id>/."""

from __future__ import annotations

import json
import time
from pathlib import Path

from . import audit, layout
from .config import Config
from .drift import freeze_drift
from .errors import StageFailed
from .files import read_json, write_json
from .render import notebook_html
from .runner import now
from .spec import Stage


def _metrics(root: Path, stage: Stage) -> dict[str, float]:
    found: dict[str, float] = {}
    for rel in stage.metrics:
        try:
            data = json.loads((root / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise StageFailed(f"log:{stage.name}: metrics file {rel} is not readable JSON: "
                              f"{err}") from None
        if not isinstance(data, dict):
            raise StageFailed(f"log:{stage.name}: metrics file {rel} must hold a JSON object "
                              "of {name: number}")
        for key, value in data.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found[str(key)] = float(value)
            else:
                print(f"log:{stage.name}: skipping non-numeric metric {key!r} in {rel}")
    return found


def _previous_freeze(root: Path, stage: Stage) -> str | None:
    """The freeze of the stage's last logged run, from its local copy."""
    try:
        last = read_json(root / layout.log_record(stage))
        return (root / last["local_copy"] / "pip-freeze.txt").read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError):
        return None


def log_stage(config: Config, stage: Stage) -> None:
    """Record the executed run: MLflow params, metrics, tags, artifacts; a local copy."""
    from . import tracking

    root = config.root
    record = read_json(root / layout.execute_record(stage))
    run_id = record["run_id"]
    uri = config.resolved_tracking_uri()
    t0 = time.perf_counter()
    local = root / layout.runs_dir(stage) / run_id
    local.mkdir(parents=True, exist_ok=True)

    freeze_text = audit.redact((root / layout.freeze_file(stage)).read_text("utf-8"))
    previous = _previous_freeze(root, stage)
    drift = freeze_drift(previous, freeze_text) if previous is not None else None
    if drift:
        print(f"log:{stage.name}: env drift since the last run ({drift.summary()}):", flush=True)
        for line in drift.lines():
            print(f"    {line}", flush=True)

    limit = config.artifact_max_mb * 1024 * 1024
    uploaded, by_reference = [], {}
    for rel in (*stage.outputs, *stage.metrics):
        path = root / rel
        if not path.is_file():
            continue
        size = path.stat().st_size
        if size <= limit:
            uploaded.append(rel)
        else:
            by_reference[rel] = {"size": size, "sha256": record["outputs"].get(rel)}

    audit_record = {k: v for k, v in record.items() if k != "git_diff"}
    audit_record["git"]["diff_file"] = "git.diff" if record.get("git_diff") else None
    audit_record["env_drift"] = None if drift is None else {
        "added": drift.added, "removed": drift.removed,
        "changed": {k: list(v) for k, v in drift.changed.items()}}
    audit_record["outputs_not_uploaded"] = by_reference
    audit_file = local / "audit.json"
    write_json(audit_file, audit.redact_data(audit_record))

    freeze = local / "pip-freeze.txt"
    freeze.write_text(freeze_text, encoding="utf-8")
    executed = root / layout.executed_notebook(stage)
    audit.redacted_copy(executed, local / executed.name)
    html_file = local / f"{stage.name}.html"
    html_file.write_text(notebook_html(
        json.loads((local / executed.name).read_text(encoding="utf-8")),
        f"{stage.name}: {stage.notebook}",
        {"run": run_id, "git": f"{record['git']['sha']} ({record['git']['branch']})"
         + (" dirty" if record["git"]["dirty"] else ""),
         "python": str(record["python"]["version"]), "start": record["start"],
         "duration": f"{record['duration_s']} s"}), encoding="utf-8")
    spec_copy = audit.redacted_copy(root / stage.spec_path, local / Path(stage.spec_path).name)
    artifacts: list[tuple[Path, str | None]] = [
        (local / executed.name, "notebook"),
        (html_file, "notebook"),
        (freeze, "env"),
        (spec_copy, "spec"),
        (audit_file, None),
    ]
    lock = root / layout.lock_path(stage)
    if lock.is_file():
        artifacts.append((audit.redacted_copy(lock, local / lock.name), "spec"))
    if drift:
        drift_file = local / "env-drift.txt"
        drift_file.write_text("\n".join(drift.lines()) + "\n", encoding="utf-8")
        artifacts.append((drift_file, "env"))
    if record.get("git_diff"):
        diff = local / "git.diff"
        diff.write_text(record["git_diff"], encoding="utf-8")
        artifacts.append((diff, None))
    artifacts += [(root / rel, Path("outputs", rel).parent.as_posix()) for rel in uploaded]

    params = dict(record.get("stage_parameters", stage.parameters))
    params["stage_name"] = stage.name
    tags = {
        "mlops.notebook_code_sha256": record["notebook_code_sha256"],
        "mlops.spec_sha256": record["spec_sha256"],
        "mlops.python_version": str(record["python"]["version"]),
        "mlops.python_path": str(record["python"]["base_interpreter"]),
        "mlops.venv": stage.env_dir,
        "mlops.freeze_sha256": record["freeze_sha256"],
        "mlops.host": record["host"]["host"],
        "mlops.user": record["host"]["user"],
        "mlops.env_drift": "unknown" if drift is None else str(bool(drift)).lower(),
        **{f"mlops.version.{k}": v for k, v in record["tools"].items()},
    }
    if drift:
        tags["mlops.env_drift_summary"] = drift.summary()
    tracking.log_run(uri, run_id, params=audit.redact_data(params),
                     metrics=_metrics(root, stage), tags=audit.redact_data(tags),
                     artifacts=artifacts)
    write_json(root / layout.log_record(stage), {
        "run_id": run_id, "logged": now(), "tracking_uri": audit.redact(uri),
        "local_copy": local.relative_to(root).as_posix(),
        "log_seconds": round(time.perf_counter() - t0, 3),
    })
    print(f"log:{stage.name}: run {run_id} logged in {time.perf_counter() - t0:.1f} s",
          flush=True)
    if uri.startswith(("http://", "https://")):
        print(f"log:{stage.name}: view it at {audit.redact(uri).rstrip('/')}/#/experiments/"
              f"{record['experiment_id']}/runs/{run_id}", flush=True)
