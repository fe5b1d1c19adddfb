"""Notebooks that use MLflow themselves: every run, parameter and metric lands where the
notebook asked (the rule in tracking/kernel_hook.py), against a real `mlflow server` and against the
embedded default, with the stage's own mlflow client of another version."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from mlops_tasks.tracking import kernel_hook
from mlops_tasks.tracking.kernel_context import (
    KernelTracking,
    context_unread,
    created_runs,
    runs_tag,
    uses_mlflow,
    write_context,
)
from mlops_tasks.tracking.kernel_hook import decide

from .helpers import (
    MLFLOW_IN_KERNEL,
    PYTHON,
    clean_env,
    forked_doit,
    git_commit_all,
    write_notebook,
)

# -- the rule, as data ------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "expected"), [
    (dict(run_id=None, experiment_id=None, active=False, current="1", taken=False), "stage"),
    (dict(run_id=None, experiment_id="1", active=False, current="1", taken=False), "stage"),
    (dict(run_id=None, experiment_id=None, active=False, current="1", taken=True), "linked"),
    (dict(run_id=None, experiment_id="7", active=False, current="1", taken=False), "linked"),
    (dict(run_id=None, experiment_id=None, active=False, current="7", taken=False), "linked"),
    (dict(run_id=None, experiment_id=None, active=True, current="1", taken=True), "as-is"),
    (dict(run_id="abc", experiment_id=None, active=False, current="1", taken=False), "as-is"),
])
def test_where_a_notebook_run_lands(call, expected):
    assert decide(call["run_id"], call["experiment_id"], None, call["active"], call["current"],
                  "1", call["taken"]) == expected


def test_which_venvs_get_the_hook():
    assert uses_mlflow("idna==3.6\nmlflow-skinny==3.17.2\n")
    assert uses_mlflow("MLflow==2.22.5\n")
    assert uses_mlflow("mlflow_skinny @ file:///wheels/mlflow_skinny-2.0-py3-none-any.whl\n")
    assert not uses_mlflow("mlflow-tracing==3.17.2\nidna==3.6\n")
    assert not uses_mlflow("")


def test_what_a_kernel_starts_with_and_learns_before_its_first_cell(tmp_path):
    """The kernel starts before the stage's run exists: the run and a served store's address
    reach it in the context file; a URI known at start (a server) is in its environment."""
    files = ("runs.tsv", "context.json")
    local = KernelTracking("sqlite:////p/.mlops/mlflow.db", hooked=True)
    env = local.launch_env(tmp_path, "train", *files)
    assert "MLFLOW_TRACKING_URI" not in env and "MLFLOW_RUN_ID" not in env
    assert env["MLOPS_KERNEL_CONTEXT"] == str(tmp_path / "context.json")
    assert env["PYTHONPATH"] == env["MLOPS_KERNEL_HOOK_DIR"]
    served = KernelTracking(local.uri, True, served_uri="http://127.0.0.1:4321")
    assert served.context("3", "r1") == {
        "MLFLOW_EXPERIMENT_ID": "3", "MLOPS_STAGE_RUN_ID": "r1",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:4321",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
    server = KernelTracking("https://u:secret@mlflow.example", hooked=True)
    env = server.launch_env(tmp_path, "train", *files)
    assert env["MLFLOW_TRACKING_URI"] == server.uri
    assert env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
    assert server.context("3", "r1") == {"MLFLOW_EXPERIMENT_ID": "3", "MLOPS_STAGE_RUN_ID": "r1"}
    plain = KernelTracking(local.uri, hooked=False)  # no mlflow: the hook for its exit only
    hook_dir = str(tmp_path / ".mlops" / "kernel-hook")
    assert plain.launch_env(tmp_path, "prep", *files) == {
        "MLOPS_STAGE": "prep", "MLFLOW_TRACKING_URI": local.uri,
        "MLOPS_KERNEL_HOOK_DIR": hook_dir, "PYTHONPATH": hook_dir}
    assert plain.kernel_args() == local.kernel_args() == (
        "--IPKernelApp.extra_extensions=mlops_kernel_hook",)
    assert plain.with_store_served(tmp_path) is plain


def test_the_hook_folder_leaves_the_notebooks_path_and_its_subprocesses(monkeypatch):
    monkeypatch.setattr(sys, "path", ["/nb", "/hook", "/lib"])
    environ = {"MLOPS_KERNEL_HOOK_DIR": "/hook", "PYTHONPATH": os.pathsep.join(["/nb", "/hook"])}
    kernel_hook.forget_hook_dir(environ)
    assert environ == {"PYTHONPATH": "/nb"} and sys.path == ["/nb", "/lib"]
    environ = {"MLOPS_KERNEL_HOOK_DIR": "/hook", "PYTHONPATH": "/hook"}
    kernel_hook.forget_hook_dir(environ)
    assert environ == {}


def test_the_hook_applies_the_context_once_before_the_first_cell(tmp_path, monkeypatch):
    installed: list[dict] = []
    monkeypatch.setattr(kernel_hook, "install", lambda environ: installed.append(dict(environ)))
    path = tmp_path / "context.json"
    write_context(path, {"MLOPS_STAGE_RUN_ID": "r1", "MLFLOW_EXPERIMENT_ID": "3"})
    environ = {"MLOPS_NOTEBOOK_RUNS": "runs.tsv"}
    first_cell = kernel_hook._BeforeFirstCell(str(path), environ)
    first_cell(object())  # IPython passes the cell's info
    first_cell(object())
    assert installed == [{"MLOPS_NOTEBOOK_RUNS": "runs.tsv", "MLOPS_STAGE_RUN_ID": "r1",
                          "MLFLOW_EXPERIMENT_ID": "3"}]
    assert not context_unread(path)  # doit sees that the kernel read it


def test_a_missing_context_leaves_mlflow_alone_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(kernel_hook, "install", lambda environ: pytest.fail("installed"))
    kernel_hook.apply_context(str(tmp_path / "gone.json"), {})
    assert "not routed to the stage run" in capsys.readouterr().err


def test_created_runs_file(tmp_path):
    path = tmp_path / "runs.tsv"
    assert created_runs(path) == []
    path.write_text("a1\t3\n\nb2\t0\n")
    assert created_runs(path) == [("a1", "3"), ("b2", "0")]


def test_the_runs_tag_names_what_does_not_fit():
    ids = [f"{i:032x}" for i in range(200)]
    tag = runs_tag(ids)
    assert len(tag) <= 5000 and tag.endswith("more in audit.json")
    assert tag.startswith(ids[0]) and runs_tag(ids[:3]) == ",".join(ids[:3])


# -- real kernels -------------------------------------------------------------------------------

PROJECT = """
[tool.mlops_tasks]
experiment = "pipeline"
index_policy = "offline"
wheels_cache = {wheels}
"""

TEMPLATE = [  # what the public MLflow template's training notebooks do
    ("parameters", "n_estimators = 3\nmax_depth = 2"),
    (None, "import mlflow\nexp_name = 'RandomForestRegressor'\n"
           "exp = mlflow.get_experiment_by_name(exp_name)\n"
           "experiment_id = exp.experiment_id if exp else mlflow.create_experiment(exp_name)"),
    (None, "with mlflow.start_run(experiment_id=experiment_id) as run:\n"
           "    mlflow.log_params({'n_estimators': n_estimators, 'max_depth': max_depth})\n"
           "    mlflow.log_metric('rmse', 0.5)\n"
           "model_run = run.info.run_id\nprint('experiment', experiment_id)"),
    (None, "with mlflow.start_run():\n    mlflow.log_metric('own_block', 1)"),
    (None, "mlflow.set_experiment('Other')\nwith mlflow.start_run():\n"
           "    mlflow.log_metric('elsewhere', 2)"),
    (None, "from pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
           "Path('out/template.txt').write_text(model_run)"),
]

BARE = [
    (None, "import mlflow\nmlflow.log_metric('bare', 1)\n"
           "with mlflow.start_run(run_name='child', nested=True):\n"
           "    mlflow.log_metric('child', 1)"),
]


def project(root: Path, wheelhouse: Path, stages: dict[str, tuple[list, list[str] | str]],
            environments: dict[str, list[str]] | None = None) -> Path:
    """Stages with their own packages, or (a str) on one of `environments`: stages that
    need the same packages share one venv, built once."""
    (root / "env_specs" / "environments").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PROJECT.format(wheels=json.dumps(str(wheelhouse))))
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n")
    for env, packages in (environments or {}).items():
        (root / "env_specs" / "environments" / f"{env}.yaml").write_text(
            f"packages: {json.dumps(packages)}\n")
    for name, (cells, packages) in stages.items():
        write_notebook(root / "notebooks" / f"{name}.ipynb", cells)
        uses = f"environment: {packages}" if isinstance(packages, str) else \
            f"packages: {json.dumps(packages)}"
        (root / "env_specs" / f"{name}.yaml").write_text(
            f"name: {name}\nnotebook: notebooks/{name}.ipynb\n{uses}\n")
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n")
    git_commit_all(root)
    return root


def runs_of(client, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id]) if exp else []


def stage_run(client, stage: str):
    (run,) = [r for r in runs_of(client, "pipeline") if r.data.tags.get("mlops.stage") == stage
              and "mlops.stage_run_id" not in r.data.tags]  # not a run its notebook made
    return run


def check_template(client, run_id: str, executed: str) -> None:
    """The template stage's runs: where each run, parameter and metric landed."""
    stage = stage_run(client, "template")
    assert stage.info.status == "FINISHED"
    assert stage.data.metrics == {"own_block": 1.0}  # its own block, nothing of the model's
    assert "n_estimators" not in stage.data.params and "rmse" not in stage.data.metrics
    (model,) = runs_of(client, "RandomForestRegressor")
    assert model.info.run_id == run_id  # the run the notebook held is the one recorded
    assert model.data.params == {"n_estimators": "3", "max_depth": "2"}
    assert model.data.metrics == {"rmse": 0.5}
    (other,) = runs_of(client, "Other")
    assert other.data.metrics == {"elsewhere": 2.0}
    for run in (model, other):
        assert run.data.tags["mlops.stage_run_id"] == stage.info.run_id
        assert run.data.tags["mlflow.parentRunId"] == stage.info.run_id
        assert run.info.status == "FINISHED"
    assert stage.data.tags["mlops.notebook_runs"] == f"{model.info.run_id},{other.info.run_id}"
    exp_id = client.get_experiment_by_name("RandomForestRegressor").experiment_id
    assert f"experiment {exp_id}" in executed  # what the notebook printed is where it went


