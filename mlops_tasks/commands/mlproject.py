"""`doit mlproject`: write `MLproject`, one MLflow Projects entry point per stage."""

from __future__ import annotations

from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.files import atomic_write
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.project.load import Project
from mlops_tasks.project.mlproject import mlproject_text
from mlops_tasks.project.spec import Stage


class Mlproject(ProjectCommand):
    name = "mlproject"
    doc_purpose = "write MLproject: one MLflow Projects entry point per stage"
    doc_usage = ""
    doc_description = (
        "Writes MLproject at the project root from the stage specs (rewrite it when they "
        "change). `mlflow run . -e STAGE --env-manager local [-P name=value]` then brings the "
        "stage up to date through doit (the defaults are exactly `doit run STAGE`); a value "
        "other than the spec's is a one-off override, of the type the notebook's parameters "
        "cell (else the spec's value) gives it; text stays text. "
        "The stage runs are tagged mlops.project_run_id with the Projects run."
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        target = project.config.root / "MLproject"
        ordered = [project.stage(name) for name in project.graph.order]
        atomic_write(target, mlproject_text(project.config.experiment_name(), ordered))
        console.say(f"wrote MLproject: {len(ordered)} entry points "
                    f"({', '.join(project.graph.order)})")
        return 0
