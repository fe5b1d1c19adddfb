"""Matrix stages: a spec with `matrix:` is one stage per combination of its values, and
references to a group of stages resolve to its members. Pure.

- Names: the spec's name, then each value's label, joined by '-': `fit` with
  `matrix: {model: [rf, svm], depth: [3, 10]}` gives `fit-rf-3`, `fit-rf-10`, `fit-svm-3`,
  `fit-svm-10`. A value's label is the value itself for a string, number or boolean, its
  `name` for a mapping that has one (`{name: rf, grid: {...}}`), else its position (1, 2...);
  lowercased, anything but a-z, 0-9, '_' and '-' becomes '-'. Only the name is normalised.
- Paths: `{model}` in `outputs`, `inputs` and `metrics` is the value as written (`CSIC_ICV`
  stays `CSIC_ICV`, as the notebook's f"out/{model}.txt" writes it), a mapping's `name`, or
  its position; `{stage}` the generated name.
- Parameters: the combination is merged into the spec's `parameters` (the values as they
  are, mappings included), and `{model}` / `{stage}` in a parameter's string values (nested
  ones too) are filled as in paths; a string that is only `"{model}"` becomes the value
  itself. Other braces in parameter strings are left as they are.
- The members share the spec's venv and kernel: the first member's `venv:` and `kernel:`
  tasks build them for all.
- Elsewhere, `depends_on: [fit]` means every member, and an input with `*` (`models/*.pkl`)
  means every declared output it matches."""

from __future__ import annotations

import fnmatch
import itertools
import re
import string
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.spec import Stage, project_path


def label(value: Any, position: int) -> str:
    if isinstance(value, str | int | float | bool):
        text = str(value).lower() if isinstance(value, bool) else str(value)
    elif isinstance(value, dict) and isinstance(value.get("name"), str | int):
        text = str(value["name"])
    else:
        text = str(position + 1)
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or str(position + 1)


def as_written(value: Any, position: int) -> str:
    """What `{name}` stands for in paths and parameter strings: the value as the notebook
    formats it (`str(value)`), a mapping's `name`, else its position (1, 2...)."""
    if isinstance(value, str | int | float | bool):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("name"), str | int):
        return str(value["name"])
    return str(position + 1)


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_parameter(value: Any, texts: dict[str, str], values: dict[str, Any]) -> Any:
    """`{name}` of the matrix (or `{stage}`) in a parameter's strings, at any depth; a
    string that is only the placeholder becomes the value itself (a number stays one)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return PLACEHOLDER.sub(lambda m: texts.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: fill_parameter(v, texts, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_parameter(v, texts, values) for v in value]
    return value


def _fill(stage: Stage, key: str, paths: Sequence[str], labels: dict[str, str]
          ) -> tuple[str, ...]:
    out = []
    for path in paths:
        names = {field for _, field, _, _ in string.Formatter().parse(path) if field}
        unknown = names - labels.keys()
        if unknown:
            raise SpecError(stage.spec_path, f"'{key}' entry {path!r} uses "
                            f"{{{sorted(unknown)[0]}}}, which is not in 'matrix' "
                            f"({', '.join(sorted(stage.matrix))}) nor {{stage}}; fix the name or "
                            "add it to 'matrix'", line=stage.line_of(key), key=key)
        filled = project_path(path.format_map(labels)) if names else path
        if filled is None:
            raise SpecError(stage.spec_path, f"'{key}' entry {path!r} becomes "
                            f"{path.format_map(labels)!r} with the matrix values, which leaves "
                            "the project; use values that are plain names",
                            line=stage.line_of(key), key=key)
        out.append(filled)
    return tuple(out)


def expand(stage: Stage) -> list[Stage]:
    """The stages of one spec: itself, or one per combination of its matrix."""
    if not stage.matrix:
        return [stage]
    keys = list(stage.matrix)
    members: list[Stage] = []
    made: dict[str, str] = {}  # output path -> the member that writes it
    for combo in itertools.product(*(list(enumerate(stage.matrix[k])) for k in keys)):
        name = "-".join([stage.name, *(label(v, i) for i, v in combo)])
        labels = {k: as_written(v, i) for k, (i, v) in zip(keys, combo, strict=True)}
        labels["stage"] = name
        values = {**{k: v for k, (_, v) in zip(keys, combo, strict=True)}, "stage": name}
        parameters = {k: fill_parameter(v, labels, values) for k, v in stage.parameters.items()}
        member = replace(
            stage, name=name, group=stage.name, matrix={},
            parameters={**parameters, **{k: v for k, (_, v) in zip(keys, combo, strict=True)}},
            outputs=_fill(stage, "outputs", stage.outputs, labels),
            inputs=_fill(stage, "inputs", stage.inputs, labels),
            metrics=_fill(stage, "metrics", stage.metrics, labels))
        for path in member.written:
            if path in made:
                raise SpecError(stage.spec_path, f"stages {made[path]} and {name} would both "
                                f"write {path}; put a matrix parameter in the path, e.g. "
                                f"models/{{{keys[0]}}}.pkl", line=stage.line_of("outputs"),
                                key="outputs")
            made[path] = name
        members.append(member)
    owner = members[0].name  # one venv task and one kernel task for all of them
    return [replace(m, env_of=owner) for m in members]


def resolve(stages: Sequence[Stage]) -> list[Stage]:
    """`depends_on` naming a group means its members; an input with `*` means every other
    stage's declared output it matches (none matching is an error)."""
    groups: dict[str, list[str]] = {}
    for stage in stages:
        if stage.group:
            groups.setdefault(stage.group, []).append(stage.name)
    declared = [(s.name, p) for s in stages for p in s.written]
    out = []
    for stage in stages:
        depends = [m for d in stage.depends_on for m in groups.get(d, [d])]
        inputs: list[str] = []
        for rel in stage.inputs:
            if "*" not in rel:
                inputs.append(rel)
                continue
            found = [p for owner, p in declared if owner != stage.name
                     and fnmatch.fnmatchcase(p, rel)]
            if not found:
                raise SpecError(stage.spec_path, f"input {rel!r} matches no stage's declared "
                                "outputs; a pattern with '*' reads the outputs of other "
                                "stages (e.g. models/*.pkl for a matrix stage's models)",
                                line=stage.line_of("inputs"), key="inputs")
            inputs += [p for p in found if p not in inputs]
        out.append(replace(stage, depends_on=tuple(dict.fromkeys(depends)),
                           inputs=tuple(inputs)))
    return out
