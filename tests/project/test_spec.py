"""Spec parsing and validation: the seed form loads; each bad input fails with file, line,
key and fix."""

from __future__ import annotations

import textwrap

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.spec import clean_requirement, is_stdlib_only, parse_stage

SEED = r"""
name: train
python_exe: C:\Python310\python.exe
env_dir: .venv_train
kernel_name: mlops-train-py310
notebook: notebooks/03-train.ipynb
packages:
  - mlflow
  - papermill
  - jupyter
  - ipykernel
  - scikit-learn
  - pandas
  - numpy
  - pycaret
  - autofeat
  - autoviz
  - dask
  - dtale
  - featuretools
  - sweetviz
  - tabulate
  - tsfresh
  - ydata-profiling
  - warnings ; # (nota: warnings es módulo stdlib, está listado para claridad)
  - matplotlib
  - cloudpickle
  - tqdm
  - pip>=22.0
"""


def parse(text: str, exists=lambda p: True):
    return parse_stage(textwrap.dedent(text), "env_specs/stage.yaml", exists=exists)


def error_of(text: str, exists=lambda p: True) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(text, exists)
    return info.value


def test_seed_spec_loads_as_is():
    stage = parse_stage(SEED, "env_specs/stage_train.yaml", exists=lambda p: True)
    assert stage.name == "train"
    assert stage.python_exe == r"C:\Python310\python.exe"
    assert stage.env_dir == ".venv_train"
    assert stage.kernel_name == "mlops-train-py310"
    assert "warnings" not in " ".join(stage.packages)
    assert "pip>=22.0" in stage.packages
    assert len(stage.packages) == 21
    assert len(stage.warnings) == 1
    assert "standard-library" in str(stage.warnings[0])
    assert "env_specs/stage_train.yaml:" in str(stage.warnings[0])


def test_defaults():
    stage = parse("name: prep\nnotebook: nb/prep.ipynb\n")
    assert stage.env_dir == ".venvs/prep"
    assert stage.kernel_name == "mlops-prep"
    assert stage.packages == () and stage.parameters == {} and stage.python is None


def test_optional_keys():
    stage = parse("""
        name: train
        python: "3.11"
        notebook: nb/train.ipynb
        parameters: {n: 3, nested: {upstream: {a: data/a.csv}}}
        inputs: [data\\a.csv]
        outputs: [models/m.pkl]
        depends_on: [prep]
        metrics: [reports/m.json]
        timeout: 30
        notes: owner is the data team
    """)
    assert stage.python == "3.11"
    assert stage.inputs == ("data/a.csv",)
    assert stage.parameters["nested"] == {"upstream": {"a": "data/a.csv"}}
    assert stage.timeout == 30.0


