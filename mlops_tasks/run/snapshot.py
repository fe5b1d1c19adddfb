"""What a run will execute, taken once before it starts: the notebook as read (an edit saved
during the run is neither run nor recorded), its code and the stage key computed from it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlops_tasks.base.errors import StageFailed
from mlops_tasks.base.files import atomic_write
from mlops_tasks.env.plan import plan_for
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import (
    content_stat,
    inputs_digest,
    parameters_digest,
    sha256_file,
    stage_key,
)
from mlops_tasks.project.notebooks import (
    code_digest,
    notebook_code,
    parse_notebook,
)
from mlops_tasks.project.spec import Stage
from mlops_tasks.run import provenance as audit
from mlops_tasks.run import record


def snapshot_notebook(root: Path, stage: Stage) -> tuple[Path, dict[str, Any], str]:
    """Read the notebook once; keep the bytes that were read as the copy that runs."""
    raw = (root / stage.notebook).read_bytes()
    nb = parse_notebook(raw, stage.notebook)
    source = root / layout.source_snapshot(stage)
    atomic_write(source, raw)
    return source, nb, code_digest(notebook_code(nb))


def compute_key(root: Path, stage: Stage, env: str, code: str, parameters: Mapping[str, Any]
                ) -> tuple[record.StageKey, dict[str, str | None]]:
    """The stage key of this execution, from what is on disk before the notebook starts; `env`
    is the env plan's fingerprint. The freeze that runs is filled in once the venv is there."""
    params = parameters_digest(parameters)
    inputs = audit.content_hashes(root, stage.inputs)
    key = stage_key(env, code, params, inputs, stage.env)
    return record.StageKey(key, "", code, params, inputs_digest(inputs), env), inputs


def with_freeze(root: Path, stage: Stage, key: record.StageKey) -> record.StageKey:
    """The key with the digest of the freeze that runs (the venv is built by now)."""
    return replace(key, freeze=sha256_file(root / layout.freeze_file(stage)))


def current_key(config: Config, stage: Stage) -> record.StageKey:
    """The stage key as things are now, writing nothing and building nothing."""
    nb = parse_notebook((config.root / stage.notebook).read_bytes(), stage.notebook)
    return compute_key(config.root, stage, plan_for(config, stage).fingerprint,
                       code_digest(notebook_code(nb)), stage.parameters)[0]


def input_stats(root: Path, stage: Stage) -> dict[str, list[int]]:
    return {rel: content_stat(root / rel) or [] for rel in stage.inputs}


def check_language(stage: Stage, nb: Mapping[str, Any]) -> None:
    """Stage kernels run Python: a notebook written for another kernel fails before one
    starts, not with a NameError in its first cell."""
    language = str(notebook_code(nb)["language"]).lower()
    if language != "python":
        raise StageFailed(stage.name, f"{stage.notebook} is a {language} notebook (its "
                          "metadata names that kernel language); stages run on Python "
                          "kernels. Port it to Python or run it outside this pipeline")


def depends_on_files(root: Path, stage: Stage) -> list[str]:
    """The project files a run depends on: what `dirty` and the untracked list look at."""
    files = [stage.notebook, stage.spec_path, "pyproject.toml", *stage.inputs]
    if (root / layout.pins_file(stage)).is_file():
        files.append(layout.pins_file(stage))
    return [rel for rel in files if (root / rel).exists()]


@dataclass(frozen=True)
class Snapshot:
    """What the stage key is computed from, read once before anything runs."""

    source: Path
    nb: dict[str, Any]
    key: record.StageKey
    inputs: dict[str, str | None]
    inputs_stat: dict[str, list[int]]
    stage_parameters: dict[str, Any]


def snapshot(config: Config, stage: Stage, overrides: Mapping[str, Any]) -> Snapshot:
    root = config.root
    env = plan_for(config, stage).fingerprint  # before the notebook is read: may fail first
    source, nb, code = snapshot_notebook(root, stage)
    check_language(stage, nb)
    stage_parameters = {**stage.parameters, **overrides}
    stats = input_stats(root, stage)  # before hashing: a change while hashing shows later
    key, inputs = compute_key(root, stage, env, code, stage_parameters)
    return Snapshot(source, nb, key, inputs, stats, stage_parameters)
