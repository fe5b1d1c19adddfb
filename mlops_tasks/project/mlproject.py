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

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project.fingerprint import canonical_json
from mlops_tasks.project.notebooks import parameter_types, parameters_from_text, read_notebook
from mlops_tasks.project.spec import Stage


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


def doit_args(stage: Stage, given: Mapping[str, str], cell_types: Mapping[str, str]
              ) -> list[str]:
    """What `doit` runs for an entry point's call: `run S` when every value is the spec's
    (its text as mlproject_text wrote it, or a text of the same value and type), else
    `run execute:S` with the others as overrides. `cell_types`: what the notebook's
    parameters cell says (notebooks.parameter_types). A value not of its type is a
    StageError. Pure."""
    changed = {k: text for k, text in given.items()
               if k not in stage.parameters or text != _text(stage.parameters[k])}
    values = parameters_from_text(stage, changed, cell_types, shown="-P {name}={text}")
    overrides = [f"--param={key}={changed[key]}" for key, value in values.items()
                 if key not in stage.parameters
                 or canonical_json(value) != canonical_json(stage.parameters[key])]
    return ["run", f"execute:{stage.name}", *overrides] if overrides else ["run", stage.name]


def main(argv: Sequence[str] | None = None) -> int:
    from doit.doit_cmd import DoitMain

    from mlops_tasks.project.load import load_project

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
    try:  # a value not of its type is refused before doit runs (the stage stays as it was)
        nb = read_notebook(project.config.root / stage.notebook)
        run = doit_args(stage, given, parameter_types(nb))
    except MlopsError as err:
        console.error(str(err))
        return 3
    return int(DoitMain().run(run))
