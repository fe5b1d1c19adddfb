"""doit `uptodate` checks that decide on content and say why, in words, in `doit info`.

Each check stores what it compared in the task's saved values, so the next check can name
what changed (which code cell, which parameter, which output). Cheap: file reads and stats;
an output is re-hashed only when its size or mtime moved.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from doit.tools import config_changed

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.env.plan import EnvPlan, env_problem, plan_for, read_marker
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import (
    canonical_json,
    content_hash,
    content_stat,
    parameters_digest,
    sha256_file,
    sha256_text,
    tree_files,
)
from mlops_tasks.project.notebooks import (
    cell_digests,
    code_digest,
    describe_code_change,
    notebook_code,
    read_notebook,
)
from mlops_tasks.project.spec import Stage, input_skip
from mlops_tasks.run import record


def last_execution(root: Path, stage: Stage) -> record.ExecuteRecord | None:
    """The stage's last execution record; None when there is none or it is unusable (the
    checks then say the stage runs)."""
    return record.read_or_none(record.ExecuteRecord, root / layout.execute_record(stage), root)


def fixed_signature(cls: type) -> type:
    """doit inspects the signature of every up-to-date check of every task on every run (for
    its `task` and `values` arguments): a class gives its instances one, computed once."""
    call = inspect.signature(cls.__call__)
    cls.__signature__ = call.replace(  # type: ignore[attr-defined]
        parameters=list(call.parameters.values())[1:])
    return cls


@fixed_signature
class ConfigUnchanged(config_changed):
    """doit's config_changed (a value saved with the task; the task reruns when it differs)."""


class Check:
    """Base: a reason (set when the check fails) makes the repr readable in `doit info`."""

    label = ""

    def __init__(self) -> None:
        self.reason = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fixed_signature(cls)

    def __repr__(self) -> str:
        return f"<{self.label}: {self.reason}>" if self.reason else f"<{self.label}>"


class EnvUpToDate(Check):
    """venv:S is up to date when the env's marker matches what the spec asks for now."""

    def __init__(self, config: Config, stage: Stage):
        super().__init__()
        self.config, self.stage = config, stage
        self.label = f"env {stage.env_dir}"

    def __call__(self) -> bool:
        try:
            plan = plan_for(self.config, self.stage)
        except MlopsError as err:
            self.reason = str(err)
            return False
        root = self.config.root
        self.reason = env_problem(root / self.stage.env_dir, plan,
                                  root / layout.freeze_file(self.stage)) or ""
        return not self.reason


class NotebookCodeUnchanged(Check):
    """execute:S reruns when code cells, their tags or the kernel language change; outputs,
    execution counts and metadata saved by Jupyter do not count."""

    def __init__(self, root: Path, notebook: str):
        super().__init__()
        self.root, self.notebook = root, notebook
        self.label = f"code of {notebook}"
        self.current: dict[str, Any] = {}

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: self.current)

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        try:
            code = notebook_code(read_notebook(self.root / self.notebook))
        except MlopsError as err:
            self.reason = str(err)  # the action reports it as a task failure
            return False
        self.current = {"_notebook_code": code_digest(code),
                        "_notebook_cells": cell_digests(code)}
        if values.get("_notebook_code") == self.current["_notebook_code"]:
            return True
        old = values.get("_notebook_cells")
        if old is None:
            self.reason = "never executed"
        else:
            self.reason = (describe_code_change(old, self.current["_notebook_cells"])
                           or "kernel language changed")
        return False


def describe_parameter_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    parts = [f"+{k}" for k in new if k not in old]
    parts += [f"-{k}" for k in old if k not in new]
    parts += [f"{k}: {canonical_json(old[k])} → {canonical_json(new[k])}"
              for k in new if k in old and canonical_json(old[k]) != canonical_json(new[k])]
    return ", ".join(parts)


