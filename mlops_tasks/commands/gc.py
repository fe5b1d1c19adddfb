"""`doit gc`: remove stage venvs and kernelspecs that no spec refers to any more."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.pipeline import workspace
from mlops_tasks.project import layout
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage


def orphans(root: Path, project: Project) -> list[Path]:
    """Folders this tool built (they hold its marker) that no current spec names."""
    known_envs = {(root / s.env_dir).resolve() for s in project.stages}
    parents = {(root / s.env_dir).parent for s in project.stages} | {root / layout.VENVS}
    found: list[Path] = []
    for parent in sorted(parents):
        if not parent.is_dir():
            continue
        for child in sorted(parent.iterdir()):
            if (child.is_dir() and (child / layout.MARKER).exists()
                    and child.resolve() not in known_envs):
                found.append(child)
    kernels = root / layout.kernels_dir()
    known_kernels = {s.kernel_name for s in project.stages}
    if kernels.is_dir():
        found += [k for k in sorted(kernels.iterdir())
                  if k.is_dir() and k.name not in known_kernels]
    return found


class Gc(ProjectCommand):
    name = "gc"
    doc_purpose = "remove stage venvs and kernelspecs that no spec refers to any more"
    doc_usage = ""
    cmd_options = (
        {"name": "dry_run", "short": "n", "long": "dry-run", "type": bool, "default": False,
         "help": "only list what would be removed"},
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        root = project.config.root
        if not params["dry_run"]:  # removes venvs a running doit may be using
            workspace.acquire(root, wait=project.config.workspace_busy == "wait")
        found = orphans(root, project)
        for path in found:
            rel = path.relative_to(root).as_posix()
            if params["dry_run"]:
                console.say(f"would remove {rel}", "gc")
            else:
                shutil.rmtree(path)
                console.say(f"removed {rel}", "gc")
        if not found:
            console.say("nothing to remove", "gc")
        return 0
