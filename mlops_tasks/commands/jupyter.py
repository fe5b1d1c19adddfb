"""`doit jupyter`: register the stages' kernels for the user, so Jupyter and VS Code offer
them by name (the project's own kernelspecs live in .mlops/jupyter, which they do not
search); `--remove` (or `doit clean`) takes them away again."""

from __future__ import annotations

from typing import Any

from mlops_tasks.base import console
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.env.kernelspecs import remove_user_kernelspec, write_user_kernelspec
from mlops_tasks.env.plan import read_marker
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage


class Jupyter(ProjectCommand):
    name = "jupyter"
    doc_purpose = "register the stages' kernels for Jupyter and VS Code (for the user)"
    doc_usage = "[STAGE ...]"
    doc_description = (
        "Writes each stage's kernelspec into the user's Jupyter data dir (JUPYTER_DATA_DIR or "
        "the platform's default), so Jupyter, JupyterLab and VS Code list it as 'mlops STAGE "
        "(Python X.Y)' and run the notebook in the stage's venv. Build the venv first "
        "(doit run venv:STAGE). --remove, or doit clean, takes them away again."
    )
    cmd_options = (
        {"name": "remove", "long": "remove", "type": bool, "default": False,
         "help": "remove the stages' kernels from the user's Jupyter data dir"},
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        root = project.config.root
        missing = []
        for stage in stages:
            if params["remove"]:
                removed = remove_user_kernelspec(root, stage)
                if removed:
                    console.say(f"removed the user kernel '{stage.kernel_name}' ({removed})")
                continue
            marker = read_marker(root / stage.env_dir)
            if marker is None:
                missing.append(stage.name)
                continue
            path = write_user_kernelspec(root, stage, str(marker.get("python_version", "")))
            console.say(f"kernel '{stage.kernel_name}' for {stage.notebook}: pick "
                        f"'mlops {stage.name} (Python {marker.get('python_version', '')})' in "
                        f"Jupyter or VS Code ({path})")
        if missing:
            console.say(f"no venv yet for {', '.join(missing)}: run `doit run "
                        f"{' '.join('venv:' + m for m in missing)}` first")
            return 1
        return 0
