"""The `mlops-tasks` console script: `init` starts a project that runs at once, `add-stage`
adds a stage wired to an upstream stage's outputs. Nothing is ever overwritten."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, distribution, version
from pathlib import Path

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.project import scaffold
from mlops_tasks.project.config import Orchestrator, read_pyproject
from mlops_tasks.project.load import load_project


def _version() -> str:
    try:
        return version("mlops-tasks")
    except PackageNotFoundError:
        return "0"


def write_new(root: Path, files: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Write the files that do not exist yet; (written, skipped)."""
    written, skipped = [], []
    for rel, text in files.items():
        path = root / rel
        if path.exists():
            skipped.append(rel)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text)
        written.append(rel)
    return written, skipped


def own_wheel() -> tuple[str, bytes]:
    """The installed mlops-tasks as a wheel (its file name, its bytes): its modules as they
    are on disk (an editable install's sources too) and its installed metadata."""
    try:
        dist = distribution("mlops-tasks")
    except PackageNotFoundError:
        raise MlopsError("init: mlops-tasks is not installed, so its wheel cannot be written "
                         "for CI; install it (python -m pip install -e <its source folder>) "
                         "and run init again") from None
    core = dist.read_text("METADATA") or dist.read_text("PKG-INFO")  # PKG-INFO: an egg-info
    if not core:
        raise MlopsError(f"init: the installed mlops-tasks {dist.version} has no METADATA; "
                         "reinstall it (python -m pip install --force-reinstall ...)")
    metadata = {"METADATA": core.encode("utf-8")}
    if entry_points := dist.read_text("entry_points.txt"):
        metadata["entry_points.txt"] = entry_points.encode("utf-8")
    package = Path(scaffold.__file__).parent.parent  # mlops_tasks/, every folder of it
    modules = {path.relative_to(package).as_posix(): path.read_bytes()
               for path in sorted(package.rglob("*.py")) if "__pycache__" not in path.parts}
    return scaffold.wheel_name(dist.version), scaffold.tool_wheel(dist.version, modules,
                                                                  metadata)


def in_git(folder: Path) -> bool:
    return any((parent / ".git").exists() for parent in (folder, *folder.parents))


def init(target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    name, wheel = own_wheel()
    orchestrator = Orchestrator("wheel", f"wheels_cache/{name}")
    files = scaffold.project_files(target.resolve().name, orchestrator, python)
    written, skipped = write_new(target, files)
    if not (target / orchestrator.requirement).exists():
        atomic_write(target / orchestrator.requirement, wheel)
        written.append(orchestrator.requirement)
    for rel in written:
        console.say(f"wrote {rel}")
    for rel in skipped:
        console.say(f"kept {rel} (it exists; nothing is overwritten)")
    for advice in kept_advice(target, skipped, orchestrator):
        console.say(advice)
    here = target.resolve() == Path.cwd().resolve()
    console.say(scaffold.next_steps(None if here else str(target), in_git(target.resolve()),
                                    os.name == "nt")
                + "        (builds the stage's venv, runs its notebook, records the run in "
                  ".mlops/mlflow.db)")
    console.say("then: mlops-tasks add-stage train --after prepare --package scikit-learn")
    console.say(scaffold.PIN_ADVICE)
    return 0


def kept_advice(target: Path, skipped: Sequence[str], orchestrator: Orchestrator) -> list[str]:
    """What the user's own kept files lack, with the text to add."""
    advice = []
    if "pyproject.toml" in skipped or "dodo.py" in skipped:
        dodo = target / "dodo.py"
        advice = scaffold.missing_settings(
            read_pyproject(target), dodo.read_text(encoding="utf-8", errors="replace"),
            target.resolve().name, orchestrator)
    ignore = target / ".gitignore"
    if ".gitignore" in skipped and "wheels_cache" in ignore.read_text(errors="replace") \
            and "!wheels_cache/mlops_tasks-" not in ignore.read_text(errors="replace"):
        advice.append(f"your .gitignore was kept and ignores wheels_cache/: let it keep "
                      f"{orchestrator.requirement} (commit it: CI installs mlops-tasks from "
                      "it); init writes: wheels_cache/* then !wheels_cache/mlops_tasks-*.whl")
    return advice


def add_stage(name: str, python: str | None, after: str | None, packages: Sequence[str]
              ) -> int:
    root = Path.cwd()
    why = scaffold.check_name(name)
    if why:
        raise MlopsError(f"add-stage: {why}")
    project = load_project(root)
    if name in {s.name for s in project.stages}:
        raise MlopsError(f"add-stage: a stage named '{name}' exists already "
                         f"({project.stage(name).spec_path}); pick another name")
    outputs: list[str] = []
    if after is not None:
        if after not in {s.name for s in project.stages}:
            raise MlopsError(f"add-stage: --after {after}: no such stage; stages: "
                             f"{', '.join(project.graph.order)}")
        upstream = project.stage(after)
        outputs = list(upstream.written)
        if not outputs:
            raise MlopsError(f"add-stage: --after {after}: that stage declares no outputs to "
                             f"read; add some to {upstream.spec_path} first")
    files = scaffold.stage_files(name, python, packages, outputs, after,
                                 python or f"{sys.version_info.major}.{sys.version_info.minor}")
    specs = project.config.specs_dir
    files = {rel.replace("env_specs/", f"{specs}/", 1): text for rel, text in files.items()}
    taken = [rel for rel in files if (root / rel).exists()]
    if taken:
        raise MlopsError(f"add-stage: {', '.join(taken)} exist(s) already; nothing written")
    write_new(root, files)
    for rel in files:
        console.say(f"wrote {rel}")
    load_project(root)  # the new spec loads, or the error names it
    console.say(f"next: doit run {name}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mlops-tasks", description=(
        "Start and grow mlops-tasks pipelines. Running them is plain doit: `doit`, "
        "`doit run STAGE`, `doit list`."))
    top.add_argument("--version", action="version", version=f"mlops-tasks {_version()}")
    sub = top.add_subparsers(dest="command", required=True)
    new = sub.add_parser("init", help="write a new project that runs at once")
    new.add_argument("dir", nargs="?", default=".", help="the project folder (default: here)")
    add = sub.add_parser("add-stage", help="add a stage (spec and starter notebook)")
    add.add_argument("name", help="the stage's name, e.g. train")
    add.add_argument("--python", help='the stage\'s Python version, e.g. "3.11"')
    add.add_argument("--after", metavar="STAGE", help="read this stage's outputs")
    add.add_argument("--package", action="append", default=[], metavar="REQUIREMENT",
                     help="a pip requirement for the stage's venv (repeatable)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console.safe_streams()
    try:
        if args.command == "init":
            return init(Path(args.dir))
        return add_stage(args.name, args.python, args.after, args.package)
    except MlopsError as err:
        console.error(str(err))
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
