"""`doit reproduce RUN_ID`: rebuild a recorded run in an isolated folder (its commit and diff,
its inputs found by content, its exact freeze, its parameters) and compare what it writes
with what the run recorded. The workspace is never written to: everything happens in the
isolated folder, and the new run goes to the tracking store tagged `mlops.reproduces`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_tasks.base import command, console
from mlops_tasks.base.errors import CommandFailed, MlopsError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.redact import redact
from mlops_tasks.env.install_errors import diagnose
from mlops_tasks.env.installers import installer_env, installer_for, wheel_sources
from mlops_tasks.env.interpreters import Resolver
from mlops_tasks.env.kernelspecs import kernelspec
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import content_hash
from mlops_tasks.project.load import load_project
from mlops_tasks.project.matrix import expand
from mlops_tasks.project.spec import Stage, parse_stage
from mlops_tasks.run import record
from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import kernel_context as kernel_tracking
from mlops_tasks.tracking import tags as tag

IDENTICAL, SAME_METRICS, DIFFERENT, FAILED = (
    "identical", "same metrics, different bytes", "different", "could not reproduce")


class CannotReproduce(MlopsError):
    """Something the run used cannot be had again: the message names it and where it was
    looked for."""


@dataclass(frozen=True)
class Recorded:
    """A recorded run as the local records hold it, or as the tracking store does (made on
    another machine, or its local record gone)."""

    done: record.ExecuteRecord
    copy: Path  # its local copy, .mlops/runs/<stage>/<run_id>/, or its files fetched
    store_run: str = ""  # the store's run it was fetched from ("": a local record)

    @property
    def logged_as(self) -> str:
        """The run id the user named and the store holds its metrics under."""
        return self.store_run or self.done.run_id


@dataclass
class Outcome:
    """What a reproduction found: per file both hashes, per metric both values."""

    run_id: str
    stage: str = ""
    verdict: str = FAILED
    reason: str = ""
    files: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    new_run_id: str = ""
    folder: str = ""  # kept with --keep
    record_from: str = ""  # where the run's record was read: local records or the store
    metrics_from: str = ""  # where the recorded metrics were read
    notes: list[str] = field(default_factory=list)  # what the reproduction did without

    @property
    def exit_code(self) -> int:
        return {IDENTICAL: 0, SAME_METRICS: 1, DIFFERENT: 1}.get(self.verdict, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "stage": self.stage, "verdict": self.verdict,
            "reason": self.reason, "new_run_id": self.new_run_id, "folder": self.folder or None,
            "record_from": self.record_from or None, "metrics_from": self.metrics_from or None,
            "notes": self.notes,
            "files": {rel: {"recorded": old, "new": new, "identical": old == new}
                      for rel, (old, new) in self.files.items()},
            "metrics": {name: {"recorded": was, "new": now, "identical": was == now}
                        for name, (was, now) in self.metrics.items()},
        }

    def lines(self) -> list[str]:
        """The outcome in words. Pure."""
        out = [f"reproduce {self.run_id}" + (f" (stage '{self.stage}')" if self.stage else "")]
        if self.record_from:
            out.append(f"  record from {self.record_from}")
        for rel, (old, new) in self.files.items():
            state = "identical" if old == new else "DIFFERENT"
            out.append(f"  {rel}: {state} (recorded {_short(old)}, new {_short(new)})")
        for name, (was, now) in self.metrics.items():
            state = "identical" if was == now else "DIFFERENT"
            out.append(f"  metric {name}: {state} (recorded {was}, new {now})")
        if self.metrics_from:
            out.append(f"  recorded metrics from {self.metrics_from}")
        out += [f"  note: {note}" for note in self.notes]
        if self.new_run_id:
            out.append(f"  new run: {self.new_run_id} (tag {tag.REPRODUCES}={self.run_id})")
        if self.folder:
            out.append(f"  kept in {self.folder}")
        verdict = self.verdict + (f": {self.reason}" if self.reason else "")
        return [*out, f"verdict: {verdict}"]


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "missing"


def decide(files: dict[str, tuple[str | None, str | None]],
           metrics: dict[str, tuple[float | None, float | None]]) -> tuple[str, str]:
    """The verdict and, when not identical, what differs. Pure."""
    bytes_differ = [rel for rel, (old, new) in files.items() if old != new]
    metrics_differ = [name for name, (old, new) in metrics.items() if old != new]
    if metrics_differ:
        return DIFFERENT, "metrics differ: " + ", ".join(metrics_differ)
    if not bytes_differ:
        return IDENTICAL, ""
    if metrics:
        return SAME_METRICS, "files differ: " + ", ".join(bytes_differ)
    return DIFFERENT, "files differ: " + ", ".join(bytes_differ)


# -- finding the run --------------------------------------------------------------------------


def find_run(root: Path, ref: str) -> Recorded:
    """The run `ref` names: a run id in the local records, or a stage (its last logged run)."""
    runs = root / layout.STATE / "runs"
    for audit in sorted(runs.glob(f"*/{ref}/{layout.AUDIT}")):
        done = record.read(record.ExecuteRecord, audit, root)
        if done is not None:
            return Recorded(done, audit.parent)
    logged = _stage_log(root, ref)
    if logged is not None:
        done = record.read(record.ExecuteRecord, root / logged.local_copy / layout.AUDIT, root)
        if done is not None:
            return Recorded(done, root / logged.local_copy)
    raise CannotReproduce(f"no recorded run {ref!r}: looked for {runs.relative_to(root)}/*/"
                          f"{ref}/{layout.AUDIT} and for a stage of that name with a logged "
                          f"run; run ids are the folder names under {runs.relative_to(root)}/")


def _stage_log(root: Path, name: str) -> record.LogRecord | None:
    try:
        stage = load_project(root).stage(name)
    except (MlopsError, KeyError, StopIteration):
        return None
    return record.read_or_none(record.LogRecord, root / layout.log_record(stage), root)


def store_problem(config: Config) -> str | None:
    """Why the configured tracking store cannot be reached now, redacted (None: it can)."""
    uri = config.resolved_tracking_uri()
    why = tracking.unreachable(uri, config.experiment_name())
    return None if why is None else f"the tracking store at {redact(uri)} cannot be " \
        f"reached ({redact(why)})"


def locate(config: Config, ref: str, folder: Path) -> tuple[Recorded, str]:
    """The run `ref` names, from the local records, else from the configured tracking store
    (its record fetched into `folder`); and where it was found, in words."""
    try:
        run = find_run(config.root, ref)
        return run, found_in(config, run)
    except CannotReproduce as local_miss:
        problem = store_problem(config)
        if problem:
            raise CannotReproduce(
                f"{local_miss}; {problem}, so a run made elsewhere cannot be fetched: start "
                "the server or check the network (or point MLFLOW_TRACKING_URI or "
                "tracking_uri in [tool.mlops_tasks] at the store that holds the run), then "
                "try again") from None
        try:
            run = from_store(config.resolved_tracking_uri(), ref, folder)
        except MlopsError as err:
            raise CannotReproduce(f"{local_miss}; nor is it a stage run of the tracking "
                                  f"store ({err})") from None
    return run, found_in(config, run)


def found_in(config: Config, run: Recorded) -> str:
    """Where a run's record was read, in words."""
    if run.store_run:
        return f"the tracking store at {redact(config.resolved_tracking_uri())}"
    return f"the local records ({run.copy.relative_to(config.root).as_posix()})"


