"""The `execute:S` step: prepare (stage key, MLflow run, parameters), run the notebook on the
stage's kernel inside the output transaction, and record the execution (or its failure).

The notebook is read once, before anything runs: the code that is hashed into the stage key
is a snapshot, and that snapshot is what executes, so an edit made during a run is neither
executed nor recorded as executed."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError, StageFailed
from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.redact import redact, redacted_copy
from mlops_tasks.env.plan import read_marker
from mlops_tasks.env.venv import ready
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import (
    sha256_file,
    spec_hash,
)
from mlops_tasks.project.spec import Stage
from mlops_tasks.run import kernels, record, stage_cache
from mlops_tasks.run import provenance as audit
from mlops_tasks.run.lifecycle import (
    close_unlogged_run,
    creation_tags,
    is_local_run,
    local_run_id,
    offline_text,
    store_or_offline,
)
from mlops_tasks.run.outputs import OutputSet, move
from mlops_tasks.run.parameters import context, warn_undeclared
from mlops_tasks.run.snapshot import Snapshot, depends_on_files, snapshot, with_freeze
from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import kernel_context as kernel_tracking
from mlops_tasks.tracking import tags as tag


@dataclass(frozen=True)
class Prepared:
    """Everything decided before the notebook starts."""

    stage: Stage
    root: Path
    source: Path  # the snapshot of the notebook that runs
    key: record.StageKey
    inputs: dict[str, str | None]
    inputs_stat: dict[str, list[int]]
    marker: dict[str, Any]
    git: dict[str, Any]
    uri: str
    experiment_id: str
    run_id: str
    run_name: str
    stage_parameters: dict[str, Any]
    overrides: dict[str, Any]
    parameters: dict[str, Any]  # as injected, context included
    kernel: kernel_tracking.KernelTracking
    restored_from: str | None = None  # the run whose outputs were restored, not executed
    venv_changed: tuple[str, ...] = ()  # what the notebook installed into its venv


def prepare(config: Config, stage: Stage, overrides: Mapping[str, Any], snap: Snapshot,
            kernel: kernel_tracking.KernelTracking, restored_from: str | None = None
            ) -> Prepared:
    root = config.root
    source, nb, key, inputs = snap.source, snap.nb, snap.key, snap.inputs
    stats, stage_parameters = snap.inputs_stat, snap.stage_parameters
    marker = read_marker(root / stage.env_dir) or {}
    git = audit.git_info(root, depends_on_files(root, stage))
    uri, exp_id, offline = store_or_offline(config)
    run_name = f"{stage.name}@{git['sha'][:7]}"
    if offline:  # created in the store by the log:S that publishes it
        console.say(offline_text(uri, offline), "execute", stage.name)
        run_id = local_run_id()
    else:
        close_unlogged_run(root, stage, uri)
        run_id = tracking.start_run(uri, exp_id, run_name, creation_tags(
            stage, git, marker, key, bool(overrides), restored_from,
            os.environ.get("MLFLOW_RUN_ID"), config.profile))
    record.write(root / layout.running_record(stage), record.RunningRecord(
        stage.name, run_id, redact(uri), record.invocation_id(), record.timestamp(), key))
    console.step(f"MLflow run {run_id} ({run_name}), invocation {record.invocation_id()}",
                "execute", stage.name)
    if overrides:
        console.say("overriding parameters for this run: " + redact(
            ", ".join(f"{k}={v!r}" for k, v in overrides.items())), "execute", stage.name)
    (root / layout.notebook_runs(stage)).unlink(missing_ok=True)
    if not restored_from:  # a kernel: parameters to check, a store to serve it
        warn_undeclared(stage, nb, stage_parameters)
        kernel = kernel.with_store_served(root)
        if kernel.hooked and not offline:  # what its hook reads before the first cell
            kernel_tracking.write_context(root / layout.kernel_context(stage),
                                          kernel.context(exp_id, run_id))
    parameters = context(stage, git, kernel.kernel_uri, run_id, stage_parameters)
    return Prepared(stage, root, source, key, inputs, stats, marker, git, uri, exp_id, run_id,
                    run_name, stage_parameters, dict(overrides), parameters, kernel,
                    restored_from)


def run(config: Config, prep: Prepared, outputs: OutputSet, km: Any) -> None:
    """The notebook on the stage's kernel, inside the output transaction; once its first
    cell starts, the next stage's kernel boots (kernels.boot_ahead)."""
    from mlops_tasks.run.kernel_launch import stop
    from mlops_tasks.run.papermill_adapter import run_notebook

    stage, root = prep.stage, prep.root
    try:
        outputs.begin()
    except BaseException:
        stop(km, now=True)  # from here on, run_notebook stops it
        raise
    log = root / layout.stage_log(stage)
    with console.logging_to(log):
        run_notebook(
            stage=stage.name, notebook=prep.source,
            output=root / layout.partial_notebook(stage),
            failed=root / layout.failed_notebook(stage), km=km,
            parameters=prep.parameters, cwd=root, timeout=stage.timeout,
            allow_early_exit=stage.allow_early_exit, spec_path=stage.spec_path, log=log,
            workdir=stage.workdir,
            on_first_cell=lambda: kernels.boot_ahead(config, stage.name))
    if prep.kernel.hooked and kernel_tracking.context_unread(
            root / layout.kernel_context(stage)):
        console.warn("the kernel did not load mlops-tasks' hook (see "
                     f"{layout.stage_log(stage)}): the notebook's own MLflow calls were not "
                     "routed to the stage's run", "execute", stage.name)
    missing = outputs.missing()
    if missing:
        raise StageFailed(stage.name, f"the notebook finished but did not write the declared "
                          f"output(s) {', '.join(missing)}; write them in {stage.notebook} or "
                          f"remove them from {stage.spec_path}")