class ParametersUnchanged(Check):
    """execute:S reruns when the spec's parameters differ from those of the last run; a run
    with --param overrides records the overridden values, so the spec's run follows."""

    def __init__(self, root: Path, stage: Stage):
        super().__init__()
        self.root, self.stage = root, stage
        self.label = "parameters"

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(self._saved)

    def _saved(self) -> dict[str, Any]:
        done = last_execution(self.root, self.stage)
        used = done.stage_parameters if done is not None else dict(self.stage.parameters)
        return {"_parameters": parameters_digest(used), "_parameters_json": canonical_json(used)}

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        overrides = (getattr(task, "options", None) or {}).get("param")
        if overrides:
            self.reason = "overridden on the command line: " + ", ".join(overrides)
            return False
        if values.get("_parameters") == parameters_digest(self.stage.parameters):
            return True
        old = json.loads(values.get("_parameters_json") or "null")
        self.reason = ("never executed" if old is None else
                       describe_parameter_change(old, dict(self.stage.parameters)))
        return False


class KeptWithTheTask(Check):
    """A check whose evidence doit keeps with the task once it has run (its values): what
    `saved` takes from the execution record."""

    root: Path
    stage: Stage

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(self._saved)

    def _saved(self) -> dict[str, Any]:
        done = last_execution(self.root, self.stage)
        return {} if done is None else self.saved(done)

    def saved(self, done: record.ExecuteRecord) -> dict[str, Any]:
        raise NotImplementedError


def describe_files_change(old: Mapping[str, str], new: Mapping[str, str], most: int = 3
                          ) -> str:
    """Which files of a folder differ, the first few by name, then a count."""
    names = [f"+{f}" for f in new if f not in old] + [f"-{f}" for f in old if f not in new]
    names += [f for f in new if f in old and old[f] != new[f]]
    if not names:
        return ""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(sorted(names, key=lambda n: n.lstrip("+-"))[:most]) + more


def folder_files(path: Path, rel: str) -> dict[str, str] | None:
    """An input folder's files and (short) content hashes, its declared outputs left out."""
    if not path.is_dir():
        return None
    return {f: sha[:16] for f, sha in tree_files(path, input_skip(rel)).items()}


class InputsUnchanged(KeptWithTheTask):
    """execute:S reruns when an input's content differs from what its last run read (files
    or folders; touching one changes nothing; declared outputs inside an input folder do not
    count, see project/load.py). The hashes are those taken before that run started, so an
    input edited during a run counts as changed. A folder's files are kept with the task
    too, so `doit info` names the files that changed."""

    def __init__(self, root: Path, stage: Stage):
        super().__init__()
        self.root, self.stage = root, stage
        self.label = "inputs"

    def saved(self, done: record.ExecuteRecord) -> dict[str, Any]:
        files = {rel: folder_files(self.root / rel, rel) for rel in self.stage.inputs}
        return {"_inputs": done.inputs, "_inputs_stat": done.inputs_stat,
                "_inputs_files": {rel: f for rel, f in files.items() if f is not None}}

    def _changed(self, rel: str, before: Mapping[str, str] | None) -> str:
        now = folder_files(self.root / rel, rel)
        which = describe_files_change(before, now) if before and now is not None else ""
        return f"{rel} changed" + (f": {which}" if which else "")

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        hashes, stats = values.get("_inputs"), values.get("_inputs_stat") or {}
        if hashes is None:
            self.reason = "never executed"
            return False
        files = values.get("_inputs_files") or {}
        changed = [f"+{rel}" for rel in self.stage.inputs if rel not in hashes]
        changed += [f"-{rel}" for rel in hashes if rel not in self.stage.inputs]
        for rel in self.stage.inputs:
            stat = content_stat(self.root / rel)
            if stat is None:
                changed.append(f"{rel} is missing")
            elif rel in hashes and stats.get(rel) != stat and (
                    content_hash(self.root / rel, input_skip(rel)) != hashes[rel]):
                changed.append(self._changed(rel, files.get(rel)))
        self.reason = ", ".join(changed)
        return not changed