def from_store(uri: str, run_id: str, folder: Path) -> Recorded:
    """Run `run_id` as its artifacts in the store hold it: audit.json, the freeze, the diff
    and the untracked files it kept, fetched into `folder` where a local copy has them."""
    audit = tracking.download(uri, run_id, layout.AUDIT, folder)
    done = record.read(record.ExecuteRecord, audit)
    if done is None:
        raise CannotReproduce(f"run {run_id} has no {layout.AUDIT}")
    got = tracking.download(uri, run_id, f"env/{layout.FREEZE}", folder)
    got.replace(folder / layout.FREEZE)
    data = json.loads(audit.read_text(encoding="utf-8"))
    if (data.get("git") or {}).get("diff_file"):
        tracking.download(uri, run_id, "git.diff", folder)
    for rel in done.git.untracked:  # those it did not keep are named by check_untracked
        try:
            tracking.download(uri, run_id, f"untracked/{rel}", folder)
        except MlopsError:
            continue
    return Recorded(done, folder, run_id)


def all_runs(root: Path) -> list[Recorded]:
    found = []
    for audit in sorted((root / layout.STATE / "runs").glob(f"*/*/{layout.AUDIT}")):
        done = record.read_or_none(record.ExecuteRecord, audit, root)
        if done is not None:
            found.append(Recorded(done, audit.parent))
    return found


# -- the isolated tree ------------------------------------------------------------------------


def check_untracked(run: Recorded) -> None:
    """An untracked file the run depended on is usable only when it was kept with the run
    (an input is found by its content instead)."""
    lost = [rel for rel in run.done.git.untracked
            if rel not in run.done.inputs and not (run.copy / "untracked" / rel).exists()
            and not (run.copy / Path(rel).name).exists()]
    if lost:
        raise CannotReproduce(
            f"run {run.done.run_id} used file(s) git did not track and the run did not keep: "
            f"{', '.join(lost)}; commit them (or declare them as inputs) and run the stage "
            "again, then reproduce that run")


