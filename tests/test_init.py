"""`mlops-tasks init` starts a project that runs at once; `add-stage` wires a new stage to
an upstream's outputs. Nothing of the user's is overwritten; bad names are refused."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mlops_tasks.commands.cli import main
from mlops_tasks.project import scaffold
from mlops_tasks.project.config import load_config

from .helpers import PYTHON, clean_env, forked_doit, local_client, ran, set_config


def test_init_writes_a_project_and_never_overwrites(tmp_path, capsys):
    (tmp_path / ".gitignore").write_text("mine\n")
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kept .gitignore (it exists; nothing is overwritten)" in out
    assert (tmp_path / ".gitignore").read_text() == "mine\n"
    for rel in ("dodo.py", "pyproject.toml", "env_specs/prepare.yaml", "Jenkinsfile",
                "notebooks/prepare.ipynb", "wheels_cache/README.md"):
        assert (tmp_path / rel).is_file(), rel
    nb = json.loads((tmp_path / "notebooks" / "prepare.ipynb").read_text())
    assert nb["cells"][1]["metadata"]["tags"] == ["parameters"]
    assert all(c.get("outputs", []) == [] for c in nb["cells"])
    assert "[tool.doit]" in (tmp_path / "pyproject.toml").read_text()
    assert main(["init", str(tmp_path)]) == 0  # twice: everything kept
    assert "wrote" not in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["add-stage", "Train"], "'Train' is not a stage name"),
    (["add-stage", "list"], "'list' is a doit command or task prefix"),
    (["add-stage", "prepare"], "a stage named 'prepare' exists already"),
    (["add-stage", "train", "--after", "nosuch"], "--after nosuch: no such stage; stages: "
                                                  "prepare"),
])
def test_add_stage_refuses_what_cannot_work(tmp_path, monkeypatch, capsys, args, message):
    main(["init", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(args) == 3
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "env_specs").iterdir()) == ["prepare.yaml"]


def test_names_are_checked_with_the_spec_rule():
    assert scaffold.check_name("fit-rf_10") is None
    assert "not a stage name" in scaffold.check_name("fit rf")


@pytest.mark.integration
def test_init_then_doit_then_add_stage(tmp_path, wheelhouse):
    root = tmp_path / "new"
    subprocess.run([PYTHON, "-m", "mlops_tasks.commands.cli", "init", str(root)], check=True,
                   env=clean_env(), capture_output=True)
    set_config(root, wheels_cache=str(wheelhouse), index_policy="offline")  # offline here
    forked_doit(root)
    client = local_client(root)
    (experiment,) = client.search_experiments(filter_string="name = 'new'")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    subprocess.run([PYTHON, "-m", "mlops_tasks.commands.cli", "add-stage", "train", "--after",
                    "prepare"], check=True, cwd=root, env=clean_env(), capture_output=True)
    assert "execute:train" in ran(forked_doit(root).stdout)
    assert (root / "out" / "train.txt").read_text().startswith("out/prepared.csv ")
    assert ran(forked_doit(root).stdout) == set()
    spec = root / "env_specs" / "prepare.yaml"
    spec.write_text(spec.read_text().replace("rows: 10", "rows: 12"))
    assert {"execute:prepare", "execute:train"} <= ran(forked_doit(root).stdout)
    assert Path(root / "out" / "prepared.csv").read_text().count("\n") == 13


def next_line(out: str) -> str:
    (line,) = [line for line in out.splitlines() if line.startswith("next: ")]
    return line[len("next: "):].split("        (")[0]


@pytest.mark.skipif(os.name == "nt", reason="pastes the hint into a POSIX shell")
def test_the_next_hint_is_quoted_and_starts_git(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = "a $(touch pwned) `touch pwned2` b"
    assert main(["init", folder]) == 0
    hint = next_line(capsys.readouterr().out)
    assert hint.split(" && ")[1:] == ["git init", "git add -A",
                                      'git commit -m "a new pipeline"', "doit"]
    cd = hint.split(" && ")[0]
    pasted = subprocess.run(["sh", "-c", f"{cd} && pwd"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert pasted.returncode == 0, pasted.stderr
    assert Path(pasted.stdout.strip()) == (tmp_path / folder).resolve()
    assert not list(tmp_path.glob("pwned*"))


def test_inside_a_git_repository_the_hint_has_no_git_init(tmp_path, capsys, monkeypatch):
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert next_line(capsys.readouterr().out) == "doit"


def test_windows_hints_are_pasted_safely():
    assert scaffold.shell_path(r"C:\work\my-pipe", windows=True) == r"C:\work\my-pipe"
    assert scaffold.shell_path("my pipe", windows=True) == '"my pipe"'
    assert scaffold.shell_path("a$(x)", windows=True) is None  # PowerShell expands it
    assert scaffold.shell_path("a%PATH%", windows=True) is None  # cmd expands it
    assert "cd into the new folder" in scaffold.next_steps("a%x%", False, True)


def test_a_folder_with_its_own_files_is_told_what_to_add(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    (tmp_path / "dodo.py").write_text("def task_hello():\n    return {'actions': []}\n")
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "kept pyproject.toml" in out and "kept dodo.py" in out
    assert "dodo.py does not load mlops-tasks' tasks; add this line to it:\n" + scaffold.DODO \
        in out
    assert "pyproject.toml has no [tool.doit] section; add:\n[tool.doit]\n" in out
    assert "pyproject.toml has no [tool.mlops_tasks] section; add:\n[tool.mlops_tasks]\n" in out
    # what it prints is what it means: appended, the project loads with the setting
    sections = out[out.index("[tool.doit]\n"):out.index("next: ")]
    sections = "\n".join(line for line in sections.splitlines()
                         if not line.startswith("pyproject.toml has no"))
    with (tmp_path / "pyproject.toml").open("a") as f:
        f.write("\n" + sections + "\n")
    with (tmp_path / "dodo.py").open("a") as f:
        f.write(scaffold.DODO)
    config = load_config(tmp_path)
    assert config.orchestrator is not None and config.orchestrator.kind == "wheel"
    assert (tmp_path / config.orchestrator.requirement).is_file()
    capsys.readouterr()
    assert main(["init", str(tmp_path)]) == 0  # complete now: nothing more to add
    out = capsys.readouterr().out
    assert "add:" not in out and "add this line" not in out and "kept pyproject.toml" in out


def test_an_existing_mlops_section_is_told_the_orchestrator_line(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text('[tool.doit]\n\n[tool.mlops_tasks]\n'
                                             'experiment = "x"\n')
    (tmp_path / ".gitignore").write_text("wheels_cache/\n")
    assert main(["init", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "your .gitignore was kept and ignores wheels_cache/: let it keep " \
           "wheels_cache/mlops_tasks-" in out
    assert "does not say where CI installs mlops-tasks from; add to it:\n" in out
    assert 'orchestrator = "wheels_cache/mlops_tasks-' in out