def test_requirement_cleaning():
    assert clean_requirement("warnings ; # note") == "warnings"
    assert clean_requirement("pandas>=2 ; python_version < '3.12'") == \
        "pandas>=2; python_version < '3.12'"
    assert is_stdlib_only("warnings") and is_stdlib_only("json")
    assert not is_stdlib_only("pandas") and not is_stdlib_only("pip>=22.0")


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("name: a\nnotebok: x.ipynb\n", 2, "notebok", "did you mean 'notebook'"),
        ("name: a\nnotebook: x.ipynb\npython: 3.10\n", 3, "python", 'quote it: python: "3.10"'),
        ("name: a\nnotebook: x.ipynb\npython: 3.1x\n", 3, "python", '"3.10" or "3.11.7"'),
        ("name: list\nnotebook: x.ipynb\n", 1, "name", "doit command"),
        ("name: venv\nnotebook: x.ipynb\n", 1, "name", "task prefix"),
        ("name: Train Model\nnotebook: x.ipynb\n", 1, "name", "a-z, 0-9"),
        ("name: a\nnotebook: ../x.ipynb\n", 2, "notebook", "inside the project"),
        ("name: a\nnotebook: x.ipynb\noutputs: [/etc/passwd]\n", 3, "outputs",
         "leaves the project"),
        ("name: a\nnotebook: x.ipynb\ninputs: ['C:\\data\\a.csv']\n", 3, "inputs", "leaves"),
        ("name: a\nnotebook: x.ipynb\nparameters: {n-trees: 3}\n", 3, "parameters",
         "not a Python identifier"),
        ("name: a\nnotebook: x.ipynb\nparameters: {class: 3}\n", 3, "parameters", "identifier"),
        ("name: a\nnotebook: x.ipynb\ntimeout: -1\n", 3, "timeout", "positive"),
        ("name: a\nnotebook: x.ipynb\npackages: pandas\nname: b\n", 4, "name", "given twice"),
        ("name: a\nnotebook: x.ipynb\npython: '3.10'\npython_exe: /usr/bin/python3\n", 3,
         "python", "not both"),
        ("name: a\nnotebook: x.ipynb\nkernel_name: 'my kernel'\n", 3, "kernel_name", "letters"),
        ("name: a\nnotebook: x.ipynb\npackages: [1.5]\n", 3, "packages", "list of strings"),
        ("name: a\nnotebook: x.txt\n", 2, "notebook", ".ipynb"),
    ],
)
def test_bad_spec(text, line, key, fragment):
    err = error_of(text)
    assert err.line == line
    assert err.key == key
    assert fragment in str(err)
    assert str(err).startswith(f"env_specs/stage.yaml:{line}: ")


def test_missing_required():
    err = error_of("name: a\n")
    assert err.key == "notebook" and "required" in str(err)


def test_missing_notebook_file():
    err = error_of("name: a\nnotebook: nb/missing.ipynb\n", exists=lambda p: False)
    assert err.line == 2 and "does not exist" in str(err) and "nb/missing.ipynb" in str(err)


def test_invalid_yaml_has_line():
    err = error_of("name: a\nnotebook: [x.ipynb\nfoo: 1\n")
    assert "invalid YAML" in str(err) and err.line is not None


def test_not_a_mapping_and_empty():
    assert "mapping" in str(error_of("- a\n- b\n"))
    assert "empty" in str(error_of(""))


def test_yaml_is_loaded_safely():
    err = error_of("name: !!python/object/apply:os.system ['echo hacked']\nnotebook: x.ipynb\n")
    assert "invalid YAML" in str(err)


# -- workdir and env -------------------------------------------------------------------------

NB = "name: s\nnotebook: src/nb.ipynb\n"


def test_workdir_defaults_to_the_root_and_takes_the_notebooks_folder_or_a_project_folder():
    assert parse(NB).workdir == "."
    assert parse(NB + "workdir: notebook\n").workdir == "src"
    assert parse("name: s\nnotebook: nb.ipynb\nworkdir: notebook\n").workdir == "."
    assert parse(NB + "workdir: ./data/../src/\n").workdir == "src"


def test_a_workdir_outside_the_project_or_missing_is_refused_with_its_line_and_fix():
    err = error_of(NB + "workdir: ../elsewhere\n")
    assert err.line == 3 and "inside the project" in str(err) and "notebook" in str(err)
    err = error_of(NB + "workdir: nowhere\n", exists=lambda p: not p.endswith("/"))
    assert err.line == 3 and "'nowhere' does not exist" in str(err)


def test_env_takes_string_values_and_refuses_bad_names_numbers_and_the_tools_variables():
    assert parse(NB + "env:\n  OMP_NUM_THREADS: '4'\n").env == {"OMP_NUM_THREADS": "4"}
    err = error_of(NB + "env:\n  OMP_NUM_THREADS: 4\n")
    assert err.line == 3 and "must be a string" in str(err) and 'OMP_NUM_THREADS: "4"' in str(err)
    assert "valid environment variable name" in str(error_of(NB + "env:\n  1X: a\n"))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "PATH"):
        err = error_of(NB + f"env:\n  {name}: x\n")
        assert "set by mlops-tasks itself" in str(err) and err.line == 3, name
    assert "mapping" in str(error_of(NB + "env: [A]\n"))
