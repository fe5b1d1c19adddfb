"""Jenkins aborts, kills and concurrent runs, injected with real processes: after each, the
exit status, the message, what the next run reruns, and that nothing is left running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import (
    PYTHON,
    clean_env,
    command_lines,
    forked_doit,
    make_project,
    needs_proc,
    needs_process_groups,
    ran,
    wait_until,
    write_notebook,
    write_spec,
)

pytestmark = pytest.mark.integration

SLOW = ("import os, time\nfrom pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
        "Path('out/{name}.started').write_text('yes')\n"
        "if Path('data/slow-{name}').exists():\n    {half}time.sleep(120)")
WRITE = "Path('out/{name}.txt').write_text('{name} ' + Path('{src}').read_text())"


def stage_cells(name: str, src: str, half: bool = False) -> list:
    half_write = f"Path('out/{name}.txt').write_text('HALF')\n    " if half else ""
    return [(None, SLOW.format(name=name, half=half_write)),
            (None, WRITE.format(name=name, src=src))]


def setup(root: Path, wheelhouse: Path) -> Path:
    """make -> count -> summary, and a side stage independent of count."""
    make_project(root, wheelhouse, with_use=False)
    (root / "data").mkdir(exist_ok=True)
    for name, src in (("count", "out/greeting.txt"), ("summary", "out/count.txt"),
                      ("side", "out/greeting.txt")):
        write_spec(root, name, f"""
            name: {name}
            notebook: notebooks/{name}.ipynb
            env_dir: .venvs/shared-make-{name}
            inputs: [{src}]
            outputs: [out/{name}.txt]
        """)
        write_notebook(root / "notebooks" / f"{name}.ipynb",
                       stage_cells(name, src, half=name == "count"))
    return root


def kernels_of(root: Path) -> list[str]:
    """Live kernels and doit processes of the project (Linux)."""
    return [cmd for cmd in command_lines()
            if str(root) in cmd and ("ipykernel" in cmd or " -m doit" in cmd)]


def no_processes_left(root: Path, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while kernels_of(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kernels_of(root) == []


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([PYTHON, "-m", "doit", *args], cwd=root, env=env or clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"doit ended before {path.name} appeared:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} never appeared")
        time.sleep(0.05)


def slow(root: Path, *names: str) -> None:
    for name in names:
        (root / "data" / f"slow-{name}").write_text("1")
        (root / "out" / f"{name}.started").unlink(missing_ok=True)


def fast(root: Path) -> None:
    for flag in (root / "data").glob("slow-*"):
        flag.unlink()


@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    root = setup(tmp_path_factory.mktemp("faults") / "proj", wheelhouse)
    forked_doit(root, "-n", "2")
    return root


@contextlib.contextmanager
def interrupted_run(project: Path, repeat: int, *slow_stages: str, args: tuple = ()):
    """Make `make` (fast) and everything after it stale, start doit, and yield it once the
    slow stages' kernels are running; afterwards put the spec back and bring all up to date."""
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", f"repeat: {repeat}"))
    slow(project, *slow_stages)
    proc = start(project, *args)
    try:
        for name in slow_stages:
            wait_for(project / "out" / f"{name}.started", proc)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        fast(project)
        spec.write_text(original)
    forked_doit(project)


def rerun_after(project: Path) -> set[str]:
    fast(project)
    return ran(forked_doit(project).stdout)


@needs_process_groups
@needs_proc
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_execute_keeps_finished_work(project, signum, code):
    with interrupted_run(project, 3 if signum == 15 else 4, "count") as proc:
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, (out, err)
        assert (f"mlops-tasks: {signal.Signals(signum).name} received: stopped the running "
                "stage; finished tasks are recorded, the interrupted one will run again\n"
                ) in err
        assert "Traceback" not in err
        no_processes_left(project)
        again = rerun_after(project)
        assert {"execute:count", "log:count"} <= again
        assert "execute:make" not in again  # finished before the signal: recorded
        assert "HALF" not in (project / "out" / "count.txt").read_text()


