"""The doit entry point: `from mlops_tasks.dodo import *` in a project's dodo.py.

Importing it has no side effect: nothing is written and no mutex is taken, so `doit list`
and `doit info` never wait. The commands that run tasks prepare the workspace themselves
(cmd_doit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from doit.exceptions import InvalidDodoFile

from . import console
from .errors import MlopsError
from .layout import dep_db
from .project import load_project, print_warnings
from .reporter import PipelineReporter
from .tasks import all_tasks

__all__ = ["DOIT_CONFIG", "task_mlops"]

# Defaults for projects whose pyproject.toml has no [tool.doit] table.
DOIT_CONFIG = {
    "dep_file": dep_db(),
    "backend": "sqlite3-durable",
    "verbosity": 2,
    "par_type": "thread",
    # doit's console output, plus .mlops/reports/junit.xml after a run that ran tasks
    "reporter": PipelineReporter,
}


def task_mlops() -> Iterator[dict[str, Any]]:
    """Stage tasks generated from env_specs/."""
    console.safe_streams()
    root = Path.cwd()
    try:
        project = load_project(root)
    except MlopsError as err:
        raise InvalidDodoFile(str(err)) from None
    print_warnings(project)
    yield from all_tasks(project.config, list(project.stages), project.graph)
