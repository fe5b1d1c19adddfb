"""`doit wheels`: fill wheels_cache/ with every stage's wheels (the online step)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import command, console, layout
from .cmd_project import ProjectCommand
from .errors import CommandFailed, MlopsError
from .fingerprint import install_requirements
from .interpreters import Resolver
from .project import Project
from .spec import Stage


def download_argv(python: str, dest: Path, requirements: Path, python_version: str | None,
                  platform: str | None) -> list[str]:
    """pip download for a stage, optionally for another Python version or platform. Pure."""
    argv = [python, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest),
            "-r", str(requirements)]
    if python_version or platform:
        argv += ["--only-binary", ":all:"]
    if python_version:
        argv += ["--python-version", python_version]
    if platform:
        argv += ["--platform", platform]
    return argv


class Wheels(ProjectCommand):
    name = "wheels"
    doc_purpose = "fill wheels_cache/ with the wheels of every stage (needs network)"
    doc_usage = "[STAGE ...]"
    doc_description = (
        "Downloads each stage's requirements (and ipykernel) into the wheel cache, for the "
        "stage's own Python version, or for --python-version/--platform to fill the cache "
        "for other agents (e.g. --platform win_amd64 --python-version 3.10 on a Linux "
        "controller). With the cache filled, venv builds are offline."
    )
    cmd_options = (
        {"name": "platform", "long": "platform", "type": str, "default": "",
         "help": "target platform tag, e.g. win_amd64 or manylinux2014_x86_64"},
        {"name": "python_version", "long": "python-version", "type": str, "default": "",
         "help": "target Python version, e.g. 3.10 (default: each stage's own)"},
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        config = project.config
        root = config.root
        dest = root / config.wheels_cache
        dest.mkdir(parents=True, exist_ok=True)
        resolver = Resolver(root / layout.interpreter_cache())
        mutex = root / layout.mutex_file("wheels", "cache")
        mutex.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(mutex)):
            for stage in stages:
                version = params["python_version"] or resolver.resolve(
                    stage.name, stage.python, stage.python_exe).short
                with tempfile.TemporaryDirectory() as tmp:
                    req = Path(tmp) / "requirements.txt"
                    req.write_text("\n".join(install_requirements(stage)) + "\n", "utf-8")
                    console.say(f"{stage.name} (Python {version}"
                                f"{', ' + params['platform'] if params['platform'] else ''})",
                                "wheels")
                    try:
                        command.run(download_argv(sys.executable, dest, req, version,
                                                  params["platform"] or None))
                    except CommandFailed as err:
                        raise MlopsError(f"wheels: stage '{stage.name}' could not be "
                                         f"downloaded: {err.stderr_tail}") from None
        count = len(list(dest.glob("*.whl")))
        console.say(f"{config.wheels_cache} holds {count} wheels", "wheels")
        return 0
