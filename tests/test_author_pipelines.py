"""Pipelines as their authors write them: matrix values as written (upper case, in paths and
parameters), a data folder that is an input and holds outputs too, the status of a stage
waiting on a stale upstream, executed notebooks that open on the stage's kernel, and runs a
notebook creates that say which stage made them. One small real pipeline, shared."""

from __future__ import annotations

import json

import pytest

from mlops_tasks.pipeline.checks import describe_files_change
from mlops_tasks.project.fingerprint import sha256_tree
from mlops_tasks.project.load import outputs_in_input_folders
from mlops_tasks.project.spec import input_skip, parse_stage
from mlops_tasks.run.papermill_adapter import redacted_notebook
from mlops_tasks.tracking import kernel_hook, tags

from .helpers import (
    MLFLOW_IN_KERNEL,
    doit,
    git_commit_all,
    local_client,
    offline_pipeline,
    ran,
    write_notebook,
    write_spec,
)

# -- as data ---------------------------------------------------------------------------------


def test_outputs_inside_an_input_folder_are_left_out_of_its_hash(tmp_path):
    prep = parse_stage("name: prep\nnotebook: nb.ipynb\ninputs: [data]\n"
                       "outputs: [data/clean.txt]\n", "env_specs/prep.yaml")
    other = parse_stage("name: other\nnotebook: nb.ipynb\noutputs: [data/extra/x.csv]\n",
                        "env_specs/other.yaml")
    prep, other = outputs_in_input_folders([prep, other])
    assert prep.inputs == ("data", "data/extra/x.csv")  # another stage's output: followed
    assert input_skip(prep.inputs[0]) == ("clean.txt", "extra/x.csv")
    assert json.dumps(list(prep.inputs)) == '["data", "data/extra/x.csv"]'
    (tmp_path / "extra").mkdir()
    (tmp_path / "raw.txt").write_text("raw")
    before = sha256_tree(tmp_path, input_skip(prep.inputs[0]))
    (tmp_path / "clean.txt").write_text("a result")
    (tmp_path / "extra" / "x.csv").write_text("1")
    assert sha256_tree(tmp_path, input_skip(prep.inputs[0])) == before
    assert sha256_tree(tmp_path) != before
    (tmp_path / "raw.txt").write_text("edited")
    assert sha256_tree(tmp_path, input_skip(prep.inputs[0])) != before


def test_the_files_of_an_input_folder_that_changed_are_named():
    old = {"a.csv": "1", "b.csv": "2", "c.csv": "3", "d.csv": "4"}
    assert describe_files_change(old, {**old, "b.csv": "9"}) == "b.csv"
    new = {"a.csv": "0", "b.csv": "0", "c.csv": "0", "e.csv": "5"}
    assert describe_files_change(old, new) == "a.csv, b.csv, c.csv and 2 more"
    assert describe_files_change(old, {"a.csv": "1"}) == "-b.csv, -c.csv, -d.csv"
    assert describe_files_change(old, old) == ""


def test_a_notebook_made_run_is_tagged_and_named_for_its_stage():
    given: dict = {}
    made: dict = {}
    kernel_hook.mark_created(given, made, "prep", 2)
    assert given == {"run_name": "prep/2"} and made == {tags.STAGE: "prep"}
    named: dict = {"run_name": "mine"}
    kernel_hook.mark_created(named, made, "prep", 3)
    assert named == {"run_name": "mine"}  # the notebook's own name stays
    assert kernel_hook.STAGE_TAG == tags.STAGE


def test_the_executed_notebook_names_the_stage_kernel():
    text = json.dumps({"cells": [], "metadata": {"kernelspec": {"name": "python3"}}})
    spec = {"name": "mlops-prep", "display_name": "mlops prep (Python 3.11)",
            "language": "python"}
    assert json.loads(redacted_notebook(text, spec))["metadata"]["kernelspec"] == spec
    assert json.loads(redacted_notebook(text))["metadata"]["kernelspec"] == {"name": "python3"}


# -- one real pipeline -----------------------------------------------------------------------

