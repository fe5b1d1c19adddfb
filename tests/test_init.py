"""`mlops-tasks init` starts a project that runs at once; `add-stage` wires a new stage to
an upstream's outputs. Nothing of the user's is overwritten; bad names are refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops_tasks import scaffold
from mlops_tasks.cli import main

from .helpers import PYTHON, clean_env, doit, local_client, ran, set_config


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
    subprocess.run([PYTHON, "-m", "mlops_tasks.cli", "init", str(root)], check=True,
                   env=clean_env(), capture_output=True)
    set_config(root, wheels_cache=str(wheelhouse), index_policy="offline")  # offline here
    doit(root)
    client = local_client(root)
    (experiment,) = client.search_experiments(filter_string="name = 'new'")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    subprocess.run([PYTHON, "-m", "mlops_tasks.cli", "add-stage", "train", "--after",
                    "prepare"], check=True, cwd=root, env=clean_env(), capture_output=True)
    assert "execute:train" in ran(doit(root).stdout)
    assert (root / "out" / "train.txt").read_text().startswith("out/prepared.csv ")
    assert ran(doit(root).stdout) == set()
    spec = root / "env_specs" / "prepare.yaml"
    spec.write_text(spec.read_text().replace("rows: 10", "rows: 12"))
    assert {"execute:prepare", "execute:train"} <= ran(doit(root).stdout)
    assert Path(root / "out" / "prepared.csv").read_text().count("\n") == 13
