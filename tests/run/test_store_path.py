"""A project folder whose path MLflow's sqlite store cannot take is named with the fix, before
MLflow is asked (it fails with raw SQL errors)."""

from __future__ import annotations

import pytest

from mlops_tasks.base.errors import TrackingError
from mlops_tasks.project.config import load_config
from mlops_tasks.run.lifecycle import experiment


def test_a_path_with_both_quotes_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "q'x\"y"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.mlops_tasks]\nexperiment = "e"\n')
    with pytest.raises(TrackingError, match="its path holds both ' and \" .*rename a folder"):
        experiment(load_config(root))
    assert not (root / ".mlops").exists()
