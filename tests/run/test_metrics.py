"""Metrics files: a name MLflow would refuse is skipped with a warning naming the file and
the rule, instead of failing log:S on every run."""

from __future__ import annotations

import json

import pytest

from mlops_tasks.project.spec import Stage
from mlops_tasks.run.log import metric_name_problem, read_metrics


@pytest.mark.parametrize("name, ok", [
    ("accuracy", True), ("cv/accuracy mean", True), ("f1-score.v2", True),
    ("a|b", False), ("loss:val", False), ("", False), ("x" * 251, False),
    ("a/../b", False), ("/abs", False), ("a//b", False),
])
def test_metric_names_mlflow_accepts_on_every_agent(name, ok):
    assert (metric_name_problem(name) is None) == ok


def test_a_bad_metric_name_is_skipped_and_named(tmp_path, capsys):
    (tmp_path / "m.json").write_text(json.dumps({"acc": 0.9, "a|b": 1, "flag": True}))
    stage = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k", metrics=("m.json",))
    assert read_metrics(tmp_path, stage) == {"acc": 0.9}
    said = capsys.readouterr()
    text = said.out + said.err
    assert "skipping metric 'a|b' in m.json: an MLflow metric name holds" in text
    assert "skipping metric 'flag' in m.json: not a number" in text
