"""`doit gc`: remove stage venvs and kernelspecs that no spec refers to any more."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from . import layout
from .cmd_project import ProjectCommand
from .project import Project
from .spec import Stage


def orphans(root: Path, project: Project) -> list[Path]:
    """Folders this tool built (they hold its marker) that no current spec names."""
    known_envs = {(root / s.env_dir).resolve() for s in project.stages}
    parents = {(root / s.env_dir).parent for s in project.stages} | {root / ".venvs"}
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
        found = orphans(root, project)
        for path in found:
            rel = path.relative_to(root).as_posix()
            if params["dry_run"]:
                print(f"gc: would remove {rel}")
            else:
                shutil.rmtree(path)
                print(f"gc: removed {rel}")
        if not found:
            print("gc: nothing to remove")
        return 0
