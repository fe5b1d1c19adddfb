"""The doit entry point, which a project's dodo.py imports through `mlops_tasks.dodo`.

Importing it has no side effect: nothing is written and no mutex is taken, so `doit list`
and `doit info` never wait. The commands that run tasks prepare the workspace themselves
(commands/doit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import InvalidDodoFile

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.pipeline.reporter import PipelineReporter
from mlops_tasks.pipeline.tasks import all_tasks
from mlops_tasks.project.layout import dep_db
from mlops_tasks.project.load import Project, load_project, print_warnings

__all__ = ["DOIT_CONFIG", "loaded", "task_mlops"]

# Defaults for projects whose pyproject.toml has no [tool.doit] table.
DOIT_CONFIG = {
    "dep_file": dep_db(),
    "backend": "sqlite3-durable",
    "verbosity": 2,
    "par_type": "thread",
    # doit's console output, plus .mlops/reports/junit.xml after a run that ran tasks
    "reporter": PipelineReporter,
}


_loaded: list[Project] = []


def loaded() -> Project | None:
    """The project the tasks of this process were made from (a no-op stamps its files)."""
    return _loaded[0] if _loaded else None


def task_mlops() -> Iterator[dict[str, Any]]:
    """Stage tasks generated from env_specs/."""
    console.safe_streams()
    root = Path.cwd()
    try:
        project = load_project(root)
    except MlopsError as err:
        raise InvalidDodoFile(str(err)) from None
    print_warnings(project)
    _loaded[:] = [project]
    yield from all_tasks(project.config, list(project.stages), project.graph)
