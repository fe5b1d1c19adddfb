"""Matrix stages: one spec, one stage per combination of its values, sharing a venv; a
downstream stage reads all of them with one entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.load import load_project
from mlops_tasks.project.matrix import expand, label, resolve
from mlops_tasks.project.spec import parse_stage

from ..helpers import forked_doit, git_commit_all, offline_pipeline, ran, write_notebook

FIT = """\
name: fit
notebook: nb/fit.ipynb
parameters:
  folds: 3
matrix:
  model:
    - {name: rf, grid: {n_estimators: [10, 20]}}
    - {name: svm, grid: {C: [1, 10]}}
outputs:
  - models/{model}.json
"""


def test_one_stage_per_combination():
    rf, svm = expand(parse_stage(FIT, "env_specs/fit.yaml"))
    assert (rf.name, svm.name) == ("fit-rf", "fit-svm")
    assert rf.outputs == ("models/rf.json",) and svm.outputs == ("models/svm.json",)
    assert rf.parameters == {"folds": 3, "model": {"name": "rf",
                                                   "grid": {"n_estimators": [10, 20]}}}
    assert rf.env_dir == svm.env_dir == ".venvs/fit" and rf.kernel_name == svm.kernel_name
    assert rf.group == svm.group == "fit"


def test_names_from_values():
    two = parse_stage("name: fit\nnotebook: nb.ipynb\nmatrix: {model: [RF v2, svm], depth: "
                      "[3, 10]}\noutputs: ['m/{model}-{depth}.pkl']\n", "f.yaml")
    assert [s.name for s in expand(two)] == ["fit-rf-v2-3", "fit-rf-v2-10", "fit-svm-3",
                                             "fit-svm-10"]
    assert label([1, 2], 4) == "5" and label(True, 0) == "true"


def test_values_reach_paths_and_parameters_as_written():
    """Only the stage name is normalised: the notebook's f"out/{key}.txt" is the declared
    output, and `{key}` in a parameter's strings is the same text."""
    spec = parse_stage("name: fit\nnotebook: nb.ipynb\nmatrix: {key: [CSIC_ICV], n: [3]}\n"
                       "outputs: ['out/{key}.txt']\nmetrics: ['out/{key}-{n}.json']\n"
                       "parameters:\n  path: out/{key}.txt\n  size: '{n}'\n"
                       "  nested: {files: ['{key}/{stage}.csv']}\n  fmt: '{:.2f} {other}'\n",
                       "env_specs/fit.yaml")
    (member,) = expand(spec)
    assert member.name == "fit-csic_icv-3"
    assert member.outputs == ("out/CSIC_ICV.txt",) and member.metrics == ("out/CSIC_ICV-3.json",)
    assert member.parameters == {"path": "out/CSIC_ICV.txt", "size": 3, "key": "CSIC_ICV",
                                 "n": 3, "nested": {"files": ["CSIC_ICV/fit-csic_icv-3.csv"]},
                                 "fmt": "{:.2f} {other}"}


def test_a_value_that_leaves_the_project_is_refused():
    spec = parse_stage("name: fit\nnotebook: nb.ipynb\nmatrix: {key: ['../up']}\n"
                       "outputs: ['{key}/x.txt']\n", "env_specs/fit.yaml")
    with pytest.raises(SpecError, match=r"env_specs/fit.yaml:4: 'outputs' entry '\{key\}/x.txt' "
                       r"becomes '../up/x.txt'"):
        expand(spec)


@pytest.mark.parametrize(("spec", "message"), [
    ("matrix: {model: []}", "matrix parameter 'model' needs a non-empty list of values"),
    ("matrix: {model: [a, b]}\noutputs: ['m/{modle}.pkl']",
     "uses {modle}, which is not in 'matrix' (model)"),
    ("matrix: {model: [a, b]}\noutputs: [m/out.pkl]",
     "stages fit-a and fit-b would both write m/out.pkl"),
    ("matrix: {2x: [a]}", "matrix parameter '2x' is not a Python identifier"),
])
def test_bad_matrices_name_the_file_and_the_fix(spec, message):
    with pytest.raises(SpecError, match=message.replace("{", r"\{").replace("(", r"\(")
                       .replace(")", r"\)")) as err:
        expand(parse_stage(f"name: fit\nnotebook: nb.ipynb\n{spec}\n", "env_specs/fit.yaml"))
    assert str(err.value).startswith("env_specs/fit.yaml:")


