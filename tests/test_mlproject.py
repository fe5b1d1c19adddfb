"""MLflow Projects: `doit mlproject` writes one entry point per stage; `mlflow run . -e S`
brings S up to date through doit, and its run is linked to the stage runs it causes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_tasks.project.load import load_project
from mlops_tasks.project.mlproject import doit_args, mlproject_text
from mlops_tasks.project.spec import parse_stage

from .helpers import clean_env, doit, local_client, make_project

REPO = Path(__file__).resolve().parents[1]


def test_the_example_keeps_an_mlproject_that_matches_its_specs():
    project = load_project(REPO)
    expected = mlproject_text(project.config.experiment_name(),
                              [project.stage(n) for n in project.graph.order])
    assert (REPO / "MLproject").read_text(encoding="utf-8") == expected, \
        "run `doit mlproject` and commit MLproject"


def test_values_other_than_the_specs_are_overrides():
    stage = parse_stage("name: fit\nnotebook: nb.ipynb\nparameters: {n: 100, cfg: {a: 1}}\n",
                        "fit.yaml")
    assert doit_args(stage, {"n": "100", "cfg": '{"a": 1}'}, {}) == ["run", "fit"]
    assert doit_args(stage, {"n": "200", "cfg": '{"a": 1}'}, {}) == [
        "run", "execute:fit", "--param=n=200"]


@pytest.mark.integration
def test_mlflow_run_brings_a_stage_up_to_date(tmp_path, wheelhouse):
    root = make_project(tmp_path / "p", wheelhouse, with_use=False)
    doit(root, "mlproject")
    store = f"sqlite:///{(root / '.mlops' / 'mlflow.db').as_posix()}"
    (root / ".mlops").mkdir(exist_ok=True)
    env = clean_env(MLFLOW_TRACKING_URI=store,  # the project run beside the stage runs
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run([sys.executable, "-m", "mlflow", "run", str(root), "-e", "make",
                           "--env-manager", "local", "--experiment-name", "projects"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (root / "out" / "greeting.txt").read_text() == "hi hi"
    status = doit(root, "list", "--all", "--status").stdout
    assert "U execute:make" in status and "U log:make" in status
    client = local_client(root)
    (project_run,) = client.search_runs(
        [client.get_experiment_by_name("projects").experiment_id])
    (stage_run,) = client.search_runs(
        [client.get_experiment_by_name("test-pipeline").experiment_id])
    assert stage_run.data.tags["mlops.project_run_id"] == project_run.info.run_id
    assert project_run.info.status == "FINISHED"
