"""The audit trail in MLflow: a real tracking server on 127.0.0.1 and the local sqlite
default; server outages, drift, `doit audit`, notebooks that manage MLflow themselves,
and credentials that never leave."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    NOTEBOOK_CELLS,
    all_artifacts,
    clean_env,
    forked_doit,
    make_project,
    ran,
    write_notebook,
)

pytestmark = pytest.mark.integration


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def stage_runs(client, experiment: str = "test-pipeline") -> dict:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    out: dict = {}
    for run in runs:
        stage = run.data.tags.get("mlops.stage")
        if "mlops.stage_run_id" in run.data.tags:
            continue  # a run the stage's notebook made itself
        if stage and stage not in out and run.info.status == "FINISHED":
            out[stage] = run
    return out


INVOCATION = "jenkins-pipeline-42"  # what a Jenkinsfile passes from BUILD_TAG


@pytest.fixture(scope="module")
def served(tmp_path_factory, wheelhouse, mlflow_server):
    root = make_project(tmp_path_factory.mktemp("served") / "proj", wheelhouse)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLOPS_INVOCATION_ID=INVOCATION)
    first = forked_doit(root, env=env)
    return root, env, first


def test_every_audit_field_on_a_server_run(served, mlflow_server):
    root, _, first = served
    client = client_for(mlflow_server.url)
    runs = stage_runs(client)
    assert set(runs) == {"make", "use"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    use = runs["use"]
    assert use.info.run_name == f"use@{head[:7]}"
    assert use.data.params["scale"] == "3" and use.data.params["stage_name"] == "use"
    tags = use.data.tags
    assert tags["mlops.git_sha"] == head and tags["mlops.git_dirty"] == "false"
    assert tags["mlops.git_branch"] == "main"
    for key in ("mlops.env_fingerprint", "mlops.notebook_code_sha256", "mlops.spec_sha256",
                "mlops.python_path", "mlops.python_version", "mlops.venv", "mlops.host",
                "mlops.user", "mlops.version.doit", "mlops.version.papermill",
                "mlops.version.mlflow", "mlops.invocation_id", "mlops.freeze_sha256",
                "mlops.stage_key", "mlops.key.freeze", "mlops.key.code",
                "mlops.key.parameters", "mlops.key.inputs"):
        assert tags.get(key), key
    assert tags["mlops.invocation_id"] == runs["make"].data.tags["mlops.invocation_id"]
    assert use.data.metrics["length"] == 15.0  # declared metrics file
    assert use.data.metrics["logged_by_notebook"] == 42.0  # the notebook's own call
    kept = json.loads((root / ".mlops/runs/use/last-run.json").read_text())["metrics"]
    assert kept == {"length": 15.0, "logged_by_notebook": 42.0}  # the report reads these
    artifacts = all_artifacts(client, use.info.run_id)
    assert {"notebook/use.ipynb", "notebook/use.html", "env/pip-freeze.txt",
            "spec/use.yaml", "audit.json", "outputs/out/metrics.json"} <= artifacts
    assert "outputs/out/greeting.txt" in all_artifacts(client, runs["make"].info.run_id)
    local = root / ".mlops" / "runs" / "use" / use.info.run_id
    record = json.loads((local / "audit.json").read_text())
    assert record["inputs"]["out/greeting.txt"] and record["outputs"]["out/metrics.json"]
    assert record["start"] <= record["end"] and record["duration_s"] > 0
    assert record["python"]["version"] and record["env_fingerprint"]
    assert (local / "use.html").read_text().count("In [") >= 2
    for run in runs.values():
        stage = run.data.tags["mlops.stage"]
        assert (f"execute:{stage}: MLflow run {run.info.run_id} ({run.info.run_name}), "
                f"invocation {tags['mlops.invocation_id']}\n") in first.stdout


def test_the_invocation_id_from_the_environment_is_on_every_run(served, mlflow_server):
    root, _, _ = served
    client = client_for(mlflow_server.url)
    for stage in ("make", "use"):
        record = json.loads((root / ".mlops" / "executed" / f"{stage}.json").read_text())
        assert record["invocation_id"] == INVOCATION
        run = client.get_run(record["run_id"])
        assert run.data.tags["mlops.stage"] == stage
        assert run.data.tags["mlops.invocation_id"] == INVOCATION


def test_server_down_mid_pipeline_then_back(tmp_path, wheelhouse, mlflow_server):
    root = make_project(tmp_path / "proj", wheelhouse)
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLOPS_STORE_RETRY_SECONDS="2")
    forked_doit(root, "run", "execute:make", env=env)
    run_id = json.loads((root / ".mlops/executed/make.json").read_text())["run_id"]
    mlflow_server.stop()
    try:
        proc = forked_doit(root, env=env, check=False)
        assert proc.returncode != 0
        assert f"cannot log run {run_id} to {mlflow_server.url}: " in proc.stdout + proc.stderr
        assert "execute:make" not in ran(proc.stdout)
    finally:
        mlflow_server.start()
    tasks = ran(forked_doit(root, env=env).stdout)
    assert "log:make" in tasks and "execute:make" not in tasks
    assert set(stage_runs(client_for(mlflow_server.url), "test-pipeline")) >= {"make", "use"}
    assert ran(forked_doit(root, env=env).stdout) == set()


def test_drift_is_tagged_listed_and_printed(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text().replace("name: make", 'name: make\npackages: ["idna==3.6"]'))
    forked_doit(root)
    spec.write_text(spec.read_text().replace("idna==3.6", "idna>3.6"))
    out = forked_doit(root).stdout
    assert "log:make: env drift since the last run (0 added, 0 removed, 1 changed)" in out
    idna = next(line.split("==")[1] for line in
                (root / ".venvs/shared-make/pip-freeze.txt").read_text().splitlines()
                if line.startswith("idna=="))
    assert f"\n    ~ idna 3.6 -> {idna}\n" in out and idna != "3.6"
    client = client_for(f"sqlite:///{(root / '.mlops' / 'mlflow.db').as_posix()}")
    run = stage_runs(client)["make"]
    assert run.data.tags["mlops.env_drift"] == "true"
    assert "env/env-drift.txt" in all_artifacts(client, run.info.run_id)


def test_doit_audit_on_a_clean_and_a_tampered_workspace(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    first = forked_doit(root, "audit", check=False)
    assert first.returncode == 1 and "make: no logged run yet" in first.stdout
    forked_doit(root)
    clean = forked_doit(root, "audit")
    assert "outputs: ok" in clean.stdout and "env: ok" in clean.stdout
    (root / "out" / "greeting.txt").write_text("tampered")
    tampered = forked_doit(root, "audit", "make", check=False)
    assert tampered.returncode == 1
    assert "outputs: CHANGED: out/greeting.txt" in tampered.stdout


def test_notebooks_that_manage_mlflow_themselves(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse)
    cells = list(NOTEBOOK_CELLS["use"][:2]) + [
        (None, "import mlflow\nwith mlflow.start_run():\n    mlflow.log_metric('own_block', 1)"),
        (None, "for i in range(2):\n    with mlflow.start_run(run_name=f'trial-{i}'):\n"
               "        mlflow.log_metric('trial', i)"),
        (None, "with mlflow.start_run(run_id=mlflow_run_id):\n"
               "    with mlflow.start_run(run_name='child', nested=True):\n"
               "        mlflow.log_metric('child', 1)"),
        (None, "mlflow.set_experiment('own-experiment')\nwith mlflow.start_run():\n"
               "    mlflow.log_metric('elsewhere', 1)"),
    ]
    write_notebook(root / "notebooks" / "use.ipynb", cells)
    forked_doit(root)
    client = client_for(f"sqlite:///{(root / '.mlops' / 'mlflow.db').as_posix()}")
    stage_run = stage_runs(client)["use"]
    assert stage_run.data.metrics["own_block"] == 1.0
    assert stage_run.data.metrics["length"] == 15.0
    exp = client.get_experiment_by_name("test-pipeline")
    names = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert {"trial-0", "trial-1", "child"} <= set(names)
    assert names["child"].data.tags["mlflow.parentRunId"] == stage_run.info.run_id
    own = client.get_experiment_by_name("own-experiment")
    assert own and client.search_runs([own.experiment_id])


def test_credentials_never_leave(tmp_path, wheelhouse, mlflow_server):
    secret = "s3cr3t-t0ken"
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text() + f"notes: mirror at https://ci:{secret}@pypi.example.com\n")
    uri = mlflow_server.url.replace("http://", f"http://user:{secret}@")
    # executed here (the shared server holds other tests' runs of the same stage)
    proc = forked_doit(root, env=clean_env(MLFLOW_TRACKING_URI=uri, MLOPS_STAGE_CACHE="off"))
    assert secret not in proc.stdout + proc.stderr
    client = client_for(mlflow_server.url)
    run = stage_runs(client)["make"]
    assert secret not in json.dumps([run.data.params, run.data.tags])
    local = root / ".mlops" / "runs" / "make" / run.info.run_id
    for path in Path(local).iterdir():
        assert secret not in path.read_text(), path
    executed = local / "make.ipynb"
    assert "***@127.0.0.1" in executed.read_text()
    for name in all_artifacts(client, run.info.run_id):
        target = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        assert secret not in Path(target).read_text(errors="replace"), name