def check_out(root: Path, run: Recorded, tree: Path) -> None:
    """The recorded commit in `tree` (a detached worktree), its recorded diff applied, the
    untracked files the run kept copied in."""
    done = run.done
    try:
        command.run(["git", "-C", str(root), "worktree", "add", "--detach", "--force",
                     str(tree), done.git.sha], echo=False)
    except CommandFailed as err:
        raise CannotReproduce(f"commit {done.git.sha} of run {done.run_id} cannot be checked "
                              f"out ({err.stderr_tail.strip()}); fetch it into this "
                              "repository (git fetch) and try again") from None
    diff = run.copy / "git.diff"
    if done.git.dirty and diff.is_file() and diff.read_text(encoding="utf-8").strip():
        try:
            command.run(["git", "apply", "--whitespace=nowarn", str(diff.resolve())],
                        cwd=tree, echo=False)
        except CommandFailed as err:
            raise CannotReproduce(f"the recorded diff of run {done.run_id} ({diff}) does not "
                                  f"apply to {done.git.sha}: {err.stderr_tail.strip()}") from None
    kept = run.copy / "untracked"
    for rel in done.git.untracked:
        source = kept / rel if (kept / rel).exists() else run.copy / Path(rel).name
        if source.is_file() and not (tree / rel).exists():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, tree / rel)


def remove_tree(root: Path, tree: Path) -> None:
    try:
        command.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                    echo=False)
    except CommandFailed:
        shutil.rmtree(tree, ignore_errors=True)
    try:
        command.run(["git", "-C", str(root), "worktree", "prune"], echo=False)
    except CommandFailed as err:
        console.notice(f"git worktree prune failed: {err}")


# -- inputs by content ------------------------------------------------------------------------


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def fetch_inputs(config: Config, run: Recorded, tree: Path, work: Path,
                 provided: Mapping[str, Path] | None = None) -> list[str]:
    """Each recorded input, by its hash: from an upstream run reproduced first (`provided`:
    recorded hash -> the file that reproduction wrote, --chain), from the workspace, else
    from the recorded outputs of a run that produced it (a local record's, then any run of
    the stage that writes it in the tracking store, stage-cache entries included). A
    missing one is named with every place looked at. Returns the inputs whose reproduced
    upstream wrote other content."""
    root, uri, other = config.root, config.resolved_tracking_uri(), []
    for rel, sha in run.done.inputs.items():
        if sha is None:  # absent when the run started: absent now
            continue
        if provided and sha in provided:
            _place(provided[sha], tree / rel)
            if content_hash(tree / rel) != sha:
                other.append(rel)
            continue
        if content_hash(root / rel) == sha:
            _place(root / rel, tree / rel)
            continue
        looked = [f"the workspace's {rel} (" + ("missing" if content_hash(root / rel) is None
                                               else "other content") + ")"]
        if not (_from_producers(root, rel, sha, tree, uri, work, looked)
                or _from_store_runs(config, run, rel, sha, tree, work, looked)):
            raise CannotReproduce(
                f"input {rel} of run {run.logged_as} (sha256 {sha[:12]}) was not found; "
                f"looked in {'; '.join(looked)}. Put that content back at {rel}, or rerun the "
                "stage that made it from its recorded commit")
    return other


def _from_producers(root: Path, rel: str, sha: str, tree: Path, uri: str, work: Path,
                    looked: list[str]) -> bool:
    producers = [r for r in all_runs(root)
                 if any(h == sha for h in r.done.outputs.values())]
    if not producers:
        looked.append("the outputs of every locally recorded run (none has that hash)")
    for producer in producers:
        name = next(o for o, h in producer.done.outputs.items() if h == sha)
        dest = work / "inputs" / producer.done.run_id
        try:
            got = tracking.download(uri, producer.done.run_id, f"outputs/{name}", dest)
        except MlopsError as err:
            looked.append(f"output {name} of run {producer.done.run_id} ({err})")
            continue
        if content_hash(got) != sha:
            looked.append(f"output {name} of run {producer.done.run_id} (other content)")
            continue
        _place(got, tree / rel)
        return True
    return False


STORE_CANDIDATES = 200  # runs of a producing stage looked at in the store, oldest first


