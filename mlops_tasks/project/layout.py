"""Where every file of the tool lives, relative to the project root. Pure.

Two words kept apart: a *pins file* holds pinned requirements (`env_specs/<spec>.lock`,
written by `doit lock`); a *mutex file* is an OS file lock that serialises processes."""

from __future__ import annotations

import os

from mlops_tasks.project.spec import Stage

STATE = ".mlops"
MARKER = ".mlops-env.json"
FREEZE = "pip-freeze.txt"
AUDIT = "audit.json"  # in a run's local copy and among its artifacts
VENVS = ".venvs"  # where stage venvs go unless a spec says otherwise


def dep_db() -> str:
    """doit's dependency DB."""
    return f"{STATE}/doit.db"


def venv_python(env_dir: str, windows: bool | None = None) -> str:
    """The venv's interpreter: Scripts/python.exe on Windows, bin/python elsewhere."""
    if windows is None:
        windows = os.name == "nt"
    return f"{env_dir}/Scripts/python.exe" if windows else f"{env_dir}/bin/python"


def pins_file(stage: Stage) -> str:
    """Pinned requirements for a stage: its spec file, or its shared environment's file
    (env_specs/environments/<name>.yaml), with the .lock suffix."""
    if stage.environment:
        return f"{os.path.dirname(stage.spec_path) or '.'}/environments/{stage.environment}.lock"
    return os.path.splitext(stage.spec_path)[0] + ".lock"


def previous_env(stage: Stage) -> str:
    """Where a stage's env waits while its replacement is built (beside it: same disk)."""
    parent, _, name = stage.env_dir.rpartition("/")
    return f"{parent + '/' if parent else ''}.{name}.previous"


def env_claim(stage: Stage) -> str:
    """Written before a build of ours creates env_dir: the folder is ours to remove."""
    return f"{STATE}/envs/{stage.name}.json"


def requirements_file(env_dir: str) -> str:
    """What the installer reads while a venv is built (beside it, removed after)."""
    parent, _, name = env_dir.rpartition("/")
    return f"{parent + '/' if parent else ''}.{name}.requirements.txt"


def pins_input(stage: Stage) -> str:
    """The requirements `doit lock` resolves for a stage."""
    return f"{STATE}/pins/{stage.name}.in"


def freeze_file(stage: Stage) -> str:
    return f"{stage.env_dir}/{FREEZE}"


def kernels_dir() -> str:
    return f"{STATE}/jupyter/kernels"


def kernel_sockets() -> str:
    """Where running kernels' IPC sockets live (POSIX)."""
    return f"{STATE}/sockets"


def kernel_json(stage: Stage) -> str:
    return f"{kernels_dir()}/{stage.kernel_name}/kernel.json"


def notebook_runs(stage: Stage) -> str:
    """The runs a stage's notebook created itself, one `run id<TAB>experiment id` per line."""
    return f"{STATE}/executed/{stage.name}.notebook-runs.tsv"


def kernel_context(stage: Stage) -> str:
    """What a hooked kernel reads before its first cell (the stage's run, a served store's
    address): written once the run exists, removed by the kernel as it reads it."""
    return f"{STATE}/executed/{stage.name}.kernel-context.json"


def restore_dir(stage: Stage) -> str:
    """Where a run's files are fetched and verified before a restore puts them in place."""
    return f"{STATE}/restore/{stage.name}"


def kernel_hook_dir() -> str:
    """The folder every stage kernel puts on its path for the hook, alone."""
    return f"{STATE}/kernel-hook"


def executed_notebook(stage: Stage) -> str:
    return f"{STATE}/executed/{stage.name}.ipynb"


def source_snapshot(stage: Stage) -> str:
    """The copy of the notebook that runs: the bytes whose code is in the stage key."""
    return f"{STATE}/executed/{stage.name}.source.ipynb"


def partial_notebook(stage: Stage) -> str:
    """The notebook being executed; renamed to the executed or failed one when it ends."""
    return f"{STATE}/executed/{stage.name}.partial.ipynb"


def failed_notebook(stage: Stage) -> str:
    return f"{STATE}/executed/{stage.name}.failed.ipynb"


def execute_record(stage: Stage | str) -> str:
    name = stage if isinstance(stage, str) else stage.name
    return f"{STATE}/executed/{name}.json"


def stage_log(stage: Stage) -> str:
    """A stage's cell output, installer output and kernel messages, appended per run."""
    return f"{STATE}/logs/{stage.name}.log"


def reports_dir() -> str:
    return f"{STATE}/reports"


def junit_report() -> str:
    """JUnit XML of the last doit that ran tasks (none after one that ran nothing)."""
    return f"{reports_dir()}/junit.xml"


def report_page() -> str:
    return f"{reports_dir()}/index.html"


def reproductions() -> str:
    """Each `doit reproduce` of a run: when, the verdict, the new run (the report shows them)."""
    return f"{reports_dir()}/reproductions.json"


def running_record(stage: Stage) -> str:
    """Written when the stage's MLflow run is created, removed when the run is closed: one
    left behind means the doit that made it was killed."""
    return f"{STATE}/executed/{stage.name}.running.json"


def running_records() -> str:
    return f"{STATE}/executed/*.running.json"


def failure_record(stage: Stage | str) -> str:
    """The record of the stage's last failed or interrupted execution (by stage or name)."""
    name = stage if isinstance(stage, str) else stage.name
    return f"{STATE}/executed/{name}.failure.json"


def previous_outputs(stage: Stage) -> str:
    """Where the declared outputs wait while the stage runs (put back if it fails)."""
    return f"{STATE}/previous/{stage.name}"


OVERRIDE_OUTPUTS = "outputs"
OVERRIDE_RECORD = "record.json"
OVERRIDE_LOG = "last-run.json"


def overrides_of(stage: Stage) -> str:
    return f"{STATE}/overrides/{stage.name}"


def override_dir(stage: Stage, run_id: str) -> str:
    """Everything of one `--param` override run: its outputs, notebook and records."""
    return f"{overrides_of(stage)}/{run_id}"


def runs_dir(stage: Stage) -> str:
    return f"{STATE}/runs/{stage.name}"


def run_copy(stage: Stage, run_id: str) -> str:
    """The local copy of one logged run (audit.json, freeze, notebook, spec)."""
    return f"{runs_dir(stage)}/{run_id}"


def log_record(stage: Stage) -> str:
    return f"{runs_dir(stage)}/last-run.json"


def mutex_file(kind: str, name: str) -> str:
    """An OS file lock for one resource: venv-<stage>, kernel-<name>, wheels-cache, ..."""
    return f"{STATE}/mutexes/{kind}-{name}.lock"


def workspace_mutex() -> str:
    return f"{STATE}/workspace.lock"


def workspace_owner() -> str:
    """Who holds the workspace mutex (pid, host, user, command), for a waiting process."""
    return f"{STATE}/workspace.owner.json"


def interpreter_cache() -> str:
    return f"{STATE}/interpreters.json"


def mlflow_db() -> str:
    return f"{STATE}/mlflow.db"


def mlflow_artifacts() -> str:
    return f"{STATE}/mlartifacts"


def experiment_pins() -> str:
    """The experiment ids this project has used, per tracking store and name: a store whose
    experiment was replaced under the same name is refused, not written to."""
    return f"{STATE}/experiments.json"


def to_publish(stage: Stage, run_id: str) -> str:
    """Left beside a run's local copy while the run is not in the tracking store yet (it ran
    while the store could not be reached); what it names was created there, if anything."""
    return f"{run_copy(stage, run_id)}/to-publish.json"
