"""`doit audit [STAGE ...]`: does the workspace still match what each stage's last run
recorded? Reads the local records only (no MLflow needed), so it also works offline."""

from __future__ import annotations

from typing import Any

from mlops_tasks.base import console
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.pipeline.audit import audit_stage
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage


class Audit(ProjectCommand):
    name = "audit"
    doc_purpose = "check that outputs, notebooks and envs still match each stage's last run"
    doc_usage = "[STAGE ...]"
    doc_description = (
        "For each stage: the last logged run, when, the git commit, and whether the executed "
        "notebook, the declared outputs, the env (pip freeze) and the notebook's code still "
        "match what that run recorded. Exit status 1 when something does not match."
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        clean = True
        for stage in stages:
            lines, ok = audit_stage(project.config.root, stage)
            clean = clean and ok
            console.say("\n".join(lines))
        return 0 if clean else 1
