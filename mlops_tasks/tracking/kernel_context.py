"""What a stage's kernel gets for its own MLflow calls: a tracking URI its client of any
version can use, the hook that routes its runs (tracking/kernel_hook.py), and the list of runs it
created. Stages whose venv has no mlflow get the plain variables, and the hook only for its
quick exit."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.utils import canonicalize_name

from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.redact import redact
from mlops_tasks.project import layout
from mlops_tasks.tracking import client as tracking

HOOK_MODULE = "mlops_kernel_hook"
MLFLOW_DISTRIBUTIONS = {"mlflow", "mlflow-skinny"}


def uses_mlflow(freeze: str) -> bool:
    """Whether a venv's pip freeze has an MLflow client (the fluent API's distributions)."""
    for line in freeze.splitlines():
        name = re.split(r"[=<>!~ @;\[]", line.strip(), maxsplit=1)[0]
        if canonicalize_name(name) in MLFLOW_DISTRIBUTIONS:
            return True
    return False


@dataclass(frozen=True)
class KernelTracking:
    """How a stage's kernel reaches the store. Decided from the venv's freeze before the
    kernel starts (`launch_env`); what only exists once the stage's run does (its id, a
    served store's address) reaches a hooked kernel through a context file that the hook
    reads before the first cell (`context`)."""

    uri: str  # the store the orchestrator uses
    hooked: bool  # the kernel loads the hook: its runs follow the stage rule
    served_uri: str = ""  # the address the store is served at to the kernel, once it is

    @property
    def served(self) -> bool:
        """Whether the kernel gets the store over HTTP from doit (a local store)."""
        return self.hooked and not tracking.talks_http(self.uri)

    @property
    def kernel_uri(self) -> str:
        """What the kernel's client talks to."""
        return self.served_uri or self.uri

    def launch_env(self, root: Path, stage: str, runs_file: str, context_file: str
                   ) -> dict[str, str]:
        """The kernel process's variables, known before the stage's run exists."""
        hook_dir = str(root / layout.kernel_hook_dir())  # every kernel loads the hook
        env = {"MLOPS_STAGE": stage, "MLOPS_KERNEL_HOOK_DIR": hook_dir, "PYTHONPATH": hook_dir}
        if not self.served:
            env["MLFLOW_TRACKING_URI"] = self.uri
            if redact(self.uri) != self.uri:  # its credentials stay out of cell outputs
                env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        if self.hooked:
            env.update({"MLOPS_KERNEL_CONTEXT": str(root / context_file),
                        "MLOPS_NOTEBOOK_RUNS": str(root / runs_file)})
        return env

    def context(self, experiment_id: str, run_id: str) -> dict[str, str]:
        """What the hook puts in the kernel's environment before the first cell runs."""
        found = {"MLFLOW_EXPERIMENT_ID": experiment_id, "MLOPS_STAGE_RUN_ID": run_id}
        if self.served:  # an address that is gone after the run stays out of the outputs
            found.update({"MLFLOW_TRACKING_URI": self.kernel_uri,
                          "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"})
        return found

    def kernel_args(self) -> tuple[str, ...]:
        """Every stage kernel loads the hook: its runs' routing when `hooked`, and its quick
        exit (kernel_hook.exit_quickly) either way."""
        return (f"--IPKernelApp.extra_extensions={HOOK_MODULE}",)

    def with_store_served(self, root: Path) -> KernelTracking:
        """For a store the kernel's client would open itself (the embedded sqlite default, a
        file store, a database): that store served over HTTP on 127.0.0.1 from this process,
        so a client of another version never migrates the tool's schema."""
        if not self.served or self.served_uri:
            return self
        served = tracking.serve_store(self.uri, root / layout.mlflow_artifacts())
        return replace(self, served_uri=served)


def for_stage(root: Path, freeze_file: Path, uri: str) -> KernelTracking:
    """Every stage kernel gets the hook (cheap: a file read and a copy); its routing of MLflow
    runs works where the venv has mlflow."""
    try:
        freeze = freeze_file.read_text(encoding="utf-8")
    except OSError:
        freeze = ""
    install_hook(root)
    return KernelTracking(uri, hooked=uses_mlflow(freeze))


def write_context(path: Path, values: Mapping[str, str]) -> None:
    atomic_write(path, json.dumps(values, sort_keys=True).encode("utf-8"))


def context_unread(path: Path) -> bool:
    """The hook removes the context file as it reads it: one left after the run means the
    kernel never loaded the hook."""
    return path.is_file()


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