def _from_store_runs(config: Config, run: Recorded, rel: str, sha: str, tree: Path,
                     work: Path, looked: list[str]) -> bool:
    """The input from a run in the store of a stage that writes it at the recorded commit,
    whose recorded (or signed) output hash is `sha`: made on another machine, or its local
    record gone."""
    uri, problem = config.resolved_tracking_uri(), store_problem(config)
    if problem:
        looked.append(problem)
        return False
    writers = [s.name for s in load_project(tree).stages if rel in s.written]
    if not writers:
        looked.append(f"the tracking store (no stage of commit {run.done.git.sha[:10]} "
                      f"writes {rel})")
        return False
    for name in writers:
        try:
            found = tracking.find_tagged_runs(uri, run.done.experiment_id, {tag.STAGE: name},
                                              STORE_CANDIDATES)
        except MlopsError as err:
            looked.append(str(err))
            continue
        for candidate in found:
            if candidate["tags"].get(tag.REPRODUCES) or not _store_output_is(
                    uri, candidate, rel, sha, work):
                continue
            got = _download_output(uri, candidate["run_id"], rel, sha, work, looked)
            if got is not None:
                _place(got, tree / rel)
                return True
        looked.append(f"the {len(found)} finished run(s) of stage '{name}' in the tracking "
                      f"store at {redact(uri)}, stage-cache entries included (none recorded "
                      "that hash)")
    return False


def _store_output_is(uri: str, found: Mapping[str, Any], rel: str, sha: str, work: Path
                     ) -> bool:
    """The run recorded `sha` for output `rel`: in its signed entry, else its audit.json."""
    from mlops_tasks.run.stage_cache import signed_outputs

    signed = signed_outputs(found["tags"])
    if signed is not None:
        return signed.get(rel) == sha
    try:
        audit = tracking.download(uri, found["run_id"], layout.AUDIT,
                                  work / "records" / found["run_id"])
        outputs = json.loads(audit.read_text(encoding="utf-8")).get("outputs") or {}
    except (MlopsError, OSError, ValueError, AttributeError):
        return False
    return bool(outputs.get(rel) == sha)


def _download_output(uri: str, run_id: str, rel: str, sha: str, work: Path,
                     looked: list[str]) -> Path | None:
    try:
        got = tracking.download(uri, run_id, f"outputs/{rel}", work / "inputs" / run_id)
    except MlopsError as err:
        looked.append(f"output {rel} of run {run_id} ({err})")
        return None
    if content_hash(got) != sha:
        looked.append(f"output {rel} of run {run_id} (other content)")
        return None
    return got


# -- the environment --------------------------------------------------------------------------


def recorded_pins(freeze: str) -> list[str]:
    """The requirement lines of a recorded pip-freeze.txt (no header, no comments). Pure."""
    return [line.strip() for line in freeze.splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "-"))]


def build_env(config: Config, run: Recorded, work: Path) -> tuple[Path, str]:
    """A venv in `work` from the recorded Python version and freeze, pin by pin, no
    resolution; (its python, the version). Fails before anything runs."""
    done = run.done
    freeze_file = run.copy / layout.FREEZE
    if not freeze_file.is_file():
        raise CannotReproduce(f"run {done.run_id} kept no {layout.FREEZE} in {run.copy}: its "
                              "environment is unknown")
    pins = work / "pins.txt"
    pins.write_text("\n".join(recorded_pins(freeze_file.read_text("utf-8"))) + "\n", "utf-8")
    interpreter = Resolver().resolve(done.stage, done.python.version, None)
    installer, _ = installer_for(config.installer)
    env_dir = work / "venv"
    venv_py = Path(layout.venv_python(str(env_dir)))
    sources, offline = wheel_sources(config)
    console.step(f"building the recorded environment (Python {interpreter.version}, "
                 f"{installer.name}{', offline' if offline else ''})", "reproduce", done.stage)
    try:
        command.run(installer.venv_argv(interpreter.path, env_dir), env=installer_env())
        command.run(installer.install_argv(venv_py, pins, True) + sources, env=installer_env())
    except CommandFailed as err:
        why = diagnose(err.stderr_tail)
        names = ", ".join(why.names) or "a pin"
        where = f"{config.wheels_cache}/" if offline else "the package index"
        raise CannotReproduce(
            f"the recorded freeze of run {done.run_id} cannot be installed: {names} not "
            f"available from {where} ({err.stderr_tail.strip().splitlines()[-1:]}); fill the "
            "cache with `doit wheels` on a machine online (or pip download that exact "
            "version into it); nothing was executed") from None
    check_freeze(done, recorded_pins(freeze_file.read_text("utf-8")),
                 command.run(installer.freeze_argv(venv_py), env=installer_env(), echo=False))
    return venv_py, interpreter.version


