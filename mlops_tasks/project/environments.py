"""Shared environments: one venv and one kernel, defined once in
env_specs/environments/<name>.yaml, for every spec that says `environment: <name>`.

- The file gives `python` (or `python_exe`), `packages` and `notes`, validated as in a spec;
  its name is the environment's. The venv is `.venvs/<name>`, the kernel `mlops-<name>`, the
  pins file `env_specs/environments/<name>.lock` (`doit lock`).
- Its tasks are `venv:<name>` and `kernel:<name>`, made once, with the first stage using it
  in run order (that stage's `env_of` names the stage; the tasks carry the environment's
  name so they keep it whichever stage comes first). Every stage on it follows its freeze.
Parsing is pure; `load_environments` reads the folder."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project import layout
from mlops_tasks.project.spec import (
    NAME_RE,
    RawSpec,
    Stage,
    Warning_,
    closest_hint,
    compose,
    decode_spec,
    read_packages,
    read_python,
)

FOLDER = "environments"  # beside the specs: env_specs/environments/<name>.yaml
KEYS = ("python", "python_exe", "packages", "notes")


@dataclass(frozen=True)
class Environment:
    """One validated environment file."""

    name: str
    path: str  # project-relative, for messages
    python: str | None = None
    python_exe: str | None = None
    packages: tuple[str, ...] = ()
    warnings: tuple[Warning_, ...] = ()

    @property
    def env_dir(self) -> str:
        return f"{layout.VENVS}/{self.name}"

    @property
    def kernel_name(self) -> str:
        return f"mlops-{self.name}"


def parse_environment(text: str, path: str) -> Environment:
    """Validate one environment file (its name is the file's stem). Pure."""
    name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not NAME_RE.match(name):
        raise SpecError(path, f"environment name {name!r} (the file's name) may use only "
                        "a-z, 0-9, '_' and '-'; rename the file")
    if not text.strip():
        raise SpecError(path, "the file is empty; an environment needs at least 'packages' "
                        "(a list, may be empty) or 'python'")
    spec = RawSpec(path, *compose(text, path))
    for key in spec.data:
        if key not in KEYS:
            raise spec.fail(key, f"unknown key '{key}'{closest_hint(key, KEYS)} in an environment;"
                            f" valid keys: {', '.join(KEYS)} (venv and kernel are named after "
                            f"the file: {layout.VENVS}/{name}, mlops-{name})")
    python, python_exe = read_python(spec)
    packages, warnings = read_packages(spec)
    return Environment(name, path, python, python_exe, tuple(packages), tuple(warnings))


def environment_files(root: Path, specs_dir: str) -> list[Path]:
    folder = root / specs_dir / FOLDER
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []


def load_environments(root: Path, specs_dir: str) -> dict[str, Environment]:
    """Every environment of the project by name (none when the folder is absent)."""
    found: dict[str, Environment] = {}
    for path in environment_files(root, specs_dir):
        rel = path.relative_to(root).as_posix()
        env = parse_environment(decode_spec(path.read_bytes(), rel), rel)
        if env.name in found:
            raise SpecError(rel, f"environment '{env.name}' is also defined by "
                            f"{found[env.name].path}; keep one")
        found[env.name] = env
    return found


def apply(stage: Stage, environments: Mapping[str, Environment]) -> Stage:
    """A stage on a shared environment gets its Python, packages, venv and kernel. Pure."""
    if stage.environment is None:
        return stage
    env = environments.get(stage.environment)
    if env is None:
        known = ", ".join(sorted(environments)) or "none yet"
        raise SpecError(stage.spec_path, f"'environment' {stage.environment!r} is not defined "
                        f"(defined: {known}){closest_hint(stage.environment, list(environments))};"
                        f" create {FOLDER}/{stage.environment}.yaml beside the specs with its "
                        "'python' and 'packages'", line=stage.line_of("environment"),
                        key="environment")
    return replace(stage, python=env.python, python_exe=env.python_exe, packages=env.packages,
                   env_dir=env.env_dir, kernel_name=env.kernel_name,
                   warnings=(*stage.warnings, *env.warnings))


def owner_of(stage: Stage, environments: Mapping[str, Environment]) -> str:
    """Who a stage's venv and kernel belong to, for the one-venv-per-spec check: its
    environment's file, else its own spec."""
    if stage.environment in environments:
        return environments[str(stage.environment)].path
    return stage.spec_path


def share(stages: Sequence[Stage], order: Sequence[str]) -> list[Stage]:
    """Every stage on an environment has `env_of` = the first of them in run order (the one
    whose tasks build it). An environment may not share its name with another stage, whose
    venv:/kernel: tasks would have the same name. Pure."""
    by_name = {s.name: s for s in stages}
    first: dict[str, str] = {}
    for name in order:
        env = by_name[name].environment
        if env is not None:
            first.setdefault(env, name)
    for stage in stages:
        if stage.name in first and stage.environment != stage.name:
            user = by_name[first[stage.name]]
            raise SpecError(stage.spec_path, f"stage name '{stage.name}' is also the name of "
                            f"the environment {user.spec_path} uses (its tasks are "
                            f"venv:{stage.name} and kernel:{stage.name}); rename one",
                            line=stage.line_of("name"), key="name")
    return [replace(s, env_of=first[s.environment]) if s.environment else s for s in stages]


def one_per_env(stages: Iterable[Stage]) -> list[Stage]:
    """The first stage of each venv (a shared environment or a matrix is pinned, filled or
    built once), in the given order."""
    seen: dict[str, Stage] = {}
    for stage in stages:
        seen.setdefault(stage.env_dir, stage)
    return list(seen.values())


def task_name(stage: Stage) -> str:
    """The name of the venv:/kernel: tasks a stage's notebook runs on."""
    return stage.environment or stage.env_of or stage.name
