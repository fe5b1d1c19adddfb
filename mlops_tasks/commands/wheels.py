"""`doit wheels`: fill wheels_cache/ with exactly the wheels each stage (and, with
--orchestrator, mlops-tasks itself) needs on a target Python and platform; `--check` says
whether the cache covers them offline, downloading nothing."""

from __future__ import annotations

import re
import sys
from typing import Any

from filelock import FileLock

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.env.installers import find_uv
from mlops_tasks.env.interpreters import Resolver
from mlops_tasks.env.wheel_cache import Need, check, fill, orchestrator_requirements
from mlops_tasks.env.wheelset import (
    Target,
)
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config, read_pyproject
from mlops_tasks.project.environments import one_per_env
from mlops_tasks.project.fingerprint import install_requirements
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage


class Wheels(ProjectCommand):
    name = "wheels"
    doc_purpose = "fill wheels_cache/ with the wheels of every stage (needs network)"
    doc_usage = "[STAGE ...]"
    doc_description = (
        "Resolves each stage's requirements (and ipykernel) for the target Python version "
        "and platform, markers included, and downloads exactly those wheels into the wheel "
        "cache: by default for each stage's own Python on this platform; with "
        "--python-version/--platform for other agents (e.g. --platform win_amd64 "
        "--python-version 3.10 on a Linux controller). --orchestrator: what installing "
        "mlops-tasks itself needs, instead of the stages. --check downloads nothing: it says "
        "per stage whether the cache covers it offline and lists what is missing (exit 1 "
        "when something is)."
    )
    cmd_options = (
        {"name": "platform", "long": "platform", "type": str, "default": "",
         "help": "target wheel platform tag, e.g. win_amd64 or manylinux2014_x86_64"},
        {"name": "python_version", "long": "python-version", "type": str, "default": "",
         "help": "target Python version, e.g. 3.10 (default: each stage's own)"},
        {"name": "check", "long": "check", "type": bool, "default": False,
         "help": "download nothing: report what the cache lacks for the target"},
        {"name": "orchestrator", "long": "orchestrator", "type": bool, "default": False,
         "help": "the wheels that install mlops-tasks itself with no index (not the stages')"},
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        config = project.config
        version, platform = params["python_version"], params["platform"] or None
        if version and not re.fullmatch(r"3\.\d+", version):
            raise MlopsError(f"wheels: --python-version {version} must look like 3.10")
        uv = find_uv()
        if uv is None:
            raise MlopsError("`doit wheels` needs uv to resolve for a target: pip install uv")
        needs = self.needs(config, stages, version, platform, params["orchestrator"])
        cache = config.root / config.wheels_cache
        if params["check"]:
            return check(uv, cache, config, needs)
        cache.mkdir(parents=True, exist_ok=True)
        mutex = config.root / layout.mutex_file("wheels", "cache")
        mutex.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(mutex)):
            for need in needs:
                fill(uv, cache, config, need)
        console.say(f"{config.wheels_cache} holds {len(list(cache.glob('*.whl')))} wheels",
                    "wheels")
        return 0

    @staticmethod
    def needs(config: Config, stages: list[Stage], version: str, platform: str | None,
              orchestrator: bool) -> list[Need]:
        if orchestrator:
            from importlib.metadata import version as installed

            own = f"{sys.version_info.major}.{sys.version_info.minor}"
            return [Need("orchestrator", orchestrator_requirements(
                read_pyproject(config.root), installed("mlops-tasks")),
                Target(version or own, platform))]
        resolver = Resolver(config.root / layout.interpreter_cache())
        needs = []
        for stage in one_per_env(stages):  # a shared environment or a matrix: once
            python = version or resolver.resolve(stage.name, stage.python,
                                                 stage.python_exe).short
            pins = config.root / layout.pins_file(stage)
            reqs = ([f"-r {pins}"] if pins.is_file() else install_requirements(stage))
            needs.append(Need(stage.name, reqs, Target(python, platform)))
        return needs
