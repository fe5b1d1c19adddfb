"""Notebooks run as their authors wrote them: in a working folder of the spec's choice with
their own folder importable, `!python`/`!pip` on the stage's venv (a change to it said and
rebuilt), the spec's environment variables (in the key, recorded redacted), and one warning
for parameters injected into a notebook without a parameters cell."""

from __future__ import annotations

from mlops_tasks.project.fingerprint import stage_key
from mlops_tasks.run.execute import freeze_changes, redacted_env
from mlops_tasks.run.kernel_launch import shell_env, venv_bin
from mlops_tasks.run.papermill_adapter import import_hint

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