@pytest.mark.integration
def test_notebook_runs_land_where_asked_on_a_server(tmp_path, wheelhouse, mlflow_server):
    from mlflow.tracking import MlflowClient

    root = project(tmp_path / "p", wheelhouse, {"template": (TEMPLATE, "skinny"),
                                                  "bare": (BARE, "skinny")},
                   {"skinny": MLFLOW_IN_KERNEL})
    forked_doit(root, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server.url))
    client = MlflowClient(mlflow_server.url)
    model_run = (root / "out" / "template.txt").read_text()
    executed = (root / ".mlops" / "executed" / "template.ipynb").read_text()
    check_template(client, model_run, executed)
    bare = stage_run(client, "bare")
    assert bare.data.metrics == {"bare": 1.0}  # no run started: the stage run
    # each kernel read its context (the run, the store) before its first cell, and removed it
    assert not list((root / ".mlops" / "executed").glob("*.kernel-context.json"))
    (child,) = [r for r in runs_of(client, "pipeline") if r.info.run_name == "child"]
    assert child.data.tags["mlflow.parentRunId"] == bare.info.run_id
    assert child.data.tags["mlops.stage_run_id"] == bare.info.run_id
    assert bare.data.tags["mlops.notebook_runs"] == child.info.run_id
    assert len(runs_of(client, "pipeline")) == 3  # two stage runs and the child
    audit = json.loads(next((root / ".mlops" / "runs" / "bare").glob("*/audit.json"))
                       .read_text())
    assert audit["notebook_runs"] == [[child.info.run_id, child.info.experiment_id]]


