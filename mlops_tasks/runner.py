"""Execute one stage: its MLflow run, parameters, the notebook on its kernel, and outputs
that are replaced only when the stage succeeds."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from . import audit, layout
from .config import Config
from .envs import read_marker
from .errors import MlopsError, StageFailed
from .files import read_json, write_json
from .fingerprint import parameters_digest, sha256_file, spec_hash
from .notebooks import code_digest, declared_parameters, notebook_code, read_notebook
from .spec import Stage

# One id per doit invocation, shared by the runs of every stage it executes (set
# MLOPS_INVOCATION_ID, e.g. to Jenkins' BUILD_TAG, to choose it).
INVOCATION_ID = os.environ.get("MLOPS_INVOCATION_ID") or uuid.uuid4().hex[:12]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_overrides(stage: Stage, items: list[str]) -> dict[str, Any]:
    """`--param=name=value` pairs; values are read as YAML (200 -> int, [1, 2] -> list)."""
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("-"):
            raise MlopsError(f"execute:{stage.name}: write --param=name=value with '=' after "
                             "--param (doit takes a separate name=value as a doit variable)")
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise MlopsError(f"execute:{stage.name}: --param={item} must look like "
                             "--param=name=value, e.g. --param=n_estimators=200")
        try:
            out[name] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[name] = text
    return out


def warn_undeclared(stage: Stage, root: Path, parameters: Mapping[str, Any]) -> None:
    declared = declared_parameters(read_notebook(root / stage.notebook))
    if declared is None:
        if parameters:
            print(f"execute:{stage.name}: warning: {stage.notebook} has no cell tagged "
                  "'parameters'; papermill injects the values at the top", flush=True)
        return
    for name in parameters:
        if name not in declared:
            print(f"execute:{stage.name}: warning: parameter '{name}' is not declared in the "
                  f"parameters cell of {stage.notebook}; it is injected anyway", flush=True)


class OutputSet:
    """Declared outputs move aside before a run and come back if it fails, so a failed or
    interrupted run never leaves half-written outputs that look finished. A manifest,
    written before anything moves, says which outputs existed, so recovery after a kill
    restores those and removes only files that did not exist before."""

    def __init__(self, root: Path, stage: Stage):
        self.root = root
        self.stage = stage
        self.paths = [*stage.outputs, *stage.metrics]
        self.backup = root / layout.STATE / "previous" / stage.name
        self.manifest = self.backup / "manifest.json"

    def begin(self) -> None:
        if self.backup.exists():  # an earlier run was killed: put its outputs back first
            self.rollback()
        existed = [rel for rel in self.paths if (self.root / rel).exists()]
        write_json(self.manifest, {"existed": existed})
        try:
            for rel in self.paths:
                target = self.root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if rel in existed:
                    saved = self.backup / "files" / rel
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(target, saved)
        except OSError as err:
            self.rollback()
            raise StageFailed(f"execute:{self.stage.name}: cannot move the previous outputs "
                              f"aside ({err}); is a program holding them open?") from None

    def rollback(self) -> None:
        try:
            existed = set(read_json(self.manifest)["existed"])
        except (OSError, ValueError, KeyError):
            existed = None  # no manifest: nothing was moved
        if existed is not None:
            for rel in self.paths:
                target, saved = self.root / rel, self.backup / "files" / rel
                if saved.exists():
                    os.replace(saved, target)
                elif rel not in existed and target.exists():
                    target.unlink()  # written by the failed run
        shutil.rmtree(self.backup, ignore_errors=True)

    def commit(self) -> None:
        shutil.rmtree(self.backup, ignore_errors=True)

    def stats(self) -> dict[str, list[int]]:
        out = {}
        for rel in self.paths:
            st = (self.root / rel).stat()
            out[rel] = [st.st_size, st.st_mtime_ns]
        return out


def _experiment(config: Config) -> tuple[str, str]:
    from . import tracking

    uri = config.resolved_tracking_uri()
    local = uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri
    exp_id = tracking.ensure_experiment(
        uri, config.experiment_name(),
        config.state_dir / "mlartifacts" if local else None,
        config.root / layout.lock_file("tracking", "store"),
    )
    return uri, exp_id


def run_record(root: Path, stage: Stage, git: Mapping[str, Any], marker: Mapping[str, Any],
               outputs: OutputSet, run: Mapping[str, Any], parameters: Mapping[str, Any],
               stage_parameters: Mapping[str, Any],
               overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Everything an auditor needs about one finished execution (becomes audit.json)."""
    return {
        "stage": stage.name,
        **run,
        "invocation_id": INVOCATION_ID,
        "parameters": dict(parameters),
        "stage_parameters": dict(stage_parameters),
        "overrides": dict(overrides),
        "parameters_sha256": parameters_digest(stage_parameters),
        "notebook": stage.notebook,
        "notebook_code_sha256": code_digest(notebook_code(read_notebook(root / stage.notebook))),
        "spec": stage.spec_path,
        "spec_sha256": spec_hash(stage),
        "git": {k: v for k, v in git.items() if k != "diff"},
        "git_diff": git["diff"],
        "python": {
            "version": marker.get("python_version"),
            "implementation": marker.get("implementation"),
            "base_interpreter": marker.get("base_python"),
            "venv": stage.env_dir,
            "venv_python": layout.venv_python(stage.env_dir),
        },
        "env_fingerprint": marker.get("fingerprint"),
        "freeze_sha256": sha256_file(root / layout.freeze_file(stage)),
        "inputs": audit.file_hashes(root, stage.inputs),
        "outputs": audit.file_hashes(root, stage.outputs + stage.metrics),
        "outputs_stat": outputs.stats(),
        "executed_notebook_sha256": sha256_file(root / layout.executed_notebook(stage)),
        "host": audit.host_info(),
        "tools": audit.tool_versions(),
    }