def fail(prep: Prepared, outputs: OutputSet, err: BaseException, started: str) -> None:
    """Put the outputs back, keep the failed notebook, record the failure, close the run."""
    stage, root = prep.stage, prep.root
    outputs.rollback()
    partial, failed = root / layout.partial_notebook(stage), root / layout.failed_notebook(stage)
    if partial.exists():
        os.replace(partial, failed)
    interrupted = not isinstance(err, Exception)
    record.write(root / layout.failure_record(stage), record.FailureRecord(
        stage=stage.name, task="execute", outcome="interrupted" if interrupted else "failed",
        cause=redact(getattr(err, "cause", None) or str(err) or type(err).__name__),
        cell=getattr(err, "cell", None),
        notebook=layout.failed_notebook(stage) if failed.exists() else None,
        run_id=prep.run_id, invocation_id=record.invocation_id(), start=started,
        end=record.timestamp(), key=prep.key))
    try:
        copy = root / layout.run_copy(stage, prep.run_id) / failed.name
        artifacts = [(redacted_copy(failed, copy), "notebook")] if failed.exists() else []
        tags = {tag.FAILED: "true"}
        created = kernel_tracking.created_runs(root / layout.notebook_runs(stage))
        if created:
            tags[tag.NOTEBOOK_RUNS] = kernel_tracking.runs_tag([r for r, _ in created])
        if not is_local_run(prep.run_id):  # a local one is only in its failure record
            tracking.close_run(prep.uri, prep.run_id, tags,
                               "KILLED" if interrupted else "FAILED", artifacts)
    except MlopsError as err2:
        console.say(f"could not mark the run failed: {err2}", "execute", stage.name)
        return  # the running record stays: the next doit closes the run
    (root / layout.running_record(stage)).unlink(missing_ok=True)


def finish(prep: Prepared, outputs: OutputSet, started: str, seconds: float
           ) -> record.ExecuteRecord:
    """Keep the new outputs and the executed notebook; write the execution record."""
    stage, root = prep.stage, prep.root
    outputs.commit()
    executed = root / layout.executed_notebook(stage)
    os.replace(root / layout.partial_notebook(stage), executed)
    (root / layout.failed_notebook(stage)).unlink(missing_ok=True)
    (root / layout.failure_record(stage)).unlink(missing_ok=True)
    done = build_record(prep, root, executed, started, seconds)
    record.write(root / layout.execute_record(stage), done)
    return done


def finish_override(prep: Prepared, outputs: OutputSet, started: str, seconds: float
                    ) -> record.ExecuteRecord:
    """An override run's outputs, notebook and record go under .mlops/overrides/; the
    declared outputs go back to what the last real run wrote, so nothing downstream reads
    an override's results and the stage stays as it was."""
    stage, root = prep.stage, prep.root
    folder = root / layout.override_dir(stage, prep.run_id)
    for rel in outputs.paths:
        if (root / rel).exists():
            target = folder / layout.OVERRIDE_OUTPUTS / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            move(root / rel, target)  # outputs may live on another device than the state
    outputs.rollback()
    executed = folder / f"{stage.name}.ipynb"
    os.replace(root / layout.partial_notebook(stage), executed)
    done = build_record(prep, folder / layout.OVERRIDE_OUTPUTS, executed, started, seconds)
    record.write(folder / layout.OVERRIDE_RECORD, done)
    console.say(f"override run: outputs kept apart in {layout.override_dir(stage, prep.run_id)}"
                f"; the declared outputs are untouched", "execute", stage.name)
    return done


