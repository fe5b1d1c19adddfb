"""Outputs are replaced only on success, and a killed run is recovered exactly; --param
overrides are read as YAML."""

from __future__ import annotations

import json
import os

import pytest

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project.spec import Stage
from mlops_tasks.run.outputs import OutputSet
from mlops_tasks.run.parameters import parse_overrides

STAGE = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k",
              outputs=("out/a.csv", "out/b.csv", "out/new.csv"))


def files(root):
    return {p: (root / p).read_text() for p in STAGE.outputs if (root / p).exists()}


def test_failed_run_puts_previous_outputs_back(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.csv").write_text("good a")
    (tmp_path / "out" / "b.csv").write_text("good b")
    outputs = OutputSet(tmp_path, STAGE)
    outputs.begin()
    assert files(tmp_path) == {}
    (tmp_path / "out" / "a.csv").write_text("half")
    (tmp_path / "out" / "new.csv").write_text("half")
    outputs.rollback()
    assert files(tmp_path) == {"out/a.csv": "good a", "out/b.csv": "good b"}


def test_recovery_after_a_kill_between_moves(tmp_path):
    """Killed after moving a.csv aside but before b.csv: b.csv is the good original."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.csv").write_text("good b")
    backup = tmp_path / ".mlops" / "previous" / "s"
    (backup / "files" / "out").mkdir(parents=True)
    (backup / "files" / "out" / "a.csv").write_text("good a")
    (backup / "manifest.json").write_text(json.dumps({"existed": ["out/a.csv", "out/b.csv"]}))
    (tmp_path / "out" / "new.csv").write_text("half")
    outputs = OutputSet(tmp_path, STAGE)
    outputs.begin()  # the next run starts by recovering, then moves the originals aside
    assert files(tmp_path) == {}
    outputs.rollback()  # and that run fails too
    assert files(tmp_path) == {"out/a.csv": "good a", "out/b.csv": "good b"}


def test_commit_keeps_the_new_outputs(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.csv").write_text("old")
    outputs = OutputSet(tmp_path, STAGE)
    outputs.begin()
    for name in ("a", "b", "new"):
        (tmp_path / "out" / f"{name}.csv").write_text("new")
    outputs.commit()
    assert set(files(tmp_path).values()) == {"new"}
    assert not os.path.exists(tmp_path / ".mlops" / "previous" / "s")


def test_parameter_overrides_are_yaml():
    assert parse_overrides(STAGE, ["n=200", "ratios=[0.5, 1]", "name=abc", "flag=true"]) == {
        "n": 200, "ratios": [0.5, 1], "name": "abc", "flag": True}
    with pytest.raises(MlopsError, match="--param=name=value"):
        parse_overrides(STAGE, ["--param"])
    with pytest.raises(MlopsError, match="must look like"):
        parse_overrides(STAGE, ["no-equals"])
