"""What a stage's notebook is given: overrides read from text with the types its parameters
cell or spec gives, the warning for parameters it does not declare, and the context the tool
injects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError, StageError
from mlops_tasks.base.redact import redact
from mlops_tasks.project.notebooks import (
    declared_parameters,
    parameter_types,
    parameters_from_text,
    read_notebook,
)
from mlops_tasks.project.spec import Stage


def parse_overrides(stage: Stage, items: list[str], root: Path | None = None
                    ) -> dict[str, Any]:
    """`--param=name=value` pairs, each value of the type the notebook's parameters cell
    (in `root`, by default the project folder doit runs in) or the spec says; a string is
    the text as given (see notebooks.value_from_text)."""
    given: dict[str, str] = {}
    for item in items:
        if item.startswith("-"):
            raise StageError("execute", stage.name, "write --param=name=value with '=' after "
                             "--param (doit takes a separate name=value as a doit variable)")
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise StageError("execute", stage.name, f"--param={item} must look like "
                             "--param=name=value, e.g. --param=n_estimators=200")
        given[name] = text
    if not given:
        return {}
    return parameters_from_text(stage, given, cell_types(
        (Path.cwd() if root is None else root) / stage.notebook))


def cell_types(notebook: Path) -> dict[str, str]:
    """The types its parameters cell declares; none from a notebook that cannot be read (the
    execution that follows says why)."""
    try:
        return parameter_types(read_notebook(notebook))
    except MlopsError:
        return {}


# what every notebook is given besides the spec's parameters (see `context`)
CONTEXT_NAMES = ("stage_name", "git_commit", "mlflow_tracking_uri", "mlflow_run_id")


def warn_undeclared(stage: Stage, nb: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    declared = declared_parameters(nb)
    if declared is None:  # the context is injected whatever the spec says: say what lands
        injected = [*CONTEXT_NAMES, *(n for n in parameters if n not in CONTEXT_NAMES)]
        console.warn(f"{stage.notebook} has no cell tagged 'parameters'; papermill injects "
                     f"{', '.join(injected)} in a cell at the top (tag a cell 'parameters' "
                     "to declare them and their defaults)", "execute", stage.name)
        return
    for name in parameters:
        if name not in declared:
            console.warn(f"parameter '{name}' is not declared in the parameters cell of "
                         f"{stage.notebook}; it is injected anyway", "execute", stage.name)


def context(stage: Stage, git: Mapping[str, Any], uri: str, run_id: str,
            stage_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters injected: the spec's, then the context. A spec parameter named like a
    context value wins for the notebook (the kernel's MLFLOW_* variables stay the tool's).
    `uri` is the one the kernel can use (see kernel_tracking)."""
    names = dict(zip(CONTEXT_NAMES, (stage.name, git["sha"], redact(uri), run_id), strict=True))
    for name in names.keys() & stage_parameters.keys():
        console.warn(f"parameter '{name}' is also a context name; the spec's value is "
                     "injected (the kernel's environment keeps the tool's MLflow settings)",
                     "execute", stage.name)
    return {**names, **stage_parameters}