def freeze_differences(recorded: list[str], rebuilt: str) -> list[str]:
    """The pins of the recorded freeze the rebuilt venv does not have, and what it has that
    the record does not ("+x==1", "-y==2"). Pure."""
    def names(lines: list[str]) -> set[str]:
        return {line.replace("_", "-").lower() for line in lines}

    old, new = names(recorded), names(recorded_pins(rebuilt))
    return sorted(f"-{p}" for p in old - new) + sorted(f"+{p}" for p in new - old)


def check_freeze(done: record.ExecuteRecord, recorded: list[str], rebuilt: str) -> None:
    """The rebuilt venv must hold exactly the recorded freeze, or nothing runs."""
    differs = freeze_differences(recorded, rebuilt)
    if differs:
        raise CannotReproduce(
            f"the venv rebuilt for run {done.run_id} does not hold its recorded freeze "
            f"({', '.join(differs[:8])}{' ...' if len(differs) > 8 else ''}); a pin may name "
            "a package the installer renamed or a build that is not reproducible; nothing "
            "was executed")


# -- executing and comparing ------------------------------------------------------------------

KERNEL_CONTEXT = ".mlops/reproduce-kernel-context.json"  # in the isolated tree
NOTEBOOK_RUNS = ".mlops/reproduce-notebook-runs.txt"


def tree_stage(tree: Path, name: str) -> Stage:
    """The stage as the recorded commit (and diff) defines it."""
    try:
        project = load_project(tree)
    except MlopsError as err:
        raise CannotReproduce(f"the project at the recorded commit does not load: {err}") from None
    found = [s for s in project.stages if s.name == name]
    if not found:
        raise CannotReproduce(f"the recorded commit has no stage {name!r}")
    return found[0]


def start_kernel(config: Config, stage: Stage, tree: Path, work: Path, venv_py: Path,
                 version: str) -> tuple[Any, kernel_tracking.KernelTracking]:
    """A kernel of the rebuilt env, from a kernelspec in the isolated folder's Jupyter dir."""
    from mlops_tasks.run.kernel_launch import kernel_manager, launch, shell_env

    name = f"mlops-reproduce-{stage.name}"
    kernels = work / "jupyter" / "kernels"
    spec = kernelspec(stage, os.path.abspath(venv_py), version)
    atomic_write(kernels / name / "kernel.json", json.dumps(spec, indent=1) + "\n")
    kernel = kernel_tracking.for_stage(tree, work / "pins.txt", config.resolved_tracking_uri())
    env = {**stage.env, **kernel.launch_env(tree, stage.name, NOTEBOOK_RUNS, KERNEL_CONTEXT)}
    folder = os.path.abspath(tree / (os.path.dirname(stage.notebook) or "."))
    env.update(shell_env(os.path.abspath(venv_py.parent.parent), os.environ.get("PATH", ""),
                         (folder,), env.get("PYTHONPATH", ""), os.name == "nt"))
    km = kernel_manager(stage.name, name, kernels, env, tuple(tracking.ORCHESTRATOR_ONLY_ENV),
                        None, tree, kernel.kernel_args(), tree / stage.workdir)
    launch(km, tree / stage.workdir, work / "kernel.log")
    return km, kernel.with_store_served(config.root)


def injected(done: record.ExecuteRecord, run_id: str, uri: str) -> dict[str, Any]:
    """The recorded parameters as injected, with the new run's context (a spec parameter of
    the same name keeps its recorded value). Pure."""
    fresh = {"mlflow_run_id": run_id, "mlflow_tracking_uri": uri}
    return {**done.parameters, **{k: v for k, v in fresh.items()
                                  if k not in done.stage_parameters}}