# -- a stage that pins an older MLflow, on the embedded default -----------------------------------

OLD_MLFLOW = ["mlflow==2.22.5", "sqlalchemy<2.1", "scikit-learn"]
SKLEARN = [
    (None, "from pathlib import Path\nimport numpy as np\n"
           "from sklearn.ensemble import RandomForestRegressor\nimport mlflow\n"
           "print('mlflow', mlflow.__version__)\nexp = mlflow.set_experiment('RandomForest')\n"
           "with mlflow.start_run(experiment_id=exp.experiment_id) as run:\n"
           "    model = RandomForestRegressor(n_estimators=3).fit(np.random.rand(20, 2), "
           "np.random.rand(20))\n"
           "    mlflow.log_params({'n_estimators': 3})\n    mlflow.log_metric('rmse', 0.25)\n"
           "    mlflow.sklearn.log_model(model, 'model')\n"
           "Path('out').mkdir(exist_ok=True)\nPath('out/sk.txt').write_text(run.info.run_id)"),
]


@pytest.fixture(scope="session")
def old_mlflow_wheels(wheelhouse: Path) -> Path:
    marker = wheelhouse / ".filled-old-mlflow"
    with FileLock(str(wheelhouse) + ".lock"):
        if not marker.exists():
            subprocess.run([PYTHON, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                            "--dest", str(wheelhouse), *OLD_MLFLOW, "ipykernel"],
                           check=True, env=clean_env())
            marker.write_text("ok")
    return wheelhouse


