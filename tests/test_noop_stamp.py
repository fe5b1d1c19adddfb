"""A no-op stamped (pipeline/noop.py): the same `doit` says the same lines without loading
the project, and every change that the full path would see sends it there. Watched from
outside: a run that opens no spec took the shortcut. A last test checks that the stamp
keeps every path of the project that a full no-op reads or looks at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from mlops_tasks.pipeline import noop

from .helpers import PYTHON, clean_env, make_project, ran, write_notebook, write_spec

pytestmark = pytest.mark.integration

WATCH = """
import json, os, sys
root = os.path.realpath(os.getcwd()) + os.sep
seen, opened, busy = set(), set(), []
def note(path, into=seen):
    if busy:
        return
    busy.append(1)
    try:
        path = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    finally:
        busy.clear()
    if path.startswith(root):
        into.add(path[len(root):].replace(os.sep, "/"))
def hook(event, args):
    if event in ("open", "os.scandir", "os.listdir", "sqlite3.connect") and args \\
            and isinstance(args[0], (str, bytes, os.PathLike)):
        note(args[0])
        if event == "open":
            note(args[0], opened)
sys.addaudithook(hook)
for name in ("stat", "lstat"):
    def wrapped(path, *a, _real=getattr(os, name), **k):
        if isinstance(path, (str, bytes, os.PathLike)):
            note(path)
        return _real(path, *a, **k)
    setattr(os, name, wrapped)
