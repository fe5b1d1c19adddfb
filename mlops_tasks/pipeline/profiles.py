"""Profiles: `MLOPS_PROFILE=smoke doit` (or `doit profile=smoke`) runs the pipeline with each
stage's `profiles: {smoke: {parameters: ...}}` overrides in a scratch work tree under the
state folder, so the real outputs, executed notebooks, dep DB and up-to-date state are never
touched. The tree holds copies of the project's files (a link would let a notebook that
writes an undeclared file write the project's own), refreshed when a project file changes,
and shares the stage venvs; its runs go to the project's store, in the experiment
`<experiment>-<profile>`, tagged `mlops.profile`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project import layout
from mlops_tasks.project.config import load_config


def scratch_dir(root: Path, profile: str) -> Path:
    """Named like the project, so a default experiment name stays the same."""
    return root / layout.STATE / "profiles" / profile / root.name


def _skipped(rel: str, skip: set[str]) -> bool:
    return any(rel == s or rel.startswith(s + "/") for s in skip)


def _below(top: Path, skip: set[str]) -> Iterator[str]:
    """Every file and folder below top (not inside a symlinked folder), relative, POSIX,
    outside `skip` (paths relative to top)."""
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = Path(dirpath).relative_to(top).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not _skipped(prefix + d, skip)]
        yield from (prefix + name for name in (*dirnames, *filenames)
                    if not _skipped(prefix + name, skip))


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(target, link, target_is_directory=target.is_dir())
    except OSError:  # no symlinks (Windows without the privilege): a copy of a file
        if target.is_file():
            shutil.copy2(target, link)


def _copy(source: Path, copy: Path) -> None:
    """A copy of a project file, made again only when the project's file or the copy changed
    (a copy keeps the source's size and modification time)."""
    try:
        mine, theirs = copy.lstat(), source.stat()
        if not copy.is_symlink() and (mine.st_size, mine.st_mtime_ns) == \
                (theirs.st_size, theirs.st_mtime_ns):
            return
        copy.unlink()
    except FileNotFoundError:
        copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, copy)


def prepare_tree(root: Path, profile: str) -> Path:
    """The scratch tree for `profile`, its links refreshed; its own state and outputs kept
    (a second smoke run is incremental too)."""
    from mlops_tasks.project.load import load_project

    project = load_project(root)
    if not any(profile in s.profiles for s in project.stages):
        defined = sorted({p for s in project.stages for p in s.profiles})
        raise MlopsError(f"no stage defines the profile '{profile}'"
                         + (f"; profiles: {', '.join(defined)}" if defined else
                            "; add one to a spec, e.g. profiles: {smoke: {parameters: "
                            "{n_rows: 200}}}"))
    scratch = scratch_dir(root, profile)
    written = {p for s in project.stages for p in s.written}
    envs = {s.env_dir for s in project.stages}
    for rel in list(_below(scratch, {layout.STATE})):  # the venv links, and older versions' links
        if (scratch / rel).is_symlink():
            (scratch / rel).unlink()
    for rel in _below(root, {".git", layout.STATE, *envs, *written}):
        if (root / rel).is_file():
            _copy(root / rel, scratch / rel)
    for env in envs:
        if (root / env).is_dir():
            _link(root / env, scratch / env)
    return scratch


def activate(root: Path, profile: str) -> Path:
    """Run this process's doit in the profile's scratch tree."""
    config = load_config(root)
    if not (root / config.specs_dir).is_dir():
        raise MlopsError(f"profile={profile}: {root} is not an mlops-tasks project")
    scratch = prepare_tree(root, profile)
    os.environ["MLOPS_PROFILE"] = profile
    if not os.environ.get("MLFLOW_TRACKING_URI") and not config.tracking_uri:
        # the project's own store, where its other runs are
        os.environ["MLFLOW_TRACKING_URI"] = config.resolved_tracking_uri()
    os.chdir(scratch)
    console.say(f"profile '{profile}': running in {scratch.relative_to(root).as_posix()}, on "
                "a copy of the project: its files, outputs and state are not touched")
    return scratch