class UpstreamRunsUnchanged(Check):
    """execute:S reruns when a stage it names in `depends_on` produced a new run since S's
    last execution (S may read those runs, not files, so no file says so)."""

    def __init__(self, root: Path, stage: Stage, by_name: Mapping[str, Stage]):
        super().__init__()
        self.root, self.stage = root, stage
        self.upstream = [by_name[name] for name in stage.depends_on]
        self.label = "runs of " + ", ".join(stage.depends_on)

    def current(self) -> dict[str, str | None]:
        runs: dict[str, str | None] = {}
        for up in self.upstream:
            done = last_execution(self.root, up)
            runs[up.name] = done.run_id if done else None
        return runs

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: {"_upstream_runs": self.current()})

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        old, new = values.get("_upstream_runs"), self.current()
        if old == new:
            return True
        changed = [name for name in new if (old or {}).get(name) != new[name]]
        self.reason = ("never executed" if old is None else
                       "new run of " + ", ".join(changed))
        return False


class EnvVarsUnchanged(Check):
    """execute:S reruns when the spec's `env` changes, is added or is removed. Only a digest
    is kept (values may be secrets), under doit's `config_changed` key, which the check
    used before, so a project's saved state stays valid."""

    label = "env variables"

    def __init__(self, stage: Stage):
        super().__init__()
        env = dict(stage.env)
        self.current = sha256_text(canonical_json(env)) if env else None

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(
            lambda: {"_config_changed": self.current} if self.current else {})

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        old = values.get("_config_changed")
        if old == self.current:
            return True
        self.reason = ("added" if old is None else "removed" if self.current is None
                       else "changed")
        return False


class KernelspecCurrent(Check):
    """kernel:S is up to date when the project's kernelspec says what it would be written as
    for the venv as built (whoever wrote it: kernel:S, or execute:S making its env ready)."""

    def __init__(self, config: Config, stage: Stage):
        super().__init__()
        self.config, self.stage = config, stage
        self.label = f"kernelspec {stage.kernel_name}"

    def __call__(self) -> bool:
        from mlops_tasks.env.kernelspecs import kernelspec_current

        marker = read_marker(self.config.root / self.stage.env_dir) or {}
        current = kernelspec_current(self.config.root, self.stage,
                                     str(marker.get("python_version", "")))
        self.reason = "" if current else "missing, or not the venv's"
        return current


