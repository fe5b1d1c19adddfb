"""End to end with real parts: venvs from a local wheelhouse, kernels, papermill, git, and
the local MLflow store."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    all_artifacts,
    doit,
    local_client,
    make_project,
    ran,
    set_config,
    write_notebook,
)

pytestmark = pytest.mark.integration

STAGE_TASKS = {f"{p}:{s}" for p in ("execute", "log") for s in ("make", "use")}


def mlflow_runs(root):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(root / '.mlops' / 'mlflow.db').as_posix()}")
    exp = client.get_experiment_by_name("test-pipeline")
    runs = client.search_runs([exp.experiment_id])
    return client, {r.data.tags["mlops.stage"]: r for r in runs if r.info.status == "FINISHED"}


@pytest.fixture(scope="module")
def built(tmp_path_factory, wheelhouse):
    root = make_project(tmp_path_factory.mktemp("pipeline") / "proj", wheelhouse)
    first = doit(root)
    return root, first


def test_first_run_builds_executes_and_logs_everything(built):
    root, first = built
    assert ran(first.stdout) >= STAGE_TASKS
    # execute:S makes its venv and kernelspec once its cache lookup missed
    assert "venv:make: building .venvs/shared-make with Python" in first.stdout
    assert (root / "out" / "greeting.txt").read_text() == "hi hi"
    assert json.loads((root / "out" / "metrics.json").read_text()) == {"length": 15}
    freeze = (root / ".venvs" / "shared-make" / "pip-freeze.txt").read_text()
    assert "ipykernel==" in freeze
    kernel = json.loads((root / ".mlops/jupyter/kernels/mlops-make/kernel.json").read_text())
    assert kernel["argv"][0].endswith(("shared-make/bin/python", "python.exe"))

    client, runs = mlflow_runs(root)
    assert set(runs) == {"make", "use"}
    use = runs["use"]
    assert use.data.metrics["length"] == 15.0
    assert use.data.metrics["logged_by_notebook"] == 42.0  # the notebook's own mlflow call
    assert use.data.params["scale"] == "3"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert use.data.tags["mlops.git_sha"] == head
    artifacts = {a.path for a in client.list_artifacts(use.info.run_id)}
    assert {"audit.json", "notebook", "env", "spec"} <= artifacts
    audit = json.loads((root / ".mlops/runs/use" / use.info.run_id / "audit.json").read_text())
    assert audit["git"]["sha"] == head
    assert audit["python"]["version"]
    assert audit["inputs"]["out/greeting.txt"]
    assert audit["schema"] == 1 and audit["kind"] == "execute" and audit["spec_sha256"]
    # the stage key on the run is the one recomputed from the workspace's files
    from mlops_tasks.project.fingerprint import parameters_digest, sha256_file, stage_key
    from mlops_tasks.project.notebooks import code_digest, notebook_code, read_notebook

    code = code_digest(notebook_code(read_notebook(root / "notebooks/use.ipynb")))
    marker = json.loads((root / ".venvs/use/.mlops-env.json").read_text())
    # the env part is what was pinned or asked (the env plan), the freeze that ran beside it
    assert audit["key"]["env"] == marker["fingerprint"]
    assert audit["key"]["freeze"] == sha256_file(root / ".venvs/use/pip-freeze.txt")
    expected = stage_key(marker["fingerprint"], code,
                         parameters_digest({"scale": 3}),
                         {"out/greeting.txt": sha256_file(root / "out/greeting.txt")})
    assert use.data.tags["mlops.stage_key"] == audit["key"]["key"] == expected
    assert use.data.tags["mlops.key.code"] == audit["key"]["code"] == code
    executed = json.loads((root / ".mlops/executed/use.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in
                c["metadata"].get("tags", [])]
    assert "scale = 3" in "".join(injected[0]["source"])


def test_second_run_executes_nothing(built):
    root, _ = built
    assert ran(doit(root).stdout) == set()


def test_code_edit_reruns_stage_and_downstream_only(built):
    root, _ = built
    from .helpers import NOTEBOOK_CELLS

    cells = list(NOTEBOOK_CELLS["make"])
    cells[1] = (None, cells[1][1].replace("text = ", "text = '!' + "))
    write_notebook(root / "notebooks" / "make.ipynb", cells)
    assert ran(doit(root).stdout) == {"execute:make", "log:make", "execute:use", "log:use"}
    assert (root / "out" / "greeting.txt").read_text() == "!hi hi"


def test_resaved_notebook_outputs_rerun_nothing(built):
    root, _ = built
    path = root / "notebooks" / "make.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    nb["cells"][1]["execution_count"] = 3
    nb["metadata"]["kernelspec"]["name"] = "mlops-make"
    path.write_text(json.dumps(nb))
    assert ran(doit(root).stdout) == set()


def test_failing_cell_fails_the_stage_and_keeps_it_stale(built):
    root, _ = built
    from .helpers import NOTEBOOK_CELLS

    good = list(NOTEBOOK_CELLS["make"])
    write_notebook(root / "notebooks" / "make.ipynb",
                   [*good, (None, "raise ValueError('bad data in row 7')")])
    proc = doit(root, check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "execute:make: code cell 3 failed with ValueError: bad data in row 7" in output
    assert (root / ".mlops/executed/make.failed.ipynb").exists()
    failure = json.loads((root / ".mlops/executed/make.failure.json").read_text())
    assert (failure["kind"], failure["outcome"], failure["cell"]) == ("failure", "failed", 3)
    assert failure["notebook"] == ".mlops/executed/make.failed.ipynb"
    assert "ValueError: bad data in row 7" in failure["cause"]
    assert ran(doit(root, check=False).stdout) >= {"execute:make"}  # still stale
    write_notebook(root / "notebooks" / "make.ipynb", good)
    assert "execute:make" in ran(doit(root).stdout)
    assert not (root / ".mlops/executed/make.failed.ipynb").exists()
    assert not (root / ".mlops/executed/make.failure.json").exists()


def test_an_edit_saved_during_the_run_is_neither_run_nor_recorded(built):
    """The stage key's code is what executed: the notebook is read once, before it runs."""
    root, _ = built
    from mlops_tasks.project.notebooks import code_digest, notebook_code, read_notebook

    from .helpers import NOTEBOOK_CELLS, notebook_json

    path = root / "notebooks" / "make.ipynb"
    later = json.dumps(notebook_json([*NOTEBOOK_CELLS["make"], (None, "print('later')")]))
    write_notebook(path, [*NOTEBOOK_CELLS["make"],
                          (None, f"Path('notebooks/make.ipynb').write_text({later!r})")])
    ran_code = code_digest(notebook_code(read_notebook(path)))
    doit(root, "run", "execute:make")
    record = json.loads((root / ".mlops/executed/make.json").read_text())
    assert record["key"]["code"] == ran_code != code_digest(notebook_code(read_notebook(path)))
    executed = json.loads((root / ".mlops/executed/make.ipynb").read_text())
    assert "print('later')" not in ["".join(c["source"]) for c in executed["cells"]]
    assert "execute:make" in ran(doit(root).stdout)  # the saved edit runs next time
    write_notebook(path, NOTEBOOK_CELLS["make"])
    doit(root)
    assert ran(doit(root).stdout) == set()


