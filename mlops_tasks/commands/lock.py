"""`doit lock`: pin each stage's requirements into its pins file, env_specs/<spec>.lock
(uv pip compile)."""

from __future__ import annotations

from typing import Any

from mlops_tasks.base import command, console
from mlops_tasks.base.errors import CommandFailed, MlopsError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.commands.base import ProjectCommand
from mlops_tasks.env.installers import find_uv, wheel_sources
from mlops_tasks.env.interpreters import Resolver
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.environments import one_per_env
from mlops_tasks.project.fingerprint import install_requirements
from mlops_tasks.project.load import Project
from mlops_tasks.project.spec import Stage


def pin_argv(uv: str, requirements: str, python_version: str, sources: list[str],
                 universal: bool) -> list[str]:
    """uv pip compile with output that is stable across machines and runs. Pure."""
    argv = [uv, "pip", "compile", "--quiet", "--no-header", "--python-version", python_version,
            requirements, *sources]
    return argv + (["--universal"] if universal else [])


def pins_header(spec_path: str, python_version: str, universal: bool) -> str:
    scope = "any platform" if universal else "this platform"
    return (f"# Pinned requirements for {spec_path} (Python {python_version}, {scope}).\n"
            "# Written by `doit lock`; the stage's venv is built from exactly these pins.\n"
            "# Delete this file to go back to resolving the spec's packages.\n")


class Lock(ProjectCommand):
    """`doit lock`: the command keeps the name users know; the file it writes is a pins file."""

    name = "lock"
    doc_purpose = "pin each stage's requirements into env_specs/<spec>.lock (uses uv)"
    doc_usage = "[STAGE ...]"
    doc_description = (
        "Resolves each stage's packages (and ipykernel) for the stage's Python version and "
        "writes the pins next to its spec, e.g. env_specs/stage_train.lock. While that file "
        "exists, venv:<stage> installs exactly those pins. A shared environment is pinned once, "
        "into env_specs/environments/<name>.lock. Offline from wheels_cache/ when it is filled "
        "and index_policy is not 'online'."
    )
    cmd_options = (
        {"name": "universal", "long": "universal", "type": bool, "default": False,
         "help": "resolve for every platform (Windows and Linux agents share one pins file)"},
    )

    def run(self, project: Project, params: Any, stages: list[Stage]) -> int:
        universal = bool(params["universal"])
        config: Config = project.config
        root = config.root
        uv = find_uv()
        if uv is None:
            raise MlopsError("`doit lock` needs uv: pip install uv")
        sources, _ = wheel_sources(config)  # the same index options as venv builds
        resolver = Resolver(root / layout.interpreter_cache())
        for stage in one_per_env(stages):  # a shared environment or a matrix: once
            version = resolver.resolve(stage.name, stage.python, stage.python_exe).short
            req = layout.pins_input(stage)
            atomic_write(root / req, "\n".join(install_requirements(stage)) + "\n")
            try:
                pins = command.run(pin_argv(uv, req, version, sources, universal),
                                   cwd=root)
            except CommandFailed as err:
                raise MlopsError(f"lock: stage '{stage.name}' could not be resolved: "
                                 f"{err.stderr_tail}") from None
            target = root / layout.pins_file(stage)
            source = f"environment '{stage.environment}'" if stage.environment else \
                stage.spec_path
            atomic_write(target, pins_header(source, version, universal) + pins)
            count = sum(1 for line in pins.splitlines() if line and not line.startswith(" ")
                        and not line.startswith("#"))
            console.say(f"{layout.pins_file(stage)} pins {count} packages", "lock")
        return 0
