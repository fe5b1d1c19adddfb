"""`doit clean` removes only what a run of this tool wrote and recorded, by content hash; a
file it cannot prove it made is kept and named, git or no git; `clean -n` names the files."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_tasks.project.output_rules import clean_plan

from .helpers import doit, scaffolded, write_notebook, write_spec


def test_the_clean_plan_removes_only_recorded_unchanged_content():
    plan = clean_plan(["a", "b", "c"], {"a": "h1", "b": "h2"}, {"a": "h1", "b": "zz", "c": "h3"})
    assert plan == [("a", None), ("b", "changed since the stage's last run wrote it"),
                    ("c", "the stage's last run did not write it, so it may be yours")]
    assert clean_plan(["a"], None, {"a": "h1"}) == [
        ("a", "no run of this stage is recorded, so it may be yours")]


def bare_project(root: Path) -> Path:
    """A project as `mlops-tasks init` leaves it before `git init`: no git at all."""
    (root / "env_specs").mkdir(parents=True)
    scaffolded(root, "c")
    write_notebook(root / "nb" / "s.ipynb", [(None, "print(1)")])
    return root


@pytest.mark.parametrize("git", [False, True])
def test_clean_keeps_a_users_folder_the_stage_never_wrote(tmp_path, git):
    import subprocess

    root = bare_project(tmp_path / "p")
    if git:
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    write_spec(root, "s", "name: s\nnotebook: nb/s.ipynb\noutputs: [mydata, notes.txt]\n")
    (root / "mydata").mkdir()
    (root / "mydata" / "raw.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (root / "notes.txt").write_text("mine\n", encoding="utf-8")  # untracked under git
    dry = doit(root, "clean", "-n", "execute:s").stdout
    assert "kept mydata: no run of this stage is recorded, so it may be yours" in dry
    assert "kept notes.txt" in dry and "would remove" not in dry
    out = doit(root, "clean", "execute:s").stdout
    assert "kept mydata" in out and "removed mydata" not in out
    assert (root / "mydata" / "raw.csv").read_text(encoding="utf-8") == "a,b\n1,2\n"
    assert (root / "notes.txt").read_text(encoding="utf-8") == "mine\n"


def test_the_projects_settings_cannot_be_an_output_even_without_git(tmp_path):
    root = bare_project(tmp_path / "p")
    write_spec(root, "s", "name: s\nnotebook: nb/s.ipynb\noutputs: [pyproject.toml]\n")
    proc = doit(root, "list", check=False)
    assert proc.returncode != 0
    assert "env_specs/s.yaml:3: 'outputs' entry 'pyproject.toml' is or holds the project's " \
           "settings" in proc.stderr + proc.stdout
    doit(root, "clean", check=False)
    assert (root / "pyproject.toml").exists()