def run_id(root: Path, stage: str) -> str:
    """The MLflow run of the stage's last execution."""
    return json.loads((root / ".mlops" / "executed" / f"{stage}.json").read_text())["run_id"]


def test_a_run_executed_again_before_it_was_logged_is_closed_as_superseded(built):
    root, _ = built
    client = local_client(root)
    doit(root, "run", "--always-execute", "execute:make")
    first = run_id(root, "make")
    assert client.get_run(first).info.status == "RUNNING"  # executed, not logged yet
    doit(root, "run", "--always-execute", "execute:make")
    second = run_id(root, "make")
    assert second != first
    closed = client.get_run(first)
    assert closed.info.status == "KILLED" and closed.info.end_time
    assert closed.data.tags["mlops.superseded"] == "true"
    assert client.get_run(second).info.status == "RUNNING"
    assert ran(doit(root).stdout) == {"log:make"}  # same outputs: `use` does not rerun
    logged = client.get_run(second)
    assert logged.info.status == "FINISHED" and "mlops.superseded" not in logged.data.tags
    assert client.get_run(first).info.status == "KILLED"
    assert ran(doit(root).stdout) == set()


def test_outputs_over_artifact_max_mb_are_recorded_by_size_and_hash_only(built):
    root, _ = built
    limit_mb = 0.00001  # 10.5 bytes
    greeting, metrics = root / "out" / "greeting.txt", root / "out" / "metrics.json"
    assert greeting.stat().st_size < limit_mb * 2**20 < metrics.stat().st_size
    set_config(root, artifact_max_mb=limit_mb)
    try:
        out = doit(root, "run", "--always-execute", "log:make", "log:use").stdout
    finally:
        set_config(root, artifact_max_mb=None)
    assert ("log:use: out/metrics.json (0.0 MB) is not uploaded, over artifact_max_mb = 1e-05 "
            "in [tool.mlops_tasks]; audit.json records its size and hash\n") in out
    client = local_client(root)
    make, use = run_id(root, "make"), run_id(root, "use")
    assert "outputs/out/greeting.txt" in all_artifacts(client, make)
    uploaded = all_artifacts(client, use)
    assert "audit.json" in uploaded and not {a for a in uploaded if a.startswith("outputs/")}
    audit = json.loads((root / ".mlops/runs/use" / use / "audit.json").read_text())
    assert audit["outputs_not_uploaded"] == {"out/metrics.json": {
        "size": metrics.stat().st_size,
        "sha256": hashlib.sha256(metrics.read_bytes()).hexdigest()}}
    make_audit = json.loads((root / ".mlops/runs/make" / make / "audit.json").read_text())
    assert make_audit["outputs_not_uploaded"] == {}
    assert ran(doit(root).stdout) == set()


def test_run_one_stage_runs_only_its_upstream(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse)
    tasks = ran(doit(root, "run", "make").stdout)
    assert {"execute:make", "log:make"} <= tasks
    assert not {t for t in tasks if t.endswith(":use")}
    listed = dict(line.split(None, 1) for line in doit(root, "list").stdout.splitlines())
    assert listed["make"] == "bring stage 'make' and its upstream up to date, logged"
    assert listed["use"] == "bring stage 'use' and its upstream up to date, logged (after make)"
