"""Notebooks run as their authors wrote them: in a working folder of the spec's choice with
their own folder importable, `!python`/`!pip` on the stage's venv (a change to it said and
rebuilt), the spec's environment variables (in the key, recorded redacted), and one warning
for parameters injected into a notebook without a parameters cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_tasks.project.fingerprint import stage_key
from mlops_tasks.run.execute import freeze_changes, redacted_env
from mlops_tasks.run.kernel_launch import shell_env, venv_bin
from mlops_tasks.run.papermill_adapter import import_hint

from .helpers import doit

# -- as data ---------------------------------------------------------------------------------


def test_the_venvs_bin_folder_comes_first_on_path_in_both_layouts():
    assert venv_bin("/p/.venvs/a/", False) == "/p/.venvs/a/bin"
    assert venv_bin("C:\\p\\.venvs\\a", True) == "C:\\p\\.venvs\\a\\Scripts"
    env = shell_env("/p/v", "/usr/bin:/p/v/bin:/bin", ("/p/src",), "/hook", False)
    assert env == {"PATH": "/p/v/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/p/v",
                   "PYTHONPATH": "/p/src:/hook"}
    env = shell_env("C:\\p\\v", "C:\\Windows;C:\\p\\v\\Scripts", ("C:\\p\\nb",), "", True)
    assert env == {"PATH": "C:\\p\\v\\Scripts;C:\\Windows", "VIRTUAL_ENV": "C:\\p\\v",
                   "PYTHONPATH": "C:\\p\\nb"}


def test_what_a_notebook_installed_is_named():
    before = "# python 3.11 (cpython)\nidna==3.6\nipykernel==6.0\nsix==1.0\n"
    after = "idna==3.7\nipykernel==6.0\nrequests==2.0\n"
    assert freeze_changes(before, after) == ["+requests==2.0", "idna==3.6 -> idna==3.7",
                                             "-six==1.0"]
    assert freeze_changes(before, before) == []


def test_env_vars_change_the_key_and_are_recorded_with_secrets_hidden():
    plain = stage_key("f", "c", "p", {})
    assert stage_key("f", "c", "p", {}, {}) == plain  # keys made before `env` stay
    assert stage_key("f", "c", "p", {}, {"A": "1"}) not in {plain, stage_key("f", "c", "p", {},
                                                                             {"A": "2"})}
    assert redacted_env({"API_TOKEN": "t", "db_password": "p", "AWS_SECRET_ACCESS_KEY": "k",
                         "URL": "https://u:pw@host/x", "N": "4"}) == {
        "API_TOKEN": "***", "db_password": "***", "AWS_SECRET_ACCESS_KEY": "***",
        "URL": "https://***@host/x", "N": "4"}


def test_an_import_failure_names_the_working_folder_and_workdir_notebook():
    hint = import_hint("data", "env_specs/a.yaml")
    assert "ran in data/" in hint and "workdir: notebook" in hint and "env_specs/a.yaml" in hint
    assert "the project root" in import_hint(".", "env_specs/a.yaml")


# -- on a real pipeline ------------------------------------------------------------------------

SRC = [(None, "import utils\nfrom pathlib import Path\n"
              "text = Path('../data/x.csv').read_text() + utils.VALUE\n"
              "Path('../out').mkdir(exist_ok=True)\nPath('../out/src.txt').write_text(text)")]
SHELL = [(None, "import os, sys, json\nfrom pathlib import Path\n"
                "prefix = !python -c 'import sys; print(sys.prefix)'\n"
                "Path('out').mkdir(exist_ok=True)\n"
                "Path('out/shell.json').write_text(json.dumps({'prefix': prefix[-1], "
                "'greeting': os.environ['GREETING'], "
                "'path0': os.environ['PATH'].split(os.pathsep)[0], "
                "'venv': os.environ['VIRTUAL_ENV']}))\n"
                "if os.environ.get('INSTALL') == 'yes':\n"
                "    wheels = os.environ['WHEELS']\n"
                "    !pip install --quiet --no-index --find-links {wheels} idna==3.6\n"
                "    import importlib.metadata\n"
                "    assert importlib.metadata.version('idna') == '3.6'")]


@pytest.fixture(scope="module")
def authors(tmp_path_factory, wheelhouse):
    from .helpers import offline_pipeline, write_notebook, write_spec

    root = offline_pipeline(tmp_path_factory.mktemp("authors") / "p", wheelhouse, "shell")
    (root / "data").mkdir()
    (root / "data" / "x.csv").write_text("a,b\n")
    (root / "src").mkdir()
    (root / "src" / "utils.py").write_text("VALUE = 'from utils'\n")
    write_notebook(root / "src" / "analysis.ipynb", SRC)
    write_spec(root, "src", """
        name: src
        notebook: src/analysis.ipynb
        workdir: notebook
        inputs: [data/x.csv]
        outputs: [out/src.txt]
    """)
    write_notebook(root / "nb" / "shell.ipynb", SHELL)
    write_spec(root, "shell", """
        name: shell
        notebook: nb/shell.ipynb
        env: {GREETING: hello, INSTALL: "no", WHEELS: "@HOUSE@"}
        outputs: [out/shell.json]
    """.replace("@HOUSE@", str(wheelhouse)))
    first = doit(root)
    return root, first


@pytest.mark.integration
def test_a_notebook_in_a_subfolder_imports_its_sibling_and_reads_relative_paths(authors):
    root, _ = authors
    assert (root / "out" / "src.txt").read_text() == "a,b\nfrom utils"


@pytest.mark.integration
def test_the_shell_is_the_stages_and_its_variables_arrive(authors, wheelhouse):
    root, first = authors
    seen = json.loads((root / "out" / "shell.json").read_text())
    venv = (root / ".venvs" / "shell").resolve()
    assert Path(seen["prefix"]).resolve() == venv  # !python is the stage venv's
    assert Path(seen["venv"]).resolve() == venv and Path(seen["path0"]).resolve() == venv / "bin"
    assert seen["greeting"] == "hello"
    assert ("execute:shell: warning: nb/shell.ipynb has no cell tagged 'parameters'; papermill "
            "injects stage_name, git_commit, mlflow_tracking_uri, mlflow_run_id") in first.stdout
    record = json.loads((root / ".mlops" / "executed" / "shell.json").read_text())
    assert record["env"] == {"GREETING": "hello", "INSTALL": "no", "WHEELS": str(wheelhouse)}


@pytest.mark.integration
def test_a_changed_variable_reruns_and_a_pip_install_is_reported_then_rebuilt(authors,
                                                                               wheelhouse):
    from .helpers import ran, write_spec

    root, _ = authors
    write_spec(root, "shell", """
        name: shell
        notebook: nb/shell.ipynb
        env: {GREETING: hello, INSTALL: "yes", WHEELS: "@HOUSE@"}
        outputs: [out/shell.json]
    """.replace("@HOUSE@", str(wheelhouse)))
    out = doit(root).stdout
    assert {"execute:shell", "log:shell"} <= ran(out)  # the variables are in the stage key
    assert "+idna==3.6" in out  # `!pip install` acted on the stage venv, and is named
    record = json.loads((root / ".mlops" / "executed" / "shell.json").read_text())
    assert any("idna==3.6" in change for change in record["venv_changed"]), record
    again = doit(root).stdout  # the stage runs again, on a venv rebuilt from the spec
    assert "execute:shell" in ran(again) and "venv:shell: building" in again
    assert "idna" not in (root / ".venvs" / "shell" / "pip-freeze.txt").read_text()
