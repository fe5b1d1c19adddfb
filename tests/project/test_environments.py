"""Shared environments as data: the environment file, specs that name it, one venv and one
kernel task for all of them, the pins file, gc."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.commands.gc import orphans
from mlops_tasks.pipeline.tasks import all_tasks
from mlops_tasks.project import layout
from mlops_tasks.project.environments import one_per_env, parse_environment
from mlops_tasks.project.load import load_project
from mlops_tasks.project.spec import parse_stage

from ..helpers import scaffolded, write_notebook, write_spec

BASE = 'python: "3.11"\npackages:\n  - pandas>=2\n  - warnings\n'


def test_environment_file_is_validated_like_a_spec():
    env = parse_environment(BASE, "env_specs/environments/base.yaml")
    assert (env.name, env.python, env.packages) == ("base", "3.11", ("pandas>=2",))
    assert (env.env_dir, env.kernel_name) == (".venvs/base", "mlops-base")
    assert "standard-library" in env.warnings[0].message  # 'warnings' dropped, as in a spec
    with pytest.raises(SpecError, match=r"base.yaml:2: .*unknown key 'pakages'.*'packages'"):
        parse_environment('python: "3.11"\npakages: [x]\n', "env_specs/environments/base.yaml")
    with pytest.raises(SpecError, match=r"base.yaml:1: 'python' must be a string.*quote it"):
        parse_environment("python: 3.11\n", "env_specs/environments/base.yaml")
    with pytest.raises(SpecError, match=r"base.yaml: the file is empty"):
        parse_environment("\n", "env_specs/environments/base.yaml")


def test_a_spec_giving_environment_and_packages_is_refused_naming_both():
    text = "name: a\nnotebook: a.ipynb\nenvironment: base\npackages: [idna]\n"
    with pytest.raises(SpecError) as err:
        parse_stage(text, "env_specs/a.yaml")
    assert str(err.value).startswith("env_specs/a.yaml:4: 'packages' and 'environment' "
                                     "(line 3) are both given")
    assert "remove 'packages'" in str(err.value)


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    """Three specs on environment `base` (one a matrix) and one with its own venv."""
    root = tmp_path / "p"
    (root / "env_specs" / "environments").mkdir(parents=True)
    scaffolded(root, "envs")
    (root / "env_specs" / "environments" / "base.yaml").write_text(BASE, encoding="utf-8")
    for name, extra in (("a", "outputs: [out/a.txt]"),
                        ("b", "inputs: [out/a.txt]\nmatrix: {k: [1, 2]}"),
                        ("c", "depends_on: [a]"), ("own", "packages: [idna]")):
        env = "" if name == "own" else "environment: base\n"
        write_spec(root, name, f"name: {name}\nnotebook: nb/{name}.ipynb\n{env}{extra}\n")
        write_notebook(root / "nb" / f"{name}.ipynb", [(None, "x = 1")])
    return root


def test_stages_on_an_environment_share_one_venv_kernel_and_task(project_root: Path):
    project = load_project(project_root)
    shared = [s for s in project.stages if s.environment]
    assert [s.name for s in shared] == ["a", "b-1", "b-2", "c"]
    assert {(s.env_dir, s.kernel_name, s.python, s.packages, s.env_of) for s in shared} == {
        (".venvs/base", "mlops-base", "3.11", ("pandas>=2",), "a")}
    assert len(project.warnings) == 1  # the environment's warning, once
    tasks = list(all_tasks(project.config, list(project.stages), project.graph))
    env_tasks = sorted(f"{t['basename']}:{t['name']}" for t in tasks
                       if t["basename"] in ("venv", "kernel") and t["name"])
    assert env_tasks == ["kernel:base", "kernel:own", "venv:base", "venv:own"]
    venv = next(t for t in tasks if t["basename"] == "venv" and t["name"] == "base")
    assert "environment 'base'" in venv["doc"]
    assert venv["targets"] == [".venvs/base/pip-freeze.txt"]
    for task in (t for t in tasks if t["basename"] == "execute" and t["name"] not in (None, "own")):
        assert task["uptodate"][-1].stage.env_dir == ".venvs/base"  # its freeze is theirs
    assert layout.pins_file(shared[0]) == "env_specs/environments/base.lock"
    assert layout.pins_file(project.stage("own")) == "env_specs/own.lock"
    assert [s.name for s in one_per_env(project.stages)] == ["a", "own"]


def test_gc_keeps_a_shared_env_while_a_spec_uses_it(project_root: Path):
    for name in ("base", "own"):
        (project_root / ".venvs" / name).mkdir(parents=True)
        (project_root / ".venvs" / name / layout.MARKER).write_text("{}")
    assert orphans(project_root, load_project(project_root)) == []
    for name in ("a", "b", "c"):
        (project_root / "env_specs" / f"{name}.yaml").unlink()
    assert orphans(project_root, load_project(project_root)) == [project_root / ".venvs/base"]


def test_environment_names_are_checked_at_load(project_root: Path):
    write_spec(project_root, "c", "name: c\nnotebook: nb/c.ipynb\nenvironment: bsae\n")
    with pytest.raises(SpecError, match=r"c.yaml:3: 'environment' 'bsae' is not defined "
                       r"\(defined: base\) \(did you mean 'base'\?\); create "
                       r"environments/bsae.yaml"):
        load_project(project_root)
    write_spec(project_root, "c", "name: base\nnotebook: nb/c.ipynb\nenv_dir: .venvs/x\n"
               "kernel_name: x\n")
    with pytest.raises(SpecError, match=r"stage name 'base' is also the name of the "
                       r"environment env_specs/a.yaml uses \(its tasks are venv:base"):
        load_project(project_root)
    write_spec(project_root, "c", "name: c\nnotebook: nb/c.ipynb\nenv_dir: .venvs/base\n")
    with pytest.raises(SpecError, match=r"'env_dir' '.venvs/base' is also used by "
                       r"env_specs/environments/base.yaml"):
        load_project(project_root)
