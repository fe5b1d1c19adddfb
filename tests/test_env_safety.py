"""Only what this tool built is ever deleted, and a failed rebuild keeps the env it was to
replace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_tasks.base.errors import EnvBuildError
from mlops_tasks.env.venv import discard, owned, recover_previous, set_aside
from mlops_tasks.project.spec import Stage

STAGE = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k")


def user_venv(root: Path) -> Path:
    env = root / ".venvs" / "s"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (env / "notes.txt").write_text("mine")
    return env


def test_a_users_venv_is_refused_and_left_untouched(tmp_path):
    env = user_venv(tmp_path)
    for action in (discard, set_aside):
        with pytest.raises(EnvBuildError) as info:
            action(STAGE, tmp_path)
        assert "is a virtualenv this tool did not build" in str(info.value)
        assert "such as .venvs/s" in str(info.value)
    assert (env / "notes.txt").read_text() == "mine" and (env / "pyvenv.cfg").exists()


def test_a_data_folder_is_refused(tmp_path):
    stage = Stage("s", "env_specs/s.yaml", "n.ipynb", "data", "k")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.csv").write_text("a,b\n")
    with pytest.raises(EnvBuildError, match="'data' is a folder this tool did not build"):
        discard(stage, tmp_path)
    assert (tmp_path / "data" / "raw.csv").exists()


def test_the_environment_running_doit_is_refused_even_with_a_marker(tmp_path, monkeypatch):
    env = user_venv(tmp_path)
    (env / ".mlops-env.json").write_text("{}")
    monkeypatch.setattr(sys, "prefix", str(env))
    with pytest.raises(EnvBuildError, match="is the environment running doit"):
        discard(STAGE, tmp_path)
    assert env.exists()


def test_a_build_of_ours_killed_before_its_marker_is_ours(tmp_path):
    from mlops_tasks.env.venv import claim

    env = tmp_path / ".venvs" / "s"
    assert not owned(STAGE, tmp_path)
    claim(STAGE, tmp_path)
    (env / "bin").mkdir(parents=True)
    assert owned(STAGE, tmp_path)
    discard(STAGE, tmp_path)
    assert not env.exists()


def test_recovery_after_a_rebuild_killed_midway(tmp_path):
    from mlops_tasks.env.venv import claim

    old = tmp_path / ".venvs" / ".s.previous"
    (old / "bin").mkdir(parents=True)
    (old / ".mlops-env.json").write_text('{"old": true}')
    claim(STAGE, tmp_path)
    (tmp_path / ".venvs" / "s" / "bin").mkdir(parents=True)  # the new one, half-built
    recover_previous(STAGE, tmp_path)
    assert (tmp_path / ".venvs" / "s" / ".mlops-env.json").read_text() == '{"old": true}'
    assert not old.exists()
    (old / "bin").mkdir(parents=True)  # killed after the new marker: the new env stays
    recover_previous(STAGE, tmp_path)
    assert not old.exists() and (tmp_path / ".venvs" / "s" / ".mlops-env.json").exists()


@pytest.mark.integration
def test_a_failed_package_addition_keeps_the_working_env(tmp_path, wheelhouse):
    from .helpers import doit, make_project, ran, write_spec

    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    doit(root)
    env = root / ".venvs" / "shared-make"
    marker = (env / ".mlops-env.json").read_text()
    spec = (root / "env_specs" / "make.yaml").read_text()
    write_spec(root, "make", spec.replace("name: make", "name: make\npackages: [tabulate]"))
    proc = doit(root, check=False)
    assert proc.returncode != 0
    assert "venv:make: tabulate is not in" in proc.stdout + proc.stderr
    assert "venv:make: the build failed: .venvs/shared-make is kept as it was" in proc.stdout
    assert (env / ".mlops-env.json").read_text() == marker
    assert not (root / ".venvs" / ".shared-make.previous").exists()
    subprocess.run([str(env / "bin" / "python"), "-c", "import ipykernel"], check=True)
    write_spec(root, "make", spec)
    assert ran(doit(root).stdout) == set()  # nothing to rebuild: the old env is the env
    doit(root, "forget", "execute:make")
    assert "execute:make" in ran(doit(root, "run", "execute:make").stdout)  # its kernel runs


@pytest.mark.integration
def test_doit_leaves_a_real_user_venv_alone(tmp_path, wheelhouse):
    from .helpers import doit, make_project, write_spec

    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    mine = root / "myenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(mine)], check=True)
    (mine / "notes.txt").write_text("keep me")
    before = sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*"))
    spec = (root / "env_specs" / "make.yaml").read_text()
    write_spec(root, "make", spec.replace("env_dir: .venvs/shared-make", "env_dir: myenv"))
    for command in ((), ("clean",)):  # doit clean reports it and goes on with the rest
        proc = doit(root, *command, check=False)
        assert proc.returncode != 0 or command == ("clean",)
        assert ("venv:make: env_dir 'myenv' is a virtualenv this tool did not build"
                in proc.stdout + proc.stderr)
    assert sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*")) == before
    assert (mine / "notes.txt").read_text() == "keep me"
