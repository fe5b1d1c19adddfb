"""Does the workspace still match each stage's last run: the executed notebook, the outputs,
the env, the code, the parameters, the inputs and the spec, each change in words (`doit
audit`)."""

from __future__ import annotations

from pathlib import Path

from mlops_tasks.base.errors import RecordError
from mlops_tasks.pipeline.checks import describe_parameter_change, interrupted_text
from mlops_tasks.project import layout
from mlops_tasks.project.fingerprint import content_hash, parameters_digest, spec_hash
from mlops_tasks.project.notebooks import code_digest, notebook_code, read_notebook
from mlops_tasks.project.spec import Stage, input_skip
from mlops_tasks.run import record


def _hash(path: Path) -> str | None:
    return content_hash(path)


def last_run(root: Path, stage: Stage) -> tuple[record.LogRecord, record.ExecuteRecord] | None:
    """The stage's last logged run and its execution record, from the local copy."""
    logged = record.read(record.LogRecord, root / layout.log_record(stage), root)
    if logged is None:
        return None
    done = record.read(record.ExecuteRecord, root / logged.local_copy / layout.AUDIT, root)
    return None if done is None else (logged, done)


def env_verdict(root: Path, stage: Stage, done: record.ExecuteRecord) -> str:
    """The venv against the run's freeze; a restored run needs no venv here."""
    freeze = _hash(root / layout.freeze_file(stage))
    if freeze is None and done.restored_from:
        return (f"ok (no venv built here: restored; the freeze of run {done.restored_from} "
                "is logged with it)")
    if freeze == done.key.freeze:
        return "ok"
    return "CHANGED: pip-freeze.txt differs from the run's (venv rebuilt or edited)"


def compare(root: Path, stage: Stage, done: record.ExecuteRecord) -> list[tuple[str, str]]:
    """What still matches the run: (what, "ok" or what changed)."""
    checks: list[tuple[str, str]] = []
    if (root / layout.previous_outputs(stage)).exists():
        checks.append(("interrupted run", "BROKEN: " + interrupted_text(stage)))
    executed = _hash(root / layout.executed_notebook(stage))
    checks.append(("executed notebook", "ok" if executed == done.executed_notebook_sha256
                   else "CHANGED or missing since the run"))
    changed = [rel for rel, sha in done.outputs.items() if _hash(root / rel) != sha]
    checks.append(("outputs", "ok" if not changed else "CHANGED: " + ", ".join(changed)))
    checks.append(("env", env_verdict(root, stage, done)))
    code = code_digest(notebook_code(read_notebook(root / stage.notebook)))
    checks.append(("notebook code", "ok" if code == done.key.code else
                   f"CHANGED: {stage.notebook} was edited since the run"))
    return checks + compare_spec(root, stage, done)


def compare_spec(root: Path, stage: Stage, done: record.ExecuteRecord
                 ) -> list[tuple[str, str]]:
    """The rest of what the stage key covers (parameters, inputs) and the spec itself."""
    checks: list[tuple[str, str]] = []
    if parameters_digest(dict(stage.parameters)) == done.key.parameters:
        checks.append(("parameters", "ok"))
    else:
        change = describe_parameter_change(done.stage_parameters, dict(stage.parameters))
        checks.append(("parameters", f"CHANGED in {stage.spec_path}: {change}"))
    declared = {str(rel): rel for rel in stage.inputs}  # an input folder knows what to skip
    changed = [rel for rel in sorted(set(done.inputs) | set(declared))
               if content_hash(root / rel, input_skip(declared.get(rel, rel)))
               != done.inputs.get(rel)]
    checks.append(("inputs", "ok" if not changed else "CHANGED: " + ", ".join(changed)))
    checks.append(("spec", "ok" if spec_hash(stage) == done.spec_sha256 else
                   f"CHANGED: {stage.spec_path} says something else than at the run"))
    return checks


def overrides_since(root: Path, stage: Stage, done: record.ExecuteRecord) -> list[str]:
    """Override runs (`--param`) made after the last real run: listed, never counted."""
    lines = []
    for path in sorted((root / layout.overrides_of(stage)).glob(
            f"*/{layout.OVERRIDE_RECORD}")):
        try:
            other = record.read(record.ExecuteRecord, path, root)
        except RecordError:
            continue
        if other is not None and other.start >= done.start:
            given = ", ".join(f"{k}={v!r}" for k, v in other.overrides.items())
            lines.append(f"    override run {other.run_id} at {other.start}: {given} (its "
                         f"outputs are in {path.parent.relative_to(root).as_posix()})")
    return lines


def audit_stage(root: Path, stage: Stage) -> tuple[list[str], bool]:
    """Report lines for one stage and whether everything matches its record."""
    try:
        found = last_run(root, stage)
    except RecordError as err:
        return [f"{stage.name}: {err}"], False
    if found is None:
        return [f"{stage.name}: no logged run yet (run `doit run {stage.name}`)"], False
    logged, done = found
    head = (f"{stage.name}: run {done.run_id} at {done.start}, git {done.git.sha[:10]}"
            f"{' (dirty)' if done.git.dirty else ''}, Python {done.python.version}")
    checks = compare(root, stage, done)
    drift = logged.env_drift
    drift_text = ("first run" if drift is None else
                  "none" if not (drift.added or drift.removed or drift.changed) else
                  f"{len(drift.added)} added, {len(drift.removed)} removed, "
                  f"{len(drift.changed)} changed since the run before")
    lines = [head] + [f"    {name}: {state}" for name, state in checks]
    lines += [f"    restored from run {done.restored_from} (stage cache; the notebook did not "
              "run here)"] if done.restored_from else []
    lines.append(f"    env drift at that run: {drift_text}")
    lines += overrides_since(root, stage, done)
    return lines, all(state.startswith("ok") for _, state in checks)