import atexit
atexit.register(lambda: print("SEEN " + json.dumps([sorted(seen), sorted(opened)])))
sys.argv = ["doit", *sys.argv[1:]]
from doit.__main__ import main
main()
"""

USE = [("parameters", "scale = 1"),
       (None, "import json\nfrom pathlib import Path\n"
              "text = Path('../../out/greeting.txt').read_text()\n"
              "Path('../../out/metrics.json').write_text(json.dumps({'n': len(text) * scale}))")]


def watched_doit(root: Path, *args: str, **env: str
                 ) -> tuple[subprocess.CompletedProcess[str], Seen]:
    """`doit ARGS` in a process of its own; what it printed and the project paths it
    opened, listed or stat'ed."""
    proc = subprocess.run([PYTHON, "-c", WATCH, *args], cwd=root, env=clean_env(**env),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines and lines[-1].startswith("SEEN "), proc.stdout[-3000:]
    touched, opened = json.loads(lines[-1][5:])
    proc.stdout = "\n".join(lines[:-1]) + "\n"
    return proc, Seen(set(touched), set(opened))


class Seen(NamedTuple):
    touched: set[str]  # opened, listed or stat'ed
    opened: set[str]


def shortcut(seen: Seen) -> bool:
    """No spec was read: the project was not loaded."""
    return not any(p.startswith("env_specs/") and p.endswith(".yaml") for p in seen.opened)


def age(root: Path, seconds: float = 120) -> None:
    """Time passes: every file of the project as if written `seconds` ago (a stamp trusts
    no file written within the last two seconds), git's index included (a run's `git
    status` rewrites it)."""
    then = time.time() - seconds
    os.utime(root / ".git" / "index", (then, then))
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in [*files, *dirs, "."]:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.utime(path, (then, then))


def stamped(root: Path, *args: str) -> str:
    """Bring the stamp of `doit ARGS` up to date (a full no-op stamps it) and check that the
    same command then takes the shortcut; the shortcut's output."""
    age(root)
    proc, seen = watched_doit(root, *args)
    assert ran(proc.stdout) == set(), proc.stdout
    assert not shortcut(seen), "the first no-op after a change takes the full path"
    proc, seen = watched_doit(root, *args)
    assert shortcut(seen), sorted(seen.opened)
    assert ran(proc.stdout) == set()
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """make (a folder input, a shared environment) -> use (a notebook in a subfolder that
    runs there, depends_on make, a metrics file), brought up to date."""
    root = make_project(tmp_path_factory.mktemp("noop") / "proj", wheelhouse, with_use=False)
    (root / "data").mkdir()
    (root / "data" / "seed.txt").write_text("7\n")
    (root / "env_specs" / "environments").mkdir()
    (root / "env_specs" / "environments" / "base.yaml").write_text("packages: []\n")
    write_spec(root, "make", """
        name: make
        notebook: notebooks/make.ipynb
        environment: base
        parameters:
          greeting: hi
          repeat: 2
        inputs:
          - data
        outputs:
          - out/greeting.txt
        """)
    write_notebook(root / "notebooks" / "sub" / "use.ipynb", USE)
    write_spec(root, "use", """
        name: use
        notebook: notebooks/sub/use.ipynb
        environment: base
        workdir: notebooks/sub
        depends_on: [make]
        inputs:
          - out/greeting.txt
        metrics:
          - out/metrics.json
        """)
    proc, _ = watched_doit(root)
    assert {"execute:make", "execute:use"} <= ran(proc.stdout), proc.stdout
    return root


def test_a_stamped_noop_says_what_the_full_one_says(project: Path) -> None:
    fast = stamped(project)
    full, seen = watched_doit(project, MLOPS_NOOP_STAMP="0")
    assert not shortcut(seen)
    assert fast == full.stdout
    assert "-- execute:use" in fast and "-- log:make" in fast
    # each command line has its own stamp
    stamped(project, "run", "use")
    assert len(list((project / ".mlops" / "noop").glob("*.json"))) == 2


@pytest.mark.parametrize("change, runs", [
    ("touch the input folder's file", set()),
    ("edit the notebook", {"execute:make", "log:make", "execute:use", "log:use"}),
    ("edit a parameter", {"execute:make", "log:make", "execute:use", "log:use"}),
    ("delete an output", {"execute:make", "log:make", "execute:use", "log:use"}),
    ("edit a metrics file", {"execute:use", "log:use"}),
    ("doit forget", {"execute:use", "log:use"}),
    ("delete the venv", set()),
    ("add a file to the input folder", {"execute:make", "log:make", "execute:use",
                                        "log:use"}),
    ("a run left RUNNING", set()),
])
def test_a_change_takes_the_full_path(project: Path, change: str, runs: set[str]) -> None:
    stamped(project)
    make_nb = project / "notebooks" / "make.ipynb"
    if change == "touch the input folder's file":
        os.utime(project / "data" / "seed.txt")
    elif change == "edit the notebook":
        text = make_nb.read_text()
        make_nb.write_text(text.replace("print(text)", "print(text, flush=True)"))
    elif change == "edit a parameter":
        spec = project / "env_specs" / "make.yaml"
        spec.write_text(spec.read_text().replace("repeat: 2", "repeat: 3"))
    elif change == "delete an output":
        (project / "out" / "greeting.txt").unlink()
    elif change == "edit a metrics file":
        (project / "out" / "metrics.json").write_text('{"n": -1}')
    elif change == "doit forget":
        subprocess.run([PYTHON, "-m", "doit", "forget", "execute:use"], cwd=project,
                       env=clean_env(), check=True, capture_output=True)
    elif change == "delete the venv":
        shutil.rmtree(project / ".venvs" / "base")
    elif change == "add a file to the input folder":
        (project / "data" / "more.txt").write_text("more\n")
    elif change == "a run left RUNNING":
        running = project / ".mlops" / "executed" / "use.running.json"
        running.write_text("{}")  # unreadable as a record: the full path says so and drops it
    proc, seen = watched_doit(project)
    assert not shortcut(seen), change
    assert ran(proc.stdout) == runs, proc.stdout
    if change == "a run left RUNNING":
        (project / ".mlops" / "executed" / "use.running.json").unlink(missing_ok=True)


def test_other_command_lines_and_a_moved_project_take_the_full_path(project: Path,
                                                                     tmp_path: Path) -> None:
    stamped(project)
    for args in (["-n", "2"], ["run", "make"]):
        _, seen = watched_doit(project, *args)
        assert not shortcut(seen), args
    _, seen = watched_doit(project, MLOPS_NOOP_STAMP="0")
    assert not shortcut(seen)
    moved = tmp_path / "moved"
    shutil.copytree(project, moved, symlinks=True, copy_function=shutil.copy2)
    _, seen = watched_doit(moved)
    assert not shortcut(seen), "a moved project's kernelspecs name the old folder"


def test_a_new_spec_takes_the_full_path(project: Path) -> None:
    stamped(project)
    write_notebook(project / "notebooks" / "more.ipynb", [(None, "x = 1")])
    write_spec(project, "more", """
        name: more
        notebook: notebooks/more.ipynb
        environment: base
        """)
    try:
        proc, seen = watched_doit(project)
        assert not shortcut(seen)
        assert ran(proc.stdout) == {"execute:more", "log:more"}
    finally:
        (project / "env_specs" / "more.yaml").unlink()


def test_the_stamp_keeps_every_path_a_full_noop_looks_at(project: Path) -> None:
    """Whatever a full no-op reads, lists or stat's in the project is in the stamp: a path
    it keeps, or inside an input or output it keeps by content. Leaving out only what is
    not a stage's state: the workspace mutex and its owner, doit's DB beside its file
    (-wal, -shm), the stamps themselves, the report a run that runs nothing removes, the
    interpreter probe cache (each request is resolved again) and bytecode."""
    from mlops_tasks.project.load import load_project

    stamped(project)
    _, seen = watched_doit(project, MLOPS_NOOP_STAMP="0")
    loaded = load_project(project)
    own, contents = noop.watched_paths(loaded.stages, loaded.config.specs_dir,
                                       ".mlops/doit.db")
    exempt = (".mlops/workspace.", ".mlops/.workspace.", ".mlops/mutexes", ".mlops/doit.db-",
              ".mlops/noop",
              ".mlops/reports/junit.xml", ".mlops/interpreters.json", "__pycache__")
    kept = set(own) | {p.as_posix() for p in map(Path, own)}

    def covered(path: str) -> bool:
        # .mlops/executed is listed for runs left RUNNING: the shortcut lists it too
        return (path in kept or path in ("", ".mlops", ".mlops/executed", ".git", ".git/index")
                or any(path == c or path.startswith(c.rstrip("/") + "/") for c in contents)
                or path.startswith(exempt) or "/__pycache__" in path)

    assert seen.touched, "the watch saw nothing"
    missed = [p for p in sorted(seen.touched) if not covered(p)]
    assert missed == [], missed


def test_a_dodo_with_tasks_of_its_own_is_never_stamped(project: Path) -> None:
    """A task of the user's reads files the stamp does not keep: its project always takes
    the full path."""
    dodo = project / "dodo.py"
    text = dodo.read_text()
    (project / "hello.txt").write_text("hi")
    dodo.write_text(text + "\n\ndef task_hello():\n    return {'actions': ['echo hi'], "
                    "'file_dep': ['hello.txt']}\n")
    try:
        age(project)
        for _ in range(2):
            proc, seen = watched_doit(project, "run", "hello", "use")
            assert not shortcut(seen)
        assert "-- hello" in proc.stdout
        age(project)
        (project / "hello.txt").write_text("hello")  # what only the user's task reads
        proc, seen = watched_doit(project, "run", "hello", "use")
        assert ran(proc.stdout) == {"hello"}
        assert not list((project / ".mlops" / "noop").glob("*.json")) or all(
            f.stat().st_mtime < time.time() - 60 for f in (project / ".mlops" / "noop").iterdir())
    finally:
        dodo.write_text(text)


def test_a_stamp_that_cannot_be_written_fails_nothing(project: Path) -> None:
    age(project)
    folder = project / ".mlops" / "noop"
    shutil.rmtree(folder, ignore_errors=True)
    folder.write_text("a file where the stamps go")
    try:
        proc, seen = watched_doit(project)  # exits 0, or watched_doit says so
        assert ran(proc.stdout) == set() and not shortcut(seen)
    finally:
        folder.unlink()