PREP = [
    (None, "from pathlib import Path\n"
           "Path('data/clean.txt').write_text(Path('data/raw.txt').read_text().upper())"),
    (None, "import mlflow\nmlflow.log_metric('prepped', 1)\n"
           "with mlflow.start_run(nested=True):\n    mlflow.log_metric('unnamed', 1)\n"
           "with mlflow.start_run(run_name='mine', nested=True):\n"
           "    mlflow.log_metric('named', 1)"),
]
FIT = [
    ("parameters", "key = ''\npath = ''"),
    (None, "from pathlib import Path\nassert path == f'out/{key}.txt', path\n"
           "Path('out').mkdir(exist_ok=True)\n"
           "Path(f'out/{key}.txt').write_text(Path('data/clean.txt').read_text())"),
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, wheelhouse):
    """prep reads the data folder and writes its result into it; fit, a matrix with an
    upper-case value, reads that result. Run once."""
    root = offline_pipeline(tmp_path_factory.mktemp("authors") / "p", wheelhouse, "authors")
    write_spec(root, "prep", f"""
        name: prep
        notebook: nb/prep.ipynb
        packages: {json.dumps(MLFLOW_IN_KERNEL)}
        inputs: [data]
        outputs: [data/clean.txt]
    """)
    write_spec(root, "fit", """
        name: fit
        notebook: nb/fit.ipynb
        matrix:
          key: [CSIC_ICV]
        parameters:
          path: out/{key}.txt
        inputs: [data/clean.txt]
        outputs: ['out/{key}.txt']
    """)
    write_notebook(root / "nb" / "prep.ipynb", PREP)
    write_notebook(root / "nb" / "fit.ipynb", FIT)
    (root / "data").mkdir()
    (root / "data" / "raw.txt").write_text("csic data")
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\ndata/clean.txt\n")
    git_commit_all(root)
    first = doit(root)
    assert {"execute:prep", "execute:fit-csic_icv"} <= ran(first.stdout), first.stdout
    return root


@pytest.mark.integration
def test_matrix_values_as_written_in_paths_and_parameters(pipeline):
    assert (pipeline / "out" / "CSIC_ICV.txt").read_text() == "CSIC DATA"
    assert not (pipeline / "out" / "csic_icv.txt").exists()


@pytest.mark.integration
def test_an_input_folder_holding_outputs_is_up_to_date_after_its_run(pipeline):
    assert ran(doit(pipeline).stdout) == set()
    audit = doit(pipeline, "audit", check=False)  # hashes the folder as the run did
    assert audit.returncode == 0 and "inputs: CHANGED" not in audit.stdout, audit.stdout


@pytest.mark.integration
def test_the_executed_notebook_opens_on_the_stage_kernel(pipeline):
    for stage, kernel in (("prep", "mlops-prep"), ("fit-csic_icv", "mlops-fit")):
        nb = json.loads((pipeline / ".mlops" / "executed" / f"{stage}.ipynb").read_text())
        spec = nb["metadata"]["kernelspec"]
        assert spec["name"] == kernel and spec["language"] == "python", spec
        registered = next((pipeline / ".mlops").rglob(f"kernels/{kernel}/kernel.json"))
        assert spec["display_name"] == json.loads(registered.read_text())["display_name"]
        assert "(Python 3." in spec["display_name"], spec


@pytest.mark.integration
def test_runs_a_notebook_creates_say_which_stage_made_them(pipeline):
    client = local_client(pipeline)
    exp = client.get_experiment_by_name("authors")
    runs = client.search_runs([exp.experiment_id])
    made = {r.info.run_name: r for r in runs if "mlops.stage_run_id" in r.data.tags}
    assert set(made) == {"prep/1", "mine"}, set(made)
    assert {r.data.tags["mlops.stage"] for r in made.values()} == {"prep"}
    assert made["prep/1"].data.metrics == {"unnamed": 1.0}


@pytest.mark.integration
def test_a_stage_downstream_of_a_stale_one_waits(pipeline):
    (pipeline / "data" / "raw.txt").write_text("new csic data")
    listed = doit(pipeline, "list", "--all", "--status").stdout
    assert "R execute:prep " in listed and "W execute:fit-csic_icv " in listed, listed
    assert "U execute:fit-csic_icv " not in listed
    info = doit(pipeline, "info", "execute:fit-csic_icv", check=False)
    assert info.returncode == 1, info
    assert "status     : waits on upstream\n" in info.stdout, info.stdout
    assert ("waits on upstream stage 'prep' (execute:prep would run): execute:fit-csic_icv "
            "reruns if prep's outputs change") in info.stdout, info.stdout
    prep = doit(pipeline, "info", "execute:prep", check=False).stdout
    assert "<inputs: data changed: raw.txt>" in prep, prep
    assert {"execute:prep", "execute:fit-csic_icv"} <= ran(doit(pipeline).stdout)
    assert (pipeline / "out" / "CSIC_ICV.txt").read_text() == "NEW CSIC DATA"