def test_a_generated_name_that_collides_is_refused(tmp_path):
    (tmp_path / "env_specs").mkdir()
    (tmp_path / "nb.ipynb").write_text("{}")
    (tmp_path / "env_specs" / "a.yaml").write_text(
        "name: fit\nnotebook: nb.ipynb\nmatrix: {model: [rf]}\noutputs: ['{model}.txt']\n")
    (tmp_path / "env_specs" / "b.yaml").write_text("name: fit-rf\nnotebook: nb.ipynb\n")
    with pytest.raises(SpecError, match="stage name 'fit-rf' is already used by env_specs/a"):
        load_project(tmp_path)


def test_one_entry_reads_every_member():
    members = expand(parse_stage(FIT, "env_specs/fit.yaml"))
    compare = parse_stage("name: compare\nnotebook: nb.ipynb\ninputs: ['models/*.json']\n"
                          "depends_on: [fit]\n", "env_specs/compare.yaml")
    *_, resolved = resolve([*members, compare])
    assert resolved.inputs == ("models/rf.json", "models/svm.json")
    assert resolved.depends_on == ("fit-rf", "fit-svm")
    lonely = parse_stage("name: c\nnotebook: nb.ipynb\ninputs: ['x/*.csv']\n", "c.yaml")
    with pytest.raises(SpecError, match="matches no stage's declared outputs"):
        resolve([lonely])


FIT_CELL = ("import json\nfrom pathlib import Path\nPath('models').mkdir(exist_ok=True)\n"
            "grid = model['grid']\n"
            "best = {k: max(v) for k, v in grid.items()}\n"
            "Path(f\"models/{model['name']}.json\").write_text(json.dumps({'folds': folds, "
            "'best': best}))")
COMPARE_CELL = ("import json\nfrom pathlib import Path\n"
                "found = sorted(p.name for p in Path('models').glob('*.json'))\n"
                "Path('out').mkdir(exist_ok=True)\n"
                "Path('out/compare.txt').write_text(' '.join(found))")


@pytest.mark.integration
def test_nested_cross_validation_as_a_matrix(tmp_path, wheelhouse):
    root = tmp_path / "p"
    offline_pipeline(root, wheelhouse, "m")
    write_notebook(root / "nb" / "fit.ipynb", [("parameters", "folds = 2\nmodel = {}"),
                                               (None, FIT_CELL)])
    write_notebook(root / "nb" / "compare.ipynb", [(None, COMPARE_CELL)])
    (root / "env_specs" / "fit.yaml").write_text(FIT)
    (root / "env_specs" / "compare.yaml").write_text(
        "name: compare\nnotebook: nb/compare.ipynb\ninputs: ['models/*.json']\n"
        "outputs: [out/compare.txt]\n")
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\nmodels/\n")
    git_commit_all(root)
    first = forked_doit(root)
    assert {"execute:fit-rf", "execute:fit-svm", "execute:compare"} <= ran(first.stdout)
    assert first.stdout.count("building .venvs/fit") == 1  # one venv for both
    assert json.loads((root / "models" / "rf.json").read_text())["best"] == {"n_estimators": 20}
    assert json.loads((root / "models" / "svm.json").read_text())["best"] == {"C": 10}
    assert (root / "out" / "compare.txt").read_text() == "rf.json svm.json"
    listed = forked_doit(root, "list").stdout
    assert "fit " in listed and "fit-rf" in listed
    # a third model family: only its stage and the one reading all models run
    spec = root / "env_specs" / "fit.yaml"
    spec.write_text(spec.read_text().replace(
        "    - {name: svm, grid: {C: [1, 10]}}\n",
        "    - {name: svm, grid: {C: [1, 10]}}\n    - {name: knn, grid: {k: [3, 5]}}\n"))
    assert ran(forked_doit(root).stdout) == {"execute:fit-knn", "log:fit-knn", "execute:compare",
                                      "log:compare"}
    assert (root / "out" / "compare.txt").read_text() == "knn.json rf.json svm.json"
    assert Path(root / "models" / "knn.json").is_file()
    assert ran(forked_doit(root, "run", "fit").stdout) == set()