def close_unlogged_run(root: Path, stage: Stage, uri: str) -> None:
    """A run executed but never logged (its execution is about to be replaced) would stay
    RUNNING in MLflow forever: end it as KILLED, tagged as superseded."""
    from . import tracking

    try:
        previous = read_json(root / layout.execute_record(stage))
    except (OSError, ValueError):
        return
    try:
        logged = read_json(root / layout.log_record(stage)).get("run_id")
    except (OSError, ValueError):
        logged = None
    run_id = previous.get("run_id")
    if not run_id or run_id == logged or previous.get("tracking_uri") != audit.redact(uri):
        return
    try:
        tracking.log_run(uri, run_id, params={}, metrics={},
                         tags={"mlops.superseded": "true"}, artifacts=[], status="KILLED")
    except MlopsError as err:
        print(f"execute:{stage.name}: could not close the unlogged run {run_id}: {err}",
              flush=True)


def execute_stage(config: Config, stage: Stage, overrides: Mapping[str, Any]) -> None:
    """Run the notebook in its own MLflow run; outputs are replaced only on success."""
    from . import tracking
    from .execute import run_notebook

    root = config.root
    marker = read_marker(root / stage.env_dir) or {}
    git = audit.git_info(root)
    uri, exp_id = _experiment(config)
    tags = {
        "mlops.stage": stage.name,
        "mlops.git_sha": git["sha"],
        "mlops.git_branch": git["branch"],
        "mlops.git_dirty": str(git["dirty"]).lower(),
        "mlops.env_fingerprint": str(marker.get("fingerprint", "")),
        "mlops.invocation_id": INVOCATION_ID,
        "mlflow.source.name": stage.notebook,
        "mlflow.source.type": "NOTEBOOK",
    }
    run_name = f"{stage.name}@{git['sha'][:7]}"
    close_unlogged_run(root, stage, uri)
    run_id = tracking.start_run(uri, exp_id, run_name, tags)
    print(f"execute:{stage.name}: MLflow run {run_id} ({run_name}), invocation "
          f"{INVOCATION_ID}", flush=True)

    executed = root / layout.executed_notebook(stage)
    partial = executed.with_name(f"{stage.name}.partial.ipynb")
    failed = root / layout.failed_notebook(stage)
    executed.parent.mkdir(parents=True, exist_ok=True)
    outputs = OutputSet(root, stage)
    stage_parameters = {**stage.parameters, **overrides}
    if overrides:
        print(f"execute:{stage.name}: overriding parameters for this run: "
              + audit.redact(", ".join(f"{k}={v!r}" for k, v in overrides.items())), flush=True)
    parameters = {
        **stage_parameters,
        "stage_name": stage.name,
        "git_commit": git["sha"],
        "mlflow_tracking_uri": audit.redact(uri),
        "mlflow_run_id": run_id,
    }
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id,
           "MLFLOW_EXPERIMENT_ID": exp_id, "MLOPS_STAGE": stage.name}
    if audit.redact(uri) != uri:  # keep the URI's credentials out of notebook outputs
        env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    started, t0 = now(), time.perf_counter()
    try:
        warn_undeclared(stage, root, stage_parameters)
        outputs.begin()
        run_notebook(
            stage=stage.name,
            notebook=root / stage.notebook,
            output=partial,
            failed=failed,
            kernel_name=stage.kernel_name,
            kernel_dir=root / layout.kernels_dir(),
            parameters=parameters,
            cwd=root,
            env=env,
            timeout=stage.timeout,
        )
        missing = [p for p in (*stage.outputs, *stage.metrics) if not (root / p).is_file()]
        if missing:
            raise StageFailed(f"execute:{stage.name}: the notebook finished but did not write "
                              f"the declared output(s) {', '.join(missing)}; write them in "
                              f"{stage.notebook} or remove them from {stage.spec_path}")
    except BaseException:
        outputs.rollback()
        if partial.exists():
            os.replace(partial, failed)
        try:
            artifacts = [(audit.redacted_copy(failed, root / layout.runs_dir(stage) / run_id
                                              / failed.name), "notebook")
                         ] if failed.exists() else []
            tracking.log_run(uri, run_id, params={}, metrics={}, tags={"mlops.failed": "true"},
                             artifacts=artifacts, status="FAILED")
        except MlopsError as err:
            print(f"execute:{stage.name}: could not mark the run failed: {err}", flush=True)
        raise
    outputs.commit()
    os.replace(partial, executed)
    if failed.exists():
        failed.unlink()
    record = run_record(
        root, stage, git, marker, outputs,
        run={"run_id": run_id, "run_name": run_name, "experiment_id": exp_id,
             "tracking_uri": audit.redact(uri), "start": started, "end": now(),
             "duration_s": round(time.perf_counter() - t0, 3)},
        parameters=parameters, stage_parameters=stage_parameters, overrides=overrides,
    )
    write_json(root / layout.execute_record(stage), record)
    print(f"execute:{stage.name}: done in {record['duration_s']:.1f} s", flush=True)