def execute(config: Config, run: Recorded, tree: Path, work: Path, venv_py: Path,
            version: str) -> str:
    """The recorded notebook on the rebuilt env, in its own new MLflow run; its id ("" when
    the store cannot be reached: the notebook runs unrecorded)."""
    from mlops_tasks.run.kernel_launch import stop
    from mlops_tasks.run.lifecycle import local_run_id
    from mlops_tasks.run.papermill_adapter import run_notebook

    done, uri = run.done, config.resolved_tracking_uri()
    stage = tree_stage(tree, done.stage)
    km, kernel = start_kernel(config, stage, tree, work, venv_py, version)
    run_id = ""
    try:
        if not store_problem(config):
            run_id = tracking.start_run(uri, done.experiment_id,
                                        f"{stage.name}@{done.git.sha[:7]} (reproduce)",
                                        {tag.REPRODUCES: run.logged_as, tag.STAGE: stage.name,
                                         tag.GIT_SHA: done.git.sha})
        if kernel.hooked and run_id:
            kernel_tracking.write_context(tree / KERNEL_CONTEXT,
                                          kernel.context(done.experiment_id, run_id))
    except BaseException:
        stop(km, now=True)
        raise
    console.step(f"executing {done.notebook} in run {run_id or 'none (no store)'}",
                 "reproduce", stage.name)
    for rel in stage.written:  # as the output transaction leaves them: parents exist
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
    executed = work / f"{stage.name}.ipynb"
    try:
        run_notebook(stage=stage.name, notebook=tree / done.notebook, output=executed,
                     failed=work / f"{stage.name}.failed.ipynb", km=km,
                     parameters=injected(done, run_id or local_run_id(),
                                         redact(kernel.kernel_uri)), cwd=tree,
                     timeout=stage.timeout, allow_early_exit=stage.allow_early_exit,
                     spec_path=stage.spec_path, log=work / "kernel.log", workdir=stage.workdir)
    except MlopsError as err:
        if run_id:
            tracking.close_run(uri, run_id, {tag.FAILED: "true"}, "FAILED")
        raise CannotReproduce(f"the notebook failed: {err}") from None
    return run_id


def compare(config: Config, run: Recorded, tree: Path, work: Path, outcome: Outcome) -> None:
    """Both hashes of every declared output and metrics file, both values of every metric;
    the verdict; the new run logged with its metrics and verdict."""
    from mlops_tasks.run.log import read_metrics

    done, uri = run.done, config.resolved_tracking_uri()
    stage = tree_stage(tree, done.stage)
    outcome.files = {rel: (sha, content_hash(tree / rel)) for rel, sha in done.outputs.items()}
    new = read_metrics(tree, stage, strict=False)
    old_all, outcome.metrics_from = recorded_metrics(config, run, stage)
    if old_all is None:
        outcome.notes.append("metrics not compared: " + outcome.metrics_from)
        outcome.metrics_from, old_all, new_all = "", {}, {}
    elif outcome.new_run_id:
        new_all = {**tracking.run_metrics(uri, outcome.new_run_id), **new}
    else:
        new_all = new
    outcome.metrics = {name: (old_all.get(name), new_all.get(name))
                       for name in sorted(old_all.keys() | new_all.keys())}
    outcome.verdict, outcome.reason = decide(outcome.files, outcome.metrics)
    if not outcome.new_run_id:
        outcome.notes.append(f"no new run recorded: {store_problem(config)}")
        return
    executed = work / f"{stage.name}.ipynb"
    tracking.log_run(uri, outcome.new_run_id, params=done.stage_parameters, metrics=new,
                     tags={tag.REPRODUCE_VERDICT: outcome.verdict},
                     artifacts=[(executed, "notebook")] if executed.is_file() else [])


def recorded_metrics(config: Config, run: Recorded, stage: Stage
                     ) -> tuple[dict[str, float] | None, str]:
    """The run's recorded metrics and where they were read: the tracking store; when it
    cannot be reached (or lacks the run), the local record of the run's logging, else its
    metrics files in the workspace whose content is the recorded one. (None, why) when no
    place holds them."""
    uri = config.resolved_tracking_uri()
    why = store_problem(config)
    if why is None:
        try:
            return (tracking.run_metrics(uri, run.logged_as),
                    f"the tracking store at {redact(uri)} (run {run.logged_as})")
        except MlopsError as err:
            why = str(err)
    found = local_metrics(config.root, run, stage)
    if found is not None:
        return found[0], f"{found[1]}, as {why}"
    return None, f"{why}, and no local record holds the metrics of run {run.logged_as}"


def local_metrics(root: Path, run: Recorded, stage: Stage
                  ) -> tuple[dict[str, float], str] | None:
    """The run's metrics as this workspace recorded them: the stage's log record when it is
    of this run, else the metrics files whose content is the recorded one; and where."""
    logged = record.read_or_none(record.LogRecord, root / layout.log_record(stage), root)
    ids = {run.done.run_id, run.logged_as}
    if logged is not None and (logged.run_id in ids or logged.recreated_from in ids):
        return dict(logged.metrics), f"the local record {layout.log_record(stage)}"
    values: dict[str, float] = {}
    files = [rel for rel in stage.metrics if run.done.outputs.get(rel)
             and content_hash(root / rel) == run.done.outputs.get(rel)]
    for rel in files:
        try:
            data = json.loads((root / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        values.update({str(k): float(v) for k, v in data.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)})
    if not files or len(files) < len([rel for rel in stage.metrics if run.done.outputs.get(rel)]):
        return None
    return values, "the workspace's " + ", ".join(files) + " (the recorded content)"


def _prepare_folder(root: Path, work: Path, chosen: bool) -> None:
    if work.exists() and any(work.iterdir()):
        if chosen:
            raise CannotReproduce(f"--into {work} is not empty; name an empty or new folder")
        remove_tree(root, work / "tree")  # left by an earlier --keep
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)


