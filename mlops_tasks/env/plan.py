"""What a stage's env is built from and whether the one on disk is still valid: the plan
(interpreter, requirements, options, pins), its fingerprint, the marker's verdict and why an
env is rebuilt, in words. Reading only: no env is built here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_tasks.base.errors import EnvBuildError
from mlops_tasks.base.redact import redact
from mlops_tasks.env.interpreters import Interpreter, Resolver
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import env_fingerprint, install_requirements, sha256_text
from mlops_tasks.project.spec import Stage, normalise_req_name, requirement_name

# The build option holding the pins file's hash (the name existing env markers carry).
PINS_OPTION = "lock_sha256"


@dataclass(frozen=True)
class EnvPlan:
    """What a stage's env is built from; its fingerprint is the env's build identity."""

    stage: str
    interpreter: Interpreter
    requirements: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    pins_file: str | None = None  # pinned requirements (env_specs/<spec>.lock), if any

    @property
    def fingerprint(self) -> str:
        return env_fingerprint(self.interpreter.version, self.interpreter.implementation,
                               self.requirements, self.options)


def plan_env(stage: Stage, interpreter: Interpreter, installer: str,
             pins_text: str | None = None) -> EnvPlan:
    """The build plan. With a pins file, its content is part of the env's identity."""
    options: dict[str, Any] = {"installer": installer}
    if pins_text is not None:
        options[PINS_OPTION] = sha256_text(pins_text.replace("\r\n", "\n"))
    return EnvPlan(stage.name, interpreter, tuple(install_requirements(stage)), options,
                   layout.pins_file(stage) if pins_text is not None else None)


def plan_for(config: Config, stage: Stage) -> EnvPlan:
    """The plan for a stage as the project stands: its interpreter resolved, its pins read."""
    interp = Resolver.for_cache(config.root / layout.interpreter_cache()).resolve(
        stage.name, stage.python, stage.python_exe)
    pins = config.root / layout.pins_file(stage)
    pins_text = pins.read_text(encoding="utf-8") if pins.is_file() else None
    return plan_env(stage, interp, config.installer, pins_text)


def read_marker(env_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((env_dir / layout.MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _req_names(reqs: Any) -> dict[str, str]:
    return {normalise_req_name(requirement_name(r) or r): r for r in reqs or []}


def describe_change(marker: Mapping[str, Any], plan: EnvPlan) -> str:
    """Say what changed between a built env and the plan: 'packages: +pandas, -dask'."""
    parts: list[str] = []
    old_version = marker.get("python_version")
    if old_version != plan.interpreter.version:
        parts.append(f"python {old_version} → {plan.interpreter.version}")
    old, new = _req_names(marker.get("requirements")), _req_names(plan.requirements)
    changes = [f"+{new[n]}" for n in new if n not in old]
    changes += [f"-{old[n]}" for n in old if n not in new]
    changes += [f"{old[n]} → {new[n]}" for n in new if n in old and old[n] != new[n]]
    if changes:
        parts.append("packages: " + ", ".join(changes))
    old_opts, new_opts = dict(marker.get("options") or {}), dict(plan.options)
    if old_opts.get(PINS_OPTION) != new_opts.get(PINS_OPTION):
        parts.append("lock file " + ("added" if PINS_OPTION not in old_opts else
                                     "removed" if PINS_OPTION not in new_opts else "changed"))
    old_opts.pop(PINS_OPTION, None)
    new_opts.pop(PINS_OPTION, None)
    if old_opts != new_opts:
        parts.append(f"options: {old_opts} → {new_opts}")
    return redact("; ".join(parts) or "build inputs changed")


def env_problem(env_dir: Path, plan: EnvPlan, freeze: Path) -> str | None:
    """Why the env at env_dir cannot be reused for plan, or None when it can."""
    if not env_dir.exists():
        return "not built yet"
    marker = read_marker(env_dir)
    if marker is None:
        return (f"{env_dir.name} has no valid marker (a build was interrupted or the folder "
                "was made by hand)")
    if marker.get("fingerprint") != plan.fingerprint:
        return describe_change(marker, plan)
    python = env_dir / marker["python"] if marker.get("python") else None
    if python is None or not python.exists():
        return "the venv's interpreter is missing"
    if marker.get("changed_in_run"):
        return f"a notebook changed it during a run ({marker['changed_in_run']})"
    if not freeze.is_file():
        return "pip-freeze.txt is missing"
    if sha256_text(freeze.read_text(encoding="utf-8")) != marker.get("freeze_sha256"):
        return "pip-freeze.txt was changed by hand"
    return None


def freeze_header(interpreter: Interpreter) -> str:
    """First line of pip-freeze.txt: a new interpreter is a new env even with the same pins."""
    return f"# python {interpreter.version} ({interpreter.implementation})\n"


def check_pins_cover(stage: Stage, pins_text: str, pins_file: str) -> None:
    """A pins file older than the spec would silently leave new packages out."""
    pinned = {normalise_req_name(requirement_name(line) or "")
              for line in pins_text.splitlines() if line.strip() and line[0] not in "# -"}
    missing = [r for r in stage.packages
               if normalise_req_name(requirement_name(r) or r) not in pinned]
    if missing:
        raise EnvBuildError(
            stage.name, f"{pins_file} does not pin {', '.join(missing)} from "
            f"{stage.spec_path}; update it with `doit lock {stage.name}` (or delete it)")