class EnvAsBuilt(Check):
    """execute:S and its environment. A venv that is there and valid must have the freeze
    the last run had (a rebuilt venv that resolves as before reruns nothing); a venv that is
    not there is not needed while the env plan (Python, requirements, pins) is the last
    run's: a stage restored from the cache, or one whose venv was deleted, is up to date
    until it must execute, and execute:S builds the venv only then. Kept last among the
    task's checks, so that when it alone fails the action knows that only the environment
    changed (`only_env`)."""

    label = "env"

    def __init__(self, config: Config, stage: Stage, others: list[Any]):
        super().__init__()
        self.config, self.stage, self.others = config, stage, others
        self.build_failed = False  # set by the action: its venv could not be made
        self.changed_in_run = False  # the notebook changed its venv: it must run again

    def _freeze_now(self) -> str | None:
        path = self.config.root / layout.freeze_file(self.stage)
        return sha256_file(path) if path.is_file() else None

    def _valid_venv(self, plan: EnvPlan) -> bool:
        root = self.config.root
        return env_problem(root / self.stage.env_dir, plan,
                           root / layout.freeze_file(self.stage)) is None

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(self._saved)

    def _saved(self) -> dict[str, Any]:
        """After a run: the freeze the outputs were made with (the venv's, or for a restore
        the producer's) and the env plan it answered."""
        done = record.read_or_none(record.ExecuteRecord,
                                   self.config.root / layout.execute_record(self.stage))
        plan = plan_for(self.config, self.stage)  # the action may have made it resolvable
        freeze = self._freeze_now() if self._valid_venv(plan) else None
        return {"_freeze": freeze or (done.key.freeze if done else None),
                "_env_plan": plan.fingerprint}

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        try:
            plan = plan_for(self.config, self.stage)
        except MlopsError as err:
            self.reason = str(err)
            return False
        marker = read_marker(self.config.root / self.stage.env_dir) or {}
        self.changed_in_run = bool(marker.get("changed_in_run"))
        if self.changed_in_run:
            self.reason = (f"the notebook changed {self.stage.env_dir} during its last run "
                           f"({marker['changed_in_run']}); it runs again on a venv built from "
                           "the spec")
            return False
        saved_freeze, saved_plan = values.get("_freeze"), values.get("_env_plan")
        if saved_plan is None:  # state saved before this check: the record's freeze
            done = record.read_or_none(record.ExecuteRecord,
                                       self.config.root / layout.execute_record(self.stage))
            if done is None:
                self.reason = "never executed"
                return False
            saved_freeze = done.key.freeze
        if self._valid_venv(plan):
            now = self._freeze_now()
            self.reason = "" if now == saved_freeze else (
                "never executed" if saved_freeze is None else
                f"the packages of {self.stage.env_dir} changed since the last run")
        else:
            self.reason = "" if saved_plan == plan.fingerprint else (
                f"the environment changed since the last run (the stage's run builds "
                f"{self.stage.env_dir})")
        return not self.reason

    def only_env(self) -> bool:
        """This check failed and every other one held: only the environment changed."""
        targets = [*self.stage.written, layout.execute_record(self.stage)]
        return (bool(self.reason) and self.reason != "never executed" and not self.changed_in_run
                and all(not getattr(c, "reason", "") for c in self.others)
                and all((self.config.root / t).exists() for t in targets))


def interrupted_text(stage: Stage) -> str:
    return (f"a run was interrupted: its outputs may be half-written; the last good ones wait "
            f"in {layout.previous_outputs(stage)} and are put back when the stage runs again")


class OutputsUnchanged(KeptWithTheTask):
    """execute:S reruns when a declared output was deleted or edited after the run. The
    hashes the run recorded are kept with the task in doit's DB too, so a no-op reads no
    record (a record holds the run's git diff: it can be large)."""

    def __init__(self, root: Path, stage: Stage):
        super().__init__()
        self.root, self.stage = root, stage
        self.label = "outputs as the last run wrote them"

    def saved(self, done: record.ExecuteRecord) -> dict[str, Any]:
        return {"_outputs": done.outputs, "_outputs_stat": done.outputs_stat,
                "_record_stat": content_stat(self.root / layout.execute_record(self.stage))}

    def _recorded(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The hashes and stats of the last run: from doit's DB while the record file is the
        one they were saved from, else from the record itself."""
        record_file = self.root / layout.execute_record(self.stage)
        saved = values.get("_record_stat")
        if saved is not None and saved == content_stat(record_file):
            return values["_outputs"], values.get("_outputs_stat") or {}
        done = record.read(record.ExecuteRecord, record_file, self.root)
        if done is None:
            raise MlopsError("no record of a finished run")
        return done.outputs, done.outputs_stat

    def __call__(self, task: Any, values: Mapping[str, Any]) -> bool:
        try:
            hashes, stats = self._recorded(values)
        except MlopsError as err:
            self.reason = str(err)
            return False
        if (self.root / layout.previous_outputs(self.stage)).exists():
            self.reason = interrupted_text(self.stage)
            return False
        for rel in self.stage.written:
            path = self.root / rel
            stat = content_stat(path)
            if stat is None:
                self.reason = f"{rel} is missing"
                return False
            if stats.get(rel) == stat:
                continue
            if content_hash(path) != hashes.get(rel):
                self.reason = f"{rel} was changed after the run"
                return False
        return True
