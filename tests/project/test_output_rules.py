"""Outputs can never be the user's sources: refused at load with file:line and the fix."""

from __future__ import annotations

import subprocess

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.base.gitindex import tracked
from mlops_tasks.project.output_rules import check_outputs
from mlops_tasks.project.spec import Stage

from ..helpers import doit, write_notebook, write_spec


def stage(name: str, outputs: tuple[str, ...], **kw) -> Stage:
    return Stage(name, f"env_specs/{name}.yaml", f"nb/{name}.ipynb", f".venvs/{name}",
                 f"k-{name}", outputs=outputs, lines={"outputs": 7}, **kw)


@pytest.mark.parametrize("output, words", [
    (".", "is the project root"),
    (".git/hooks/pre-commit", "is inside .git"),
    (".mlops/doit.db", "is inside the tool's state folder .mlops/"),
    (".GIT/config", "is inside .git"),
    (".Mlops/doit.db", "is inside the tool's state folder .mlops/"),
    (".venvs", "holds the venv of stage 'a' (.venvs/a)"),
    (".venvs/b/lib", "is inside the venv of stage 'b' (.venvs/b)"),
    ("env_specs/b.yaml", "is or holds the spec of stage 'b'"),
    ("env_specs", "is or holds the spec of stage 'a'"),
    ("nb/b.ipynb", "is or holds the notebook of stage 'b'"),
    ("pyproject.toml", "is or holds the project's settings"),  # refused without git too
    ("dodo.py", "is or holds the project's dodo.py"),
])
def test_outputs_that_hold_the_users_sources_are_refused(output, words):
    with pytest.raises(SpecError) as info:
        check_outputs([stage("a", (output,)), stage("b", ())], tracked=None)
    message = str(info.value)
    assert message.startswith("env_specs/a.yaml:7: 'outputs' entry")
    assert words in message and "doit clean" in message


def test_tracked_files_and_folders_holding_them_are_refused():
    with pytest.raises(SpecError, match=r"'README.md' is tracked by git.*"
                                        r"git rm --cached README.md"):
        check_outputs([stage("a", ("README.md",))], tracked={"README.md"})
    with pytest.raises(SpecError, match=r"'data' holds 'data/raw.csv', which is tracked"):
        check_outputs([stage("a", ("data",))], tracked={"data/raw.csv"})
    check_outputs([stage("a", ("data/out.csv",))], tracked={"data/raw.csv"})


@pytest.mark.parametrize("first, second, words", [
    ("data/out", "data/out/model.pkl", "is inside, or holds,"),
    ("Models/m.pkl", "models/m.pkl", "differs only in case from"),
])
def test_outputs_that_are_one_file_on_some_disk_conflict(first, second, words):
    with pytest.raises(SpecError, match=words):
        check_outputs([stage("a", (first,)), stage("b", (second,))], tracked=None)
    with pytest.raises(SpecError, match="an output of this stage"):
        check_outputs([stage("a", (first, second))], tracked=None)


@pytest.mark.parametrize("version", ["2", "4"])
def test_the_git_index_is_read_without_git(tmp_path, version):
    repo = tmp_path / "repo"
    (repo / "proj" / "data").mkdir(parents=True)
    for rel in ("top.txt", "proj/pyproject.toml", "proj/data/raw.csv", "proj/data/é.csv"):
        (repo / rel).write_text("x")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run(["git", "config", "index.version", version], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    assert tracked(repo / "proj") == {"pyproject.toml", "data/raw.csv", "data/é.csv"}
    assert "top.txt" in (tracked(repo) or set())
    assert tracked(tmp_path) is None


def test_doit_refuses_a_tracked_output_before_anything_runs(tmp_path):
    root = tmp_path / "p"
    (root / "env_specs").mkdir(parents=True)
    write_notebook(root / "nb" / "s.ipynb", [(None, "x = 1")])
    (root / "pyproject.toml").write_text('[tool.mlops_tasks]\nexperiment = "t"\n')
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n")
    (root / "README.md").write_text("mine\n")
    write_spec(root, "s", "name: s\nnotebook: nb/s.ipynb\noutputs: [README.md]\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    proc = doit(root, "clean", check=False)
    assert proc.returncode == 3
    assert "env_specs/s.yaml:3: 'outputs' entry 'README.md' is tracked by git" in proc.stderr
    assert (root / "README.md").exists()
