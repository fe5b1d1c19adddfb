"""Base of this project's doit commands (wheels, lock, audit, gc): load the project, select
stages by name, and turn a user error into `ERROR: ...` and exit status 3, as doit does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doit.cmd_base import Command

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project.load import Project, load_project
from mlops_tasks.project.spec import Stage


class ProjectCommand(Command):
    def execute(self, params: Any, args: list[str]) -> int:
        console.safe_streams()
        try:
            project = load_project(Path.cwd())
            return self.run(project, params, self.select(project, args))
        except MlopsError as err:
            console.error(str(err))
            return 3

    @staticmethod
    def select(project: Project, names: list[str]) -> list[Stage]:
        """The named stages in execution order; all of them when none is named."""
        unknown = sorted(set(names) - {s.name for s in project.stages})
        if unknown:
            raise MlopsError(f"unknown stage(s): {', '.join(unknown)}; stages: "
                             f"{', '.join(project.graph.order)}")
        return [project.stage(n) for n in project.graph.order if not names or n in names]

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        raise NotImplementedError
