"""What a stage's kernel gets for its own MLflow calls: a tracking URI its client of any
version can use, the hook that routes its runs (kernel_hook.py), and the list of runs it
created. Stages whose venv has no mlflow get the plain variables and pay nothing more."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import layout, tracking
from .files import atomic_write

HOOK_MODULE = "mlops_kernel_hook"
MLFLOW_DISTRIBUTIONS = {"mlflow", "mlflow-skinny"}


def uses_mlflow(freeze: str) -> bool:
    """Whether a venv's pip freeze has an MLflow client (the fluent API's distributions)."""
    for line in freeze.splitlines():
        name = re.split(r"[=<>!~ @;\[]", line.strip(), maxsplit=1)[0]
        if re.sub(r"[-_.]+", "-", name).lower() in MLFLOW_DISTRIBUTIONS:
            return True
    return False


@dataclass(frozen=True)
class KernelTracking:
    uri: str  # what the kernel's client talks to
    hooked: bool  # the kernel loads the hook: its runs follow the stage rule

    def env(self, root: Path, stage_run: str, runs_file: str) -> dict[str, str]:
        if not self.hooked:
            return {"MLFLOW_TRACKING_URI": self.uri}
        hook_dir = str(root / layout.kernel_hook_dir())
        return {"MLFLOW_TRACKING_URI": self.uri, "MLOPS_STAGE_RUN_ID": stage_run,
                "MLOPS_NOTEBOOK_RUNS": str(root / runs_file),
                "MLOPS_KERNEL_HOOK_DIR": hook_dir, "PYTHONPATH": hook_dir}

    def kernel_args(self) -> tuple[str, ...]:
        return (f"--IPKernelApp.extra_extensions={HOOK_MODULE}",) if self.hooked else ()


def for_stage(root: Path, freeze_file: Path, uri: str) -> KernelTracking:
    """A stage with mlflow in its venv gets the hook, and, for a store its client would open
    itself (the embedded sqlite default, a file store, a database), that store served over
    HTTP on 127.0.0.1: a client of another version never migrates the tool's schema."""
    try:
        freeze = freeze_file.read_text(encoding="utf-8")
    except OSError:
        freeze = ""
    if not uses_mlflow(freeze):
        return KernelTracking(uri, hooked=False)
    install_hook(root)
    if not tracking.talks_http(uri):
        uri = tracking.serve_store(uri, root / layout.mlflow_artifacts())
    return KernelTracking(uri, hooked=True)


def install_hook(root: Path) -> None:
    """The hook's source, copied alone into the state folder that kernels put on their path
    (the package's other modules would shadow a notebook's imports there)."""
    source = (Path(__file__).with_name("kernel_hook.py")).read_bytes()
    target = root / layout.kernel_hook_dir() / f"{HOOK_MODULE}.py"
    try:
        if target.read_bytes() == source:
            return
    except OSError:
        pass
    atomic_write(target, source)


def created_runs(path: Path) -> list[tuple[str, str]]:
    """(run id, experiment id) of each run the notebook created, in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    runs = []
    for line in lines:
        run_id, _, experiment_id = line.partition("\t")
        if run_id.strip():
            runs.append((run_id.strip(), experiment_id.strip()))
    return runs


def runs_tag(run_ids: list[str], limit: int = 5000) -> str:
    """The ids of the runs the notebook created, as far as a tag holds (MLflow 2.x servers
    take 5000 characters); audit.json lists them all."""
    text = ",".join(run_ids)
    if len(text) <= limit:
        return text
    kept: list[str] = []
    for run_id in run_ids:
        rest = len(run_ids) - len(kept) - 1
        if len(",".join([*kept, run_id])) + len(f",... {rest} more in audit.json") > limit:
            break
        kept.append(run_id)
    return ",".join(kept) + f",... {len(run_ids) - len(kept)} more in audit.json"
