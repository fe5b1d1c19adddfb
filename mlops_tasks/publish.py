"""Publish one executed stage: MLflow params, metrics, tags and artifacts, and a local
copy of the record under .mlops/runs/<stage>/<run_id>/."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import audit, layout
from .config import Config
from .errors import StageFailed
from .files import read_json, write_json
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
    audit_file = local / "audit.json"
    audit_record = {k: v for k, v in record.items() if k != "git_diff"}
    audit_record["git"]["diff_file"] = "git.diff" if record.get("git_diff") else None
    write_json(audit_file, audit_record)
    freeze = local / "pip-freeze.txt"
    freeze.write_text(audit.redact((root / layout.freeze_file(stage)).read_text("utf-8")),
                      encoding="utf-8")
    executed = root / layout.executed_notebook(stage)
    shutil.copy2(executed, local / executed.name)
    shutil.copy2(root / stage.spec_path, local / Path(stage.spec_path).name)
    artifacts: list[tuple[Path, str | None]] = [
        (local / executed.name, "notebook"),
        (freeze, "env"),
        (local / Path(stage.spec_path).name, "spec"),
        (audit_file, None),
    ]
    if record.get("git_diff"):
        diff = local / "git.diff"
        diff.write_text(record["git_diff"], encoding="utf-8")
        artifacts.append((diff, None))
    limit = config.artifact_max_mb * 1024 * 1024
    for rel in (*stage.outputs, *stage.metrics):
        path = root / rel
        if path.is_file() and path.stat().st_size <= limit:
            parent = str(Path("outputs", rel).parent.as_posix())
            artifacts.append((path, parent))
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
        **{f"mlops.version.{k}": v for k, v in record["tools"].items()},
    }
    tracking.log_run(uri, run_id, params=params, metrics=_metrics(root, stage), tags=tags,
                     artifacts=artifacts)
    write_json(root / layout.log_record(stage), {
        "run_id": run_id, "logged": now(), "tracking_uri": audit.redact(uri),
        "local_copy": local.relative_to(root).as_posix(),
    })
    print(f"log:{stage.name}: run {run_id} logged in {time.perf_counter() - t0:.1f} s",
          flush=True)
