"""Load a project: config, every stage spec, the graph. Fails before anything runs."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from mlops_tasks.base import console
from mlops_tasks.base.doit_names import RESERVED_NAMES
from mlops_tasks.base.errors import SpecError
from mlops_tasks.base.gitindex import tracked
from mlops_tasks.project.config import Config, load_config
from mlops_tasks.project.environments import Environment, apply, load_environments, owner_of, share
from mlops_tasks.project.graph import Graph, build_graph, producer_of
from mlops_tasks.project.matrix import expand, resolve
from mlops_tasks.project.output_rules import check_outputs
from mlops_tasks.project.spec import (
    InputPath,
    Stage,
    Warning_,
    decode_spec,
    parse_stage,
)


@dataclass(frozen=True)
class Project:
    config: Config
    stages: tuple[Stage, ...]
    graph: Graph
    warnings: tuple[Warning_, ...]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def spec_files(root: Path, specs_dir: str) -> list[Path]:
    folder = root / specs_dir
    if not folder.is_dir():
        raise SpecError(specs_dir, f"the folder of stage specs is missing; create {specs_dir}/ "
                        "with one YAML file per stage")
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def load_project(root: Path) -> Project:
    root = root.resolve()
    config = load_config(root)
    stages: list[Stage] = []
    seen: dict[str, Stage] = {}
    owners: dict[tuple[str, str], str] = {}  # (key, value) -> the spec that has it first
    environments = load_environments(root, config.specs_dir)
    for path in spec_files(root, config.specs_dir):
        rel = path.relative_to(root).as_posix()
        text = decode_spec(path.read_bytes(), rel)
        # a file; a folder when the path ends with '/' (workdir)
        exists = lambda p: (root / p).is_dir() if p.endswith("/") else (root / p).is_file()  # noqa: E731
        for stage in expand(apply(parse_stage(text, rel, exists=exists), environments)):
            _check_unique(stage, seen, owners, environments)
            seen[stage.name] = stage
            stages.append(stage)
    if not stages:
        raise SpecError(config.specs_dir, "no stage specs found (*.yaml); add one per stage")
    for group in {s.group for s in stages if s.group}:
        if group in seen:
            raise SpecError(seen[group].spec_path, f"stage name '{group}' is also the name of "
                            f"the matrix in {next(s for s in stages if s.group == group).spec_path}"
                            f" (`doit run {group}` runs all its stages); rename one",
                            line=seen[group].line_of("name"), key="name")
    stages = outputs_in_input_folders(resolve(stages))
    if config.profile:  # a profile's overrides, for the stages that define it
        stages = [replace(s, parameters={**s.parameters, **s.profiles.get(config.profile, {})})
                  for s in stages]
    graph = build_graph(stages)
    stages = share(stages, graph.order)  # one venv and kernel per shared environment
    check_outputs(stages, tracked(root))
    for stage in stages:
        for rel in stage.inputs:
            if producer_of(rel, graph.producer) is None and not (root / rel).exists():
                raise SpecError(stage.spec_path, f"input {rel!r} does not exist and no stage "
                                "lists it in 'outputs'; add the file or the stage that makes "
                                "it", line=stage.line_of("inputs"), key="inputs")
    warnings = tuple(dict.fromkeys(w for s in stages for w in s.warnings))
    return Project(config, tuple(stages), graph, warnings)


def outputs_in_input_folders(stages: list[Stage]) -> list[Stage]:
    """An input folder that holds declared outputs (the data folder a pipeline also writes
    its results into): those outputs are left out of the folder's content hash, so a run
    never makes its own stage, or another, stale through them. Another stage's outputs in
    there become inputs of their own, so a stage that reads them still follows them. Pure."""
    within: dict[str, list[tuple[str, str]]] = {}  # folder -> (owner, path) written inside
    for s in stages:
        for p in s.written:
            parts = p.split("/")
            for depth in range(1, len(parts)):
                within.setdefault("/".join(parts[:depth]), []).append((s.name, p))
    out = []
    for stage in stages:
        inputs: list[str] = []
        extra: list[str] = []
        for rel in stage.inputs:
            inside = within.get(rel.rstrip("/"), [])
            inputs.append(InputPath(rel, tuple(p[len(rel) + 1:] for _, p in inside))
                          if inside else rel)
            extra += [p for owner, p in inside if owner != stage.name]
        inputs += [p for p in dict.fromkeys(extra) if p not in inputs]
        out.append(replace(stage, inputs=tuple(inputs)))
    return out


def _check_unique(stage: Stage, seen: dict[str, Stage], owners: dict[tuple[str, str], str],
                  environments: Mapping[str, Environment]) -> None:
    """Names are unique; a venv and a kernel belong to one spec or one shared environment (a
    matrix's stages share theirs). `owners` records, as stages come, which spec or
    environment file has each venv and kernel."""
    rel = stage.spec_path
    made = f" (made from the matrix in {rel})" if stage.group else ""
    if stage.name in seen:
        raise SpecError(rel, f"stage name '{stage.name}'{made} is already used by "
                        f"{seen[stage.name].spec_path}; stage names must be unique",
                        line=stage.line_of("name"), key="name")
    if stage.group and stage.name in RESERVED_NAMES:
        raise SpecError(rel, f"stage name '{stage.name}'{made} is a doit command or task "
                        "prefix; rename the spec or its values", line=stage.line_of("name"),
                        key="name")
    for key in ("env_dir", "kernel_name"):
        mine = owner_of(stage, environments)
        other = owners.setdefault((key, str(getattr(stage, key))), mine)
        if other != mine:
            raise SpecError(rel, f"'{key}' {getattr(stage, key)!r} is also used by "
                            f"{other}; give each stage its own",
                            line=stage.line_of(key), key=key)


def print_warnings(project: Project) -> None:
    for warning in project.warnings:
        console.write(f"{warning}\n", sys.stderr)
