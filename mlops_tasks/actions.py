"""What doit runs for each task. Heavy imports (papermill, mlflow) happen inside actions,
never at load time, so `doit list` stays fast."""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from doit.exceptions import TaskFailed

from . import audit, layout
from .config import Config
from .envs import build_env, env_problem, plan_env, read_marker
from .errors import MlopsError, StageFailed
from .files import read_json, write_json
from .fingerprint import notebook_code_hash, parameters_digest, sha256_file, spec_hash
from .interpreters import Resolver
from .spec import Stage


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """At the doit boundary a user-caused failure becomes TaskFailed with its message."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = func(*args, **kwargs)
        except MlopsError as err:
            return TaskFailed(str(err))
        return None if result is None else result

    return wrapper


def _resolver(config: Config) -> Resolver:
    return Resolver(config.state_dir / "interpreters.json")


def _plan(config: Config, stage: Stage) -> Any:
    interp = _resolver(config).resolve(stage.name, stage.python, stage.python_exe)
    lock = config.root / layout.lock_path(stage)
    lock_text = lock.read_text(encoding="utf-8") if lock.is_file() else None
    return plan_env(stage, interp, config.installer, lock_text)


class EnvUpToDate:
    """doit uptodate check for venv:S: the marker matches what the spec asks for now.

    Cheap: a stat per candidate interpreter (probes are cached) and a small file read.
    """

    def __init__(self, config: Config, stage: Stage):
        self.config = config
        self.stage = stage

    def __call__(self) -> bool:
        try:
            plan = _plan(self.config, self.stage)
        except MlopsError:
            return False  # the action will report it
        root = self.config.root
        problem = env_problem(root / self.stage.env_dir, plan,
                              root / layout.freeze_file(self.stage))
        return problem is None

    def __repr__(self) -> str:
        return f"<env of {self.stage.env_dir} matches its spec>"


class NotebookCodeUnchanged:
    """doit uptodate check for execute:S: the notebook's code cells, their tags and the
    kernel language decide, not the file's bytes (outputs and metadata do not count)."""

    key = "_notebook_code"

    def __init__(self, root: Path, notebook: str):
        self.root = root
        self.notebook = notebook
        self.digest: str | None = None

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: {self.key: self.digest})

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        self.digest = notebook_code_hash(self.root / self.notebook)
        return values.get(self.key) == self.digest

    def __repr__(self) -> str:
        return f"<code cells and tags of {self.notebook}>"


@user_errors
def build_venv(config: Config, stage: Stage) -> None:
    plan = _plan(config, stage)
    lock = config.root / layout.lock_file("venv", stage.name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(lock)):
        start = time.perf_counter()
        why = build_env(stage, plan, config.root, config)
        if why:
            print(f"venv:{stage.name}: built in {time.perf_counter() - start:.1f} s", flush=True)


@user_errors
def write_kernel(config: Config, stage: Stage) -> None:
    from .kernels import write_kernelspec

    marker = read_marker(config.root / stage.env_dir) or {}
    write_kernelspec(config.root, stage, str(marker.get("python_version", "")))


def remove_tree(path: Path) -> None:
    """doit clean for venvs and kernelspecs: the whole folder goes."""
    if path.exists():
        shutil.rmtree(path)
        print(f"removed {path}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


@user_errors
def execute_stage(config: Config, stage: Stage) -> None:
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
        "mlflow.source.name": stage.notebook,
        "mlflow.source.type": "NOTEBOOK",
    }
    run_name = f"{stage.name}@{git['sha'][:7]}"
    run_id = tracking.start_run(uri, exp_id, run_name, tags)
    print(f"execute:{stage.name}: MLflow run {run_id} ({run_name})", flush=True)

    executed = root / layout.executed_notebook(stage)
    partial = executed.with_name(f"{stage.name}.partial.ipynb")
    failed = root / layout.failed_notebook(stage)
    executed.parent.mkdir(parents=True, exist_ok=True)
    for out in (*stage.outputs, *stage.metrics):
        (root / out).parent.mkdir(parents=True, exist_ok=True)

    parameters = {
        **stage.parameters,
        "stage_name": stage.name,
        "git_commit": git["sha"],
        "mlflow_tracking_uri": audit.redact(uri),
        "mlflow_run_id": run_id,
    }
    env = {"MLFLOW_TRACKING_URI": uri, "MLFLOW_RUN_ID": run_id,
           "MLFLOW_EXPERIMENT_ID": exp_id, "MLOPS_STAGE": stage.name}
    started, t0 = _now(), time.perf_counter()
    try:
        run_notebook(
            stage=stage.name,
            notebook=root / stage.notebook,
            output=partial,
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
        if partial.exists():
            os.replace(partial, failed)
        try:
            artifacts = [(failed, "notebook")] if failed.exists() else []
            tracking.log_run(uri, run_id, params={}, metrics={}, tags={"mlops.failed": "true"},
                             artifacts=artifacts, status="FAILED")
        except MlopsError as err:
            print(f"execute:{stage.name}: could not mark the run failed: {err}", flush=True)
        raise
    os.replace(partial, executed)
    if failed.exists():
        failed.unlink()
    record = {
        "stage": stage.name,
        "run_id": run_id,
        "run_name": run_name,
        "experiment_id": exp_id,
        "tracking_uri": audit.redact(uri),
        "start": started,
        "end": _now(),
        "duration_s": round(time.perf_counter() - t0, 3),
        "parameters": parameters,
        "parameters_sha256": parameters_digest(stage.parameters),
        "notebook": stage.notebook,
        "notebook_code_sha256": notebook_code_hash(root / stage.notebook),
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
        "host": audit.host_info(),
        "tools": audit.tool_versions(),
    }
    write_json(root / layout.execute_record(stage), record)
    print(f"execute:{stage.name}: done in {record['duration_s']:.1f} s", flush=True)


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


@user_errors
def log_stage(config: Config, stage: Stage) -> None:
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
    params = {k: v for k, v in stage.parameters.items()}
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
        "run_id": run_id, "logged": _now(), "tracking_uri": audit.redact(uri),
        "local_copy": local.relative_to(root).as_posix(),
    })
    print(f"log:{stage.name}: run {run_id} logged in {time.perf_counter() - t0:.1f} s",
          flush=True)