def reproduce(config: Config, ref: str, into: Path | None = None, keep: bool = False
              ) -> Outcome:
    """Rebuild run `ref` in an isolated folder and compare; the outcome says why not when
    it cannot be done. The folder is removed unless `keep`."""
    outcome = Outcome(ref)
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as fetched:
        try:
            run, found = locate(config, ref, Path(fetched))
        except MlopsError as err:
            outcome.verdict, outcome.reason = FAILED, str(err)
            return outcome
        return reproduce_run(config, run, into, keep, found=found)


def reproduce_run(config: Config, run: Recorded, into: Path | None = None, keep: bool = False,
                  provided: Mapping[str, Path] | None = None,
                  produced: dict[str, Path] | None = None, found: str = "") -> Outcome:
    """One run rebuilt and compared. `provided`: inputs by recorded hash from upstream runs
    reproduced first; `produced`, when given, receives this run's new outputs by their
    recorded hashes (the folder is then left for the caller to remove); `found`: where its
    record was read, in words."""
    root = config.root
    outcome = Outcome(run.logged_as, run.done.stage, record_from=found)
    made: Path | None = None  # the folder this made, removed unless kept
    work = (into or work_folder(root, run.done.run_id)).absolute()
    try:
        check_untracked(run)
        _prepare_folder(root, work, into is not None)
        made = work
        tree = work / "tree"
        check_out(root, run, tree)
        other = fetch_inputs(config, run, tree, work, provided)  # before the venv: cheap
        venv_py, version = build_env(config, run, work)
        outcome.new_run_id = execute(config, run, tree, work, venv_py, version)
        compare(config, run, tree, work, outcome)
        if other and outcome.verdict == IDENTICAL:  # cannot be: the inputs differed
            outcome.verdict = DIFFERENT
        if other:
            outcome.reason = (f"its reproduced upstream wrote other content for "
                              f"{', '.join(other)}; " + outcome.reason).rstrip("; ")
        if produced is not None:
            produced.update({sha: tree / rel for rel, sha in run.done.outputs.items()
                             if sha and (tree / rel).exists()})
    except MlopsError as err:
        outcome.verdict, outcome.reason = FAILED, str(err)
    finally:
        if made is not None and made.exists():
            if keep:
                outcome.folder = str(made)
            elif produced is None:
                discard(root, made)
    remember(root, outcome, config.resolved_tracking_uri())
    return outcome


def work_folder(root: Path, run_id: str) -> Path:
    """Where a run is rebuilt unless --into says otherwise."""
    return root / layout.STATE / "reproduce" / run_id


def discard(root: Path, work: Path) -> None:
    remove_tree(root, work / "tree")
    shutil.rmtree(work, ignore_errors=True)


def upstream_runs(config: Config, run: Recorded, folder: Path) -> list[Recorded]:
    """The runs that produced `run`'s inputs, found by content among the local records (the
    oldest run with that output wins), else among the finished runs of the tracking store
    (made on another machine, or their local records gone: fetched into `folder`), each
    once, upstream first: graph order."""
    runs = sorted(all_runs(config.root), key=lambda r: r.done.start)
    store = _UpstreamStore(config, folder)
    ordered: list[Recorded] = []
    seen = {run.done.run_id}

    def visit(current: Recorded) -> None:
        for rel, sha in current.done.inputs.items():
            if not sha:
                continue
            producer = next((r for r in runs if r.done.outputs.get(rel) == sha), None)
            producer = producer or next((r for r in runs if sha in r.done.outputs.values()),
                                        None)
            producer = producer or store.producer(current, rel, sha)
            if producer is None or producer.done.run_id in seen:
                continue
            seen.add(producer.done.run_id)
            visit(producer)
            ordered.append(producer)

    visit(run)
    return ordered