@needs_process_groups
@needs_proc
def test_sigkill_during_execute_with_a_half_written_output(project):
    half = project / "out" / "count.txt"
    with interrupted_run(project, 5, "count") as proc:
        wait_until(lambda: half.exists() and half.read_text() == "HALF", 30,
                   "the notebook never wrote its half output")
        os.kill(proc.pid, signal.SIGKILL)  # doit only: its kernel must notice and exit
        proc.communicate(timeout=30)
        assert (project / "out" / "count.txt").read_text() == "HALF"
        no_processes_left(project, within=15)
        again = rerun_after(project)
        assert {"execute:count", "log:count"} <= again and "execute:make" not in again
        assert (project / "out" / "count.txt").read_text().startswith("count hi hi hi hi hi")


@needs_process_groups
@needs_proc
def test_parallel_run_then_sigterm(project):
    with interrupted_run(project, 6, "count", "side", args=("-n", "2")) as proc:
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)  # what Jenkins does: the whole group
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, (out, err)
        assert time.monotonic() - t0 < 30
        no_processes_left(project)
        again = rerun_after(project)
        assert {"execute:count", "execute:side"} <= again and "execute:make" not in again


@needs_process_groups
@needs_proc
def test_lock_holder_killed_then_a_new_run_takes_over(project):
    with interrupted_run(project, 7, "count") as proc:
        busy = forked_doit(project, env=clean_env(MLOPS_WORKSPACE_BUSY="fail"), check=False)
        assert busy.returncode != 0
        assert f"the workspace is busy: doit pid {proc.pid}" in busy.stderr
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        fast(project)
        forked_doit(project, env=clean_env(MLOPS_WORKSPACE_BUSY="fail"))
    no_processes_left(project)


def test_two_runs_started_together_both_succeed(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    procs = [start(root) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    waited = [i for i, (_, err) in enumerate(results) if "waiting for the workspace" in err]
    assert len(waited) == 1, results  # the other one held it
    holder = procs[1 - waited[0]]
    assert (f"mlops-tasks: waiting for the workspace, held by doit pid {holder.pid} on "
            in results[waited[0]][1])
    # the waiter found everything done by the holder
    assert ran(results[waited[0]][0]) == set() and "execute:make" in ran(results[1 - waited[0]][0])
    assert ran(forked_doit(root).stdout) == set()


def test_corrupted_dep_db_is_moved_aside(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    forked_doit(root)
    for extra in root.glob(".mlops/doit.db-*"):
        extra.unlink()
    (root / ".mlops" / "doit.db").write_bytes(b"this is not a database" * 100)
    proc = forked_doit(root)
    assert ".mlops/doit.db is unreadable" in proc.stderr
    assert list(root.glob(".mlops/doit.db.corrupt-*"))
    tasks = ran(proc.stdout)
    assert "execute:make" in tasks
    assert ran(forked_doit(root).stdout) == set()


def test_dep_db_opens_under_every_supported_python(project):
    """Every task of the finished pipeline is in the DB, read alike by the sqlite3 of each
    installed Python the project supports (a stage venv's Python may differ from doit's)."""
    import json
    import sqlite3

    from mlops_tasks.base.errors import InterpreterNotFound
    from mlops_tasks.env.interpreters import Resolver

    forked_doit(project, "run", "venv", "kernel")  # a stage's run builds its venv, not these
    status = {line.split()[1]: line.split()[0] for line in
              forked_doit(project, "list", "--all", "--status").stdout.splitlines()}
    assert set(status.values()) == {"U"}, status  # the pipeline is done
    stages = ("make", "count", "summary", "side")
    # venv:S and kernel:S are up to date by what is on disk (the venv's marker, the
    # kernelspec's content), with a row only once they ran; a stage's run builds its venv
    done = {f"{t}:{s}" for t in ("execute", "log") for s in stages}
    db = project / ".mlops" / "doit.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        own = sorted(row[0] for row in conn.execute("select task_id from doit"))
    # every task of every stage, and each stage's own task, and nothing doit does not know
    assert done | set(stages) <= set(own) <= set(status), own
    code = ("import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "print(json.dumps(sorted(r[0] for r in c.execute('select task_id from doit'))))")
    checked = []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        try:
            python = Resolver().resolve("probe", version, None).path
        except InterpreterNotFound:
            continue
        out = subprocess.run([python, "-c", code, str(db)], capture_output=True, text=True,
                             check=True).stdout
        assert json.loads(out) == own, version
        checked.append(version)
    assert checked