def build_record(prep: Prepared, outputs_root: Path, executed: Path, started: str,
                 seconds: float) -> record.ExecuteRecord:
    stage, marker = prep.stage, prep.marker
    written = list(stage.written)
    return record.ExecuteRecord(
        stage=stage.name, run_id=prep.run_id, run_name=prep.run_name,
        experiment_id=prep.experiment_id, tracking_uri=redact(prep.uri),
        invocation_id=record.invocation_id(), start=started, end=record.timestamp(),
        duration_s=round(seconds, 3), key=prep.key, parameters=prep.parameters,
        stage_parameters=prep.stage_parameters, overrides=prep.overrides,
        notebook=stage.notebook, spec=stage.spec_path, spec_sha256=spec_hash(stage),
        git=record.GitState(prep.git["sha"], prep.git["branch"], prep.git["dirty"],
                            prep.git["untracked"]),
        git_diff=prep.git["diff"],
        python=record.PythonEnv(
            version=str(marker.get("python_version", "")),
            implementation=str(marker.get("implementation", "")),
            base_interpreter=str(marker.get("base_python", "")), venv=stage.env_dir,
            venv_python=layout.venv_python(stage.env_dir)),
        env_fingerprint=str(marker.get("fingerprint", "")),
        inputs=prep.inputs, outputs=audit.content_hashes(outputs_root, written),
        outputs_stat=OutputSet.stats_of(outputs_root, written),
        executed_notebook_sha256=sha256_file(executed),
        host=audit.host_info(), tools=audit.tool_versions(), inputs_stat=prep.inputs_stat,
        notebook_runs=[list(r) for r in kernel_tracking.created_runs(
            prep.root / layout.notebook_runs(stage))], restored_from=prep.restored_from,
        env=redacted_env(stage.env), venv_changed=list(prep.venv_changed))


SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)


def redacted_env(env: Mapping[str, str]) -> dict[str, str]:
    """A stage's variables as records keep them: "***" for a name that looks secret, URL
    credentials hidden in the others. Pure."""
    return {name: "***" if SECRET_NAME.search(name) else redact(value)
            for name, value in env.items()}


def site_packages_stamp(env_dir: Path) -> int:
    """The latest mtime of the venv's site-packages folders: an install or an uninstall
    adds or removes a folder there, so an unchanged stamp spares the freeze."""
    found = [*env_dir.glob("lib/python*/site-packages"), *env_dir.glob("Lib/site-packages")]
    return max((p.stat().st_mtime_ns for p in found if p.is_dir()), default=0)


def freeze_changes(before: str, after: str) -> list[str]:
    """What changed between two freezes: "+name==v", "-name==v", "name 1 -> 2". Pure."""
    def pins(text: str) -> dict[str, str]:
        lines = (line.strip() for line in text.splitlines())
        return {re.split(r"[=@ ]", line, maxsplit=1)[0].lower(): line
                for line in lines if line and not line.startswith("#")}

    old, new = pins(before), pins(after)
    out = [f"+{new[n]}" for n in sorted(new.keys() - old.keys())]
    out += [f"{old[n]} -> {new[n]}" for n in sorted(new.keys() & old.keys()) if old[n] != new[n]]
    return out + [f"-{old[n]}" for n in sorted(old.keys() - new.keys())]