class _UpstreamStore:
    """Upstream runs the local records lack, looked up in the tracking store: among the
    runs of the stages that write the input at the recorded commit, the oldest that executed
    (not restored, not a reproduction) and recorded that content."""

    def __init__(self, config: Config, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.problem: str | None = ""  # "": not asked yet; None: reachable
        self.written: dict[str, dict[str, list[str]]] = {}  # commit -> path -> its writers

    def reachable(self) -> bool:
        if self.problem == "":
            self.problem = store_problem(self.config)
            if self.problem:
                console.notice(f"{self.problem}: upstream runs are looked for among the local "
                               "records only")
        return self.problem is None

    def producer(self, current: Recorded, rel: str, sha: str) -> Recorded | None:
        sha_commit = current.done.git.sha
        if sha_commit not in self.written:
            self.written[sha_commit] = written_at(self.config, sha_commit)
        writers = self.written[sha_commit].get(rel, [])
        if not writers or not self.reachable():
            return None
        uri = self.config.resolved_tracking_uri()
        for name in writers:
            try:
                found = tracking.find_tagged_runs(uri, current.done.experiment_id,
                                                  {tag.STAGE: name}, STORE_CANDIDATES)
            except MlopsError as err:
                console.notice(f"upstream runs of stage '{name}' in the tracking store: {err}")
                continue
            for candidate in found:
                tags = candidate["tags"]
                if tags.get(tag.REPRODUCES) or tags.get(tag.RESTORED_FROM) or \
                        not _store_output_is(uri, candidate, rel, sha, self.folder):
                    continue
                try:
                    return from_store(uri, candidate["run_id"],
                                      self.folder / "upstream" / candidate["run_id"])
                except MlopsError as err:
                    console.notice(f"run {candidate['run_id']} wrote {rel} but its record "
                                   f"cannot be read from the tracking store: {err}")
        return None


def written_at(config: Config, sha: str) -> dict[str, list[str]]:
    """Each output or metrics file the specs at commit `sha` declare, with the stages that
    write it (read with git, nothing checked out); the workspace's specs when that commit's
    cannot be read."""
    try:
        names = command.run(["git", "-C", str(config.root), "ls-tree", "-r", "--name-only",
                             sha, "--", config.specs_dir], echo=False).splitlines()
        stages = []
        for name in names:
            if name.endswith((".yaml", ".yml")):
                text = command.run(["git", "-C", str(config.root), "show", f"{sha}:{name}"],
                                   echo=False)
                with contextlib.suppress(MlopsError):  # a spec that no longer parses
                    stages += expand(parse_stage(text, name))
    except CommandFailed:
        try:
            stages = list(load_project(config.root).stages)
        except MlopsError:
            return {}
    written: dict[str, list[str]] = {}
    for stage in stages:
        for rel in stage.written:
            written.setdefault(rel, []).append(stage.name)
    return written


def reproduce_chain(config: Config, ref: str, keep: bool = False) -> list[Outcome]:
    """--chain: the runs upstream of `ref` first, in graph order, each feeding what it wrote
    to the runs below it, then `ref` itself. One outcome per run, `ref`'s last."""
    with tempfile.TemporaryDirectory(prefix="mlops-reproduce-") as fetched:
        try:
            run, found = locate(config, ref, Path(fetched))
        except MlopsError as err:
            return [Outcome(ref, verdict=FAILED, reason=str(err))]
        return _chain(config, run, found, keep, Path(fetched))


def _chain(config: Config, run: Recorded, found: str, keep: bool, fetched: Path
           ) -> list[Outcome]:
    produced: dict[str, Path] = {}
    outcomes, folders = [], []
    try:
        for up in upstream_runs(config, run, fetched):
            console.step(f"reproducing upstream run {up.logged_as} first", "reproduce",
                         up.done.stage)
            outcome = reproduce_run(config, up, keep=keep, produced=produced,
                                    found=found_in(config, up))
            outcomes.append(outcome)
            folders.append(work_folder(config.root, up.done.run_id))
            if outcome.verdict == FAILED:
                last = Outcome(run.logged_as, run.done.stage, reason=(
                    f"upstream run {up.done.run_id} ({up.done.stage}) could not be "
                    f"reproduced: {outcome.reason}"))
                return [*outcomes, last]
        outcomes.append(reproduce_run(config, run, keep=keep, provided=produced, found=found))
    finally:
        for folder in folders if not keep else ():
            discard(config.root, folder)
    return outcomes


def remember(root: Path, outcome: Outcome, uri: str) -> None:
    """Add the reproduction to the list the report page reads (beside the page, not among
    the records: the workspace's records stay as they were)."""
    if not outcome.stage:  # no such run: nothing to list
        return
    path = root / layout.reproductions()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    entry = {"when": record.timestamp(), "verdict": outcome.verdict,
             "run": outcome.new_run_id or None, "reason": outcome.reason[:300],
             "tracking_uri": redact(uri)}
    known.setdefault(outcome.run_id, []).append(entry)
    atomic_write(path, json.dumps(known, indent=1, sort_keys=True) + "\n")
