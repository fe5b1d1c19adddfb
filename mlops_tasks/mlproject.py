"""MLflow Projects: the `MLproject` file (one entry point per stage) and the command its
entry points run, `python -m mlops_tasks.mlproject STAGE name=value ...`, which brings the
stage up to date through doit; a value that differs from the spec becomes an override
(`doit run execute:S --param=name=value`). The text is pure; `main` runs doit in-process."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import console
from .spec import Stage

PROJECT_RUN_TAG = "mlops.project_run_id"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def mlproject_text(name: str, stages: Sequence[Stage]) -> str:
    """One entry point per stage; each spec parameter an entry-point parameter whose default
    is the spec's value (JSON for anything but a string). Pure."""
    entry_points: dict[str, Any] = {}
    for stage in stages:
        params = {k: {"type": "string", "default": _text(v)} for k, v in stage.parameters.items()}
        command = " ".join(["python -m mlops_tasks.mlproject", stage.name,
                            *(f"{k}={{{k}}}" for k in stage.parameters)])
        entry_points[stage.name] = {"parameters": params, "command": command} if params \
            else {"command": command}
    header = ("# Written by `doit mlproject` from the stage specs: one entry point per stage.\n"
              "# `mlflow run . -e STAGE --env-manager local [-P name=value]` brings STAGE up to\n"
              "# date through doit; a value other than the spec's is a one-off override.\n")
    return header + yaml.safe_dump({"name": name, "entry_points": entry_points},
                                   sort_keys=False, allow_unicode=True)


def doit_args(stage: Stage, given: Mapping[str, str]) -> list[str]:
    """What `doit` runs for an entry point's call. Pure."""
    changed = []
    for key, text in given.items():
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        if key not in stage.parameters or value != stage.parameters[key]:
            changed.append(f"--param={key}={text}")
    return ["run", f"execute:{stage.name}", *changed] if changed else ["run", stage.name]


def main(argv: Sequence[str] | None = None) -> int:
    from doit.doit_cmd import DoitMain

    from .project import load_project

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        console.error("usage: python -m mlops_tasks.mlproject STAGE [name=value ...]")
        return 2
    project = load_project(Path.cwd())
    if args[0] not in {s.name for s in project.stages}:
        console.error(f"no stage '{args[0]}'; stages: {', '.join(project.graph.order)}")
        return 3
    stage = project.stage(args[0])
    given = dict(item.partition("=")[::2] for item in args[1:])
    return int(DoitMain().run(doit_args(stage, given)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
