"""`doit report`: write the pipeline report page (.mlops/reports/index.html) from the local
records and doit's view of what is stale; the same page is rewritten at the end of every doit
that ran tasks. It reads nothing from the tracking server, so it works with the server down."""

from __future__ import annotations

from pathlib import Path

from doit.cmd_base import DoitCmdBase

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.pipeline.report import doit_status, write_report
from mlops_tasks.project.load import load_project


class Report(DoitCmdBase):
    name = "report"
    doc_purpose = "write the pipeline report page .mlops/reports/index.html"
    doc_usage = ""
    doc_description = (
        "A self-contained page: the stage graph coloured by state (up to date, stale with "
        "the reason, failed, never run, restored from cache) and per stage its last run, "
        "parameters, metrics, environment and links to MLflow and the executed notebook. "
        "Also rewritten after every doit that ran tasks. Reads only local records."
    )

    def _execute(self) -> int:
        root = Path.cwd()
        try:
            project = load_project(root)
            target = write_report(root, project, doit_status(self.task_list, self.dep_manager))
        except MlopsError as err:
            console.error(str(err))
            return 3
        finally:
            self.dep_manager.close()
        console.say(f"report: {target.relative_to(root).as_posix()}")
        return 0