def check_venv(root: Path, stage: Stage, stamp: int) -> tuple[str, ...]:
    """After a run: what the notebook installed into (or removed from) its venv, said on the
    console and written into the venv's marker, so the stage runs again next time on a venv
    rebuilt from the spec (and the run is not offered to the stage cache)."""
    env_dir = root / stage.env_dir
    marker = read_marker(env_dir)
    if marker is None or site_packages_stamp(env_dir) == stamp:
        return ()
    from mlops_tasks.base import command
    from mlops_tasks.env.installers import freeze_text, installer_env, installer_for

    installer, _ = installer_for(str(marker.get("options", {}).get("installer", "pip")))
    try:
        now = command.run(installer.freeze_argv(root / layout.venv_python(stage.env_dir)),
                          env=installer_env(), echo=False)
        recorded = (root / layout.freeze_file(stage)).read_text(encoding="utf-8")
    except (MlopsError, OSError):
        return ()
    changes = freeze_changes(recorded, freeze_text(now))
    if changes:
        console.warn(f"the notebook changed its venv {stage.env_dir} during the run ("
                     f"{', '.join(changes)}); installs from a notebook are not reproducible: "
                     f"put the package in 'packages' of {stage.spec_path}. The stage runs "
                     "again next time, on a venv rebuilt from the spec", "execute", stage.name)
        marker["changed_in_run"] = ", ".join(changes)
        atomic_write(env_dir / layout.MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")
    return tuple(changes)


def restore(config: Config, stage: Stage, snap: Snapshot, hit: stage_cache.Hit
            ) -> record.ExecuteRecord:
    """A hit of the stage cache: its verified files put in place through the same output
    transaction as an execution, recorded as a run of this invocation; the notebook does not run."""
    t0, started = time.perf_counter(), record.timestamp()
    plain = kernel_tracking.KernelTracking(config.resolved_tracking_uri(), hooked=False)
    # the run that executed, also when the entry was itself a restore
    prep = prepare(config, stage, {}, snap, plain, restored_from=hit.producer or hit.run_id)
    outputs = OutputSet(config.root, stage)
    try:
        outputs.begin()
        for rel, path in hit.files.items():
            target = config.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            move(path, target)  # downloaded into the state folder; outputs may be elsewhere
        partial = config.root / layout.partial_notebook(stage)
        partial.parent.mkdir(parents=True, exist_ok=True)
        os.replace(hit.notebook, partial)
    except BaseException as err:
        fail(prep, outputs, err, started)
        raise
    done = finish(prep, outputs, started, time.perf_counter() - t0)
    (config.root / layout.running_record(stage)).unlink(missing_ok=True)
    shutil.rmtree(config.root / layout.restore_dir(stage), ignore_errors=True)
    console.say(f"restored from {stage_cache.describe(hit)} in "
                f"{time.perf_counter() - t0:.1f} s; the notebook did not run", "execute",
                stage.name)
    return done


def execute_stage(config: Config, stage: Stage, overrides: Mapping[str, Any],
                  env_only: bool = False) -> record.ExecuteRecord | None:
    """Restore the stage from the shared cache when a complete run has its key (no venv is
    built and no kernel started for that); else make its venv and kernelspec ready and run
    the notebook in its own MLflow run. Outputs are replaced only on success. `env_only`:
    nothing but the stage's environment changed since its last run, so the notebook runs
    only if the rebuilt venv's freeze differs from the one that run had (None when not)."""
    snap = snapshot(config, stage, overrides)
    if not overrides:  # the env is part of the key: a changed spec may have been run already
        hit = cache_hit(config, stage, snap)
        if hit:
            kernels.drop(stage.name)
            return restore(config, stage, replace(snap, key=replace(snap.key, freeze=hit.freeze)),
                           hit)
    tracking.preload(config.resolved_tracking_uri())  # while the venv is made ready
    ready(config, stage)
    snap = replace(snap, key=with_freeze(config.root, stage, snap.key))
    if env_only and same_freeze(config.root, stage, snap.key.freeze):
        console.say(f"{stage.env_dir} was rebuilt and resolves as before (its freeze is the "
                    "last run's): the notebook does not run", "execute", stage.name)
        kernels.drop(stage.name)
        return None
    return execute_notebook(config, stage, overrides, snap)


def cache_hit(config: Config, stage: Stage, snap: Snapshot) -> stage_cache.Hit | None:
    """The verified files of the stage key's cache entry; None on a miss, offline, or where
    the stage may not read the cache. A store that has no entry under the key answers
    without loading the MLflow client (stage_cache.surely_missing)."""
    if not stage_cache.reads(config, stage) or stage_cache.surely_missing(config, stage,
                                                                            snap.key):
        return None
    uri, exp_id, offline = store_or_offline(config)
    if offline:  # prepare says so
        return None
    found = stage_cache.lookup(config, stage, uri, exp_id, snap.key)
    return stage_cache.fetch(config, stage, uri, found) if found else None


def same_freeze(root: Path, stage: Stage, freeze: str) -> bool:
    done = record.read_or_none(record.ExecuteRecord, root / layout.execute_record(stage), root)
    return done is not None and done.key.freeze == freeze


def execute_notebook(config: Config, stage: Stage, overrides: Mapping[str, Any],
                     snap: Snapshot) -> record.ExecuteRecord:
    """Run the notebook in its own MLflow run: the kernel boots while the run is created."""
    from mlops_tasks.run.kernel_launch import stop

    km, kernel = kernels.take(config, stage)
    try:
        prep = prepare(config, stage, overrides, snap, kernel)
    except BaseException:
        stop(km, now=True)
        raise
    outputs = OutputSet(config.root, stage)
    started, t0 = record.timestamp(), time.perf_counter()
    stamp = site_packages_stamp(config.root / stage.env_dir)
    try:
        run(config, prep, outputs, km)
    except BaseException as err:
        fail(prep, outputs, err, started)
        raise
    finally:  # failed or not, a changed venv is said and rebuilt
        changed = check_venv(config.root, stage, stamp)
    prep = replace(prep, venv_changed=changed)
    seconds = time.perf_counter() - t0
    done = (finish_override if overrides else finish)(prep, outputs, started, seconds)
    (config.root / layout.running_record(stage)).unlink(missing_ok=True)
    console.step(f"done in {done.duration_s:.1f} s", "execute", stage.name)
    return done
