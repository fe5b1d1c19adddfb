"""Loading the dodo is free of side effects; the commands that run tasks take the workspace
mutex, read-only ones never wait for it; output survives any console encoding."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

from .helpers import PYTHON, clean_env, doit, scaffolded, write_notebook, write_spec


def tiny_project(root: Path) -> Path:
    (root / "env_specs").mkdir(parents=True)
    write_spec(root, "s", """
        name: s
        notebook: nb/s.ipynb
        outputs: [out/s.txt]
    """)
    write_notebook(root / "nb" / "s.ipynb", [(None, "x = 1")])
    scaffolded(root, "t")
    return root


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if "__pycache__" not in p.parts}


def test_importing_the_dodo_and_listing_create_nothing(tmp_path):
    import subprocess

    root = tiny_project(tmp_path / "p")
    before = tree(root)
    subprocess.run([PYTHON, "-c", "import dodo"], cwd=root, env=clean_env(), check=True)
    doit(root, "list")
    doit(root, "-f", "dodo.py", "list", "--all")
    doit(root, "list", "greeting=1")  # a doit variable does not make it a run
    assert tree(root) == before


def test_list_returns_at_once_while_another_doit_holds_the_workspace(tmp_path):
    root = tiny_project(tmp_path / "p")
    (root / ".mlops").mkdir()
    with FileLock(str(root / ".mlops" / "workspace.lock"), timeout=0):
        start = time.monotonic()
        listed = doit(root, "-f", "dodo.py", "list")
        assert "execute   execute stage notebooks with papermill" in listed.stdout
        busy = doit(root, "run", "s", check=False, env=clean_env(MLOPS_WORKSPACE_BUSY="fail"))
        forget = doit(root, "forget", check=False, env=clean_env(MLOPS_WORKSPACE_BUSY="fail"))
        elapsed = time.monotonic() - start
    assert busy.returncode == 3 and "the workspace is busy" in busy.stderr
    assert forget.returncode == 3 and "the workspace is busy" in forget.stderr
    assert elapsed < 30  # nothing waited for the holder


def test_the_dep_db_is_made_on_first_write_only(tmp_path):
    from doit.dependency import JSONCodec

    from mlops_tasks.pipeline.statedb import DurableSqliteDB

    name = str(tmp_path / "state" / "doit.db")
    db = DurableSqliteDB(name, JSONCodec())
    assert not db.in_("execute:s") and db.get("execute:s", "deps:") is None
    db.remove("execute:s")
    db.dump()
    assert not (tmp_path / "state").exists()
    db = DurableSqliteDB(name, JSONCodec())
    db.set("execute:s", "deps:", ["x"])  # committed at once
    assert DurableSqliteDB(name, JSONCodec()).get("execute:s", "deps:") == ["x"]
    db.dump()


def test_other_doit_projects_get_doits_commands_untouched(tmp_path):
    """mlops-tasks installs its commands for every doit project of the Python; a project
    that is not a pipeline gets no workspace mutex, no state folder, no stage order."""
    root = tmp_path / "plain"
    root.mkdir()
    (root / "dodo.py").write_text(
        "def task_hello():\n    return {'actions': ['echo hi > hello.txt'], "
        "'targets': ['hello.txt'], 'clean': True}\n")
    out = doit(root).stdout
    assert ".  hello" in out and (root / "hello.txt").exists()
    assert not (root / ".mlops").exists()
    doit(root, "forget")
    doit(root, "clean")
    assert not (root / "hello.txt").exists() and not (root / ".mlops").exists()


def test_a_finished_run_exits_without_teardown_only_as_the_doit_program(monkeypatch):
    """exit_now ends the process: never in a program that only imported doit (this one)."""
    from mlops_tasks.base import interrupt

    assert not interrupt.doit_is_the_program()
    monkeypatch.setitem(sys.modules, "mlflow", sys.modules.get("mlflow") or object())
    interrupt.exit_now(0)  # still here
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/doit", "run"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    assert interrupt.doit_is_the_program()


def test_doit_keeps_its_exit_code_when_it_skips_the_teardown(tmp_path):
    """A run that loaded mlflow and failed still exits with doit's code for a failed task."""
    proc = subprocess.run([sys.executable, "-c", (
        "import sys, mlops_tasks.base.interrupt as i; sys.modules['mlflow'] = sys;"
        "import atexit; atexit.register(lambda: print('handlers ran'));"
        "sys.argv = ['doit']; i.exit_now(1); print('not reached')")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 1 and proc.stdout == "handlers ran\n", proc