def schema(db: Path) -> list:
    with sqlite3.connect(db) as conn:
        return [*conn.execute("select version_num from alembic_version"),
                *conn.execute("select type, name, sql from sqlite_master order by name")]


@pytest.mark.integration
def test_an_older_mlflow_in_the_stage_leaves_the_store_schema_alone(tmp_path, old_mlflow_wheels):
    from mlflow.tracking import MlflowClient

    root = project(tmp_path / "p", old_mlflow_wheels, {
        "first": ([(None, "print('no mlflow here')")], []),
        "template": (TEMPLATE, "old"), "sk": (SKLEARN, "old")}, {"old": OLD_MLFLOW})
    forked_doit(root, "run", "first")  # the store is created by the tool's own client
    db = root / ".mlops" / "mlflow.db"
    before = schema(db)
    proc = forked_doit(root)
    assert "mlflow 2.22.5" in proc.stdout
    assert schema(db) == before
    client = MlflowClient(f"sqlite:///{db.as_posix()}")
    model_run = (root / "out" / "template.txt").read_text()
    executed = (root / ".mlops" / "executed" / "template.ipynb").read_text()
    check_template(client, model_run, executed)
    (sk,) = runs_of(client, "RandomForest")
    assert sk.info.run_id == (root / "out" / "sk.txt").read_text()
    assert sk.data.params == {"n_estimators": "3"} and sk.data.metrics == {"rmse": 0.25}
    assert sk.data.tags["mlops.stage_run_id"] == stage_run(client, "sk").info.run_id
    model = Path(client.download_artifacts(sk.info.run_id, "model", str(tmp_path)))
    assert (model / "MLmodel").is_file() and (model / "model.pkl").is_file()
