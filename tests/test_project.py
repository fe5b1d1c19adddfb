"""Project-level validation and the doit boundary for bad specs and bad config."""

from __future__ import annotations

import textwrap

import pytest

from mlops_tasks.base.errors import ConfigError, SpecError
from mlops_tasks.project.config import load_config
from mlops_tasks.project.load import load_project

from .helpers import doit, write_notebook


def project(tmp_path, specs: dict[str, str], pyproject: str = ""):
    (tmp_path / "env_specs").mkdir()
    for name, text in specs.items():
        (tmp_path / "env_specs" / name).write_text(textwrap.dedent(text), encoding="utf-8")
    write_notebook(tmp_path / "nb" / "a.ipynb", [(None, "x = 1")])
    write_notebook(tmp_path / "nb" / "b.ipynb", [(None, "x = 1")])
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent(pyproject), encoding="utf-8")
    (tmp_path / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n")
    return tmp_path


def test_duplicate_names_name_both_files(tmp_path):
    root = project(tmp_path, {"a.yaml": "name: s\nnotebook: nb/a.ipynb\n",
                              "b.yaml": "name: s\nnotebook: nb/b.ipynb\n"})
    with pytest.raises(SpecError) as info:
        load_project(root)
    assert str(info.value).startswith("env_specs/b.yaml:1:")
    assert "env_specs/a.yaml" in str(info.value)


def test_shared_env_dir_is_refused(tmp_path):
    root = project(tmp_path, {"a.yaml": "name: a\nnotebook: nb/a.ipynb\nenv_dir: .v\n",
                              "b.yaml": "name: b\nnotebook: nb/b.ipynb\nenv_dir: .v\n"})
    with pytest.raises(SpecError, match="'env_dir' '.v' is also used"):
        load_project(root)


def test_missing_input_without_producer(tmp_path):
    root = project(tmp_path, {"a.yaml": "name: a\nnotebook: nb/a.ipynb\ninputs: [d/x.csv]\n"})
    with pytest.raises(SpecError, match="input 'd/x.csv' does not exist"):
        load_project(root)


def test_no_specs(tmp_path):
    root = project(tmp_path, {})
    with pytest.raises(SpecError, match="no stage specs"):
        load_project(root)


def test_config_errors(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\ninstaler = 'uv'\n")
    with pytest.raises(ConfigError, match="did you mean 'installer'"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\ninstaller = 'conda'\n")
    with pytest.raises(ConfigError, match="installer must be one of uv, pip"):
        load_config(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\nindex_policy = 'maybe'\n")
    with pytest.raises(ConfigError, match="index_policy"):
        load_config(tmp_path)


def test_boot_ahead_setting_and_its_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_BOOT_AHEAD", raising=False)
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\n")
    assert load_config(tmp_path).boot_ahead is True
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\nboot_ahead = false\n")
    assert load_config(tmp_path).boot_ahead is False
    monkeypatch.setenv("MLOPS_BOOT_AHEAD", "1")
    assert load_config(tmp_path).boot_ahead is True
    monkeypatch.setenv("MLOPS_BOOT_AHEAD", "maybe")
    with pytest.raises(ConfigError, match="MLOPS_BOOT_AHEAD must be 1 or 0"):
        load_config(tmp_path)
    monkeypatch.delenv("MLOPS_BOOT_AHEAD")
    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\nboot_ahead = 'no'\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.mlops_tasks\] boot_ahead "
                       "must be true or false; got 'no'"):
        load_config(tmp_path)


def test_tracking_uri_default_and_override(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    config = load_config(tmp_path)
    assert config.resolved_tracking_uri() == "sqlite:///" + (
        tmp_path / ".mlops" / "mlflow.db").as_posix()
    assert config.experiment_name() == "demo"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert config.resolved_tracking_uri() == "http://127.0.0.1:5999"


@pytest.mark.parametrize("command", [["list"], []])
def test_bad_spec_stops_doit_before_anything_runs(tmp_path, command):
    root = project(tmp_path, {"a.yaml": "name: a\nnotebook: nb/a.ipynb\npython: 3.10\n"})
    proc = doit(root, *command, check=False)
    assert proc.returncode != 0
    assert 'env_specs/a.yaml:3: \'python\' must be a string like "3.10"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / ".venvs").exists()
    assert not (root / ".mlops" / "executed").exists()


def test_stdlib_package_warning_is_printed(tmp_path):
    root = project(tmp_path, {"a.yaml": "name: a\nnotebook: nb/a.ipynb\npackages:\n"
                                        "  - warnings ; # stdlib\n"})
    proc = doit(root, "list")
    assert "env_specs/a.yaml:3: warning: 'warnings' is a standard-library module" in proc.stderr
    listed = dict(line.split(None, 1) for line in proc.stdout.splitlines())
    assert listed["a"] == "bring stage 'a' and its upstream up to date, logged"
