"""Load a project: config, every stage spec, the graph. Fails before anything runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import console
from .config import Config, load_config
from .errors import SpecError
from .gitindex import tracked
from .graph import Graph, build_graph, producer_of
from .output_rules import check_outputs
from .spec import Stage, Warning_, decode_spec, parse_stage


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
    for path in spec_files(root, config.specs_dir):
        rel = path.relative_to(root).as_posix()
        text = decode_spec(path.read_bytes(), rel)
        stage = parse_stage(text, rel, exists=lambda p: (root / p).is_file())
        if stage.name in seen:
            raise SpecError(rel, f"stage name '{stage.name}' is already used by "
                            f"{seen[stage.name].spec_path}; stage names must be unique",
                            line=stage.line_of("name"), key="name")
        for other in stages:
            for key in ("env_dir", "kernel_name"):
                if getattr(other, key) == getattr(stage, key):
                    raise SpecError(rel, f"'{key}' {getattr(stage, key)!r} is also used by "
                                    f"{other.spec_path}; give each stage its own",
                                    line=stage.line_of(key), key=key)
        seen[stage.name] = stage
        stages.append(stage)
    if not stages:
        raise SpecError(config.specs_dir, "no stage specs found (*.yaml); add one per stage")
    graph = build_graph(stages)
    check_outputs(stages, tracked(root))
    for stage in stages:
        for rel in stage.inputs:
            if producer_of(rel, graph.producer) is None and not (root / rel).exists():
                raise SpecError(stage.spec_path, f"input {rel!r} does not exist and no stage "
                                "lists it in 'outputs'; add the file or the stage that makes "
                                "it", line=stage.line_of("inputs"), key="inputs")
    warnings = tuple(w for s in stages for w in s.warnings)
    return Project(config, tuple(stages), graph, warnings)


def print_warnings(project: Project) -> None:
    for warning in project.warnings:
        console.write(f"{warning}\n", sys.stderr)
