"""A full disk and outputs on another file system lose nothing: the dep DB is moved aside
only when it is really corrupt, a full disk is named with the fix, and outputs move across
devices. Real file systems: a small tmpfs mounted by the test (skipped where mounting is not
permitted)."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from doit.dependency import JSONCodec
from doit.exceptions import InvalidTask

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.pipeline.statedb import DurableSqliteDB
from mlops_tasks.project.spec import Stage
from mlops_tasks.run.outputs import OutputSet


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `folder` for the block, then unmounted."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs Linux and root")
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """Fill the file system holding `folder` to the last byte; the filler file is returned
    (unlink it to free the space)."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err
    return filler


def asides(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".corrupt-" in p.name)


# -- the dep DB -------------------------------------------------------------------------------


def test_only_corruption_counts_as_corrupt(tmp_path):
    from mlops_tasks.pipeline.statedb import kind_of

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(sqlite3.DatabaseError) as corrupt:
        sqlite3.connect(bad).execute("select * from doit")
    assert kind_of(corrupt.value) == "corrupt"
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert kind_of(full) == "full"
    io = sqlite3.OperationalError("disk I/O error")
    io.sqlite_errorcode = 10  # type: ignore[attr-defined]
    assert kind_of(io) == "other"
    assert kind_of(OSError(errno.ENOSPC, "No space left on device")) == "full"


def test_dep_db_on_a_full_disk_is_kept_and_continues(tmp_path):
    with tmpfs(tmp_path / "disk", "2m") as disk:
        name = str(disk / ".mlops" / "doit.db")
        db = DurableSqliteDB(name, JSONCodec())
        db.set("execute:a", "deps:", ["a"])
        db.dump()
        # opening on the full disk (sqlite says "disk I/O error" when its -shm cannot grow)
        filler = fill(disk)
        with pytest.raises(InvalidTask, match=f"no space left on {disk} "):
            DurableSqliteDB(name, JSONCodec())
        assert asides(disk / ".mlops") == []
        filler.unlink()
        # a task's save on the full disk: a clear message, what finished stays
        db = DurableSqliteDB(name, JSONCodec())
        filler = fill(disk)
        with pytest.raises(InvalidTask, match="no space left on") as full:
            db.set("execute:b", "deps:", ["b" * 100_000])
        assert f"no space left on {disk} " in str(full.value), full.value
        assert "run doit again" in str(full.value)
        db.dump()  # after the reported failure, closing adds no second error
        assert asides(disk / ".mlops") == []
        filler.unlink()
        db = DurableSqliteDB(name, JSONCodec())
        assert db.get("execute:a", "deps:") == ["a"]
        assert db.get("execute:b", "deps:") is None
        db.set("execute:b", "deps:", ["b"])
        db.dump()
        assert DurableSqliteDB(name, JSONCodec()).get("execute:b", "deps:") == ["b"]
        assert asides(disk / ".mlops") == []


def test_a_really_corrupt_dep_db_is_still_moved_aside(tmp_path):
    name = tmp_path / "doit.db"
    name.write_bytes(b"garbage" * 1000)
    db = DurableSqliteDB(str(name), JSONCodec())
    assert len(asides(tmp_path)) == 1
    db.set("execute:a", "deps:", ["a"])
    db.dump()
    assert DurableSqliteDB(str(name), JSONCodec()).get("execute:a", "deps:") == ["a"]


# -- outputs on another file system -------------------------------------------------------------

STAGE = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k",
              outputs=("out/model", "out/a.csv"))


def test_outputs_on_another_device_move_aside_and_back(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    with tmpfs(tmp_path / "other", "8m") as other:
        (root / "out").symlink_to(other)  # the outputs live on the other device
        (other / "model").mkdir()
        (other / "model" / "w.bin").write_text("good weights")
        (other / "a.csv").write_text("good a")
        for outcome in ("commit", "rollback"):
            outputs = OutputSet(root, STAGE)
            outputs.begin()
            assert not (other / "model").exists() and not (other / "a.csv").exists()
            (other / "model").mkdir()
            (other / "model" / "w.bin").write_text("half")
            (other / "a.csv").write_text(f"new a after {outcome}")
            getattr(outputs, outcome)()
        assert (other / "model" / "w.bin").read_text() == "half"  # from the committed run
        assert (other / "a.csv").read_text() == "new a after commit"
        assert not (root / ".mlops" / "previous" / "s").exists()
        assert sorted(p.name for p in other.iterdir()) == ["a.csv", "model"]


@pytest.mark.parametrize(("code", "said", "not_said"), [
    (errno.EXDEV, "check the paths", "holding them open"),
    (errno.ENOSPC, "no space left on", "holding them open"),
    (errno.EBUSY, "holding them open", "no space"),
])
def test_the_fix_for_an_output_not_moved_names_the_real_cause(code, said, not_said):
    from mlops_tasks.run.outputs import why_not_moved

    text = why_not_moved(OSError(code, os.strerror(code), "out/model"), Path("x"))
    assert said in text and not_said not in text


def test_outputs_set_aside_on_a_full_disk_say_so_and_stay(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    with tmpfs(tmp_path / "state", "1m") as state:
        (root / ".mlops").symlink_to(state)
        (root / "out" / "model").mkdir(parents=True)
        (root / "out" / "model" / "w.bin").write_bytes(b"w" * 200_000)
        (root / "out" / "a.csv").write_text("good a")
        fill(state)
        outputs = OutputSet(root, STAGE)
        with pytest.raises(MlopsError, match=f"no space left on {state}") as err:
            outputs.begin()
        assert "holding them open" not in str(err.value)
        assert (root / "out" / "model" / "w.bin").read_bytes() == b"w" * 200_000
        assert (root / "out" / "a.csv").read_text() == "good a"


def test_outputs_put_back_onto_a_full_device_are_kept_for_the_next_run(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    with tmpfs(tmp_path / "other", "2m") as other:
        (root / "out").symlink_to(other)
        (other / "model").mkdir()
        (other / "model" / "w.bin").write_bytes(b"w" * 500_000)
        (other / "a.csv").write_text("good a")
        outputs = OutputSet(root, STAGE)
        outputs.begin()
        filler = fill(other)  # the failed run filled the disk
        with pytest.raises(MlopsError, match=f"no space left on {other}"):
            outputs.rollback()
        filler.unlink()
        OutputSet(root, STAGE).begin()  # the next run puts them back first
        OutputSet(root, STAGE).rollback()
        assert (other / "model" / "w.bin").read_bytes() == b"w" * 500_000
        assert (other / "a.csv").read_text() == "good a"
        assert sorted(p.name for p in other.iterdir()) == ["a.csv", "model"]


# -- whole runs ---------------------------------------------------------------------------------


def set_repeat(root: Path, repeat: object) -> None:
    spec = root / "env_specs" / "make.yaml"
    lines = [f"  repeat: {repeat}" if line.startswith("  repeat:") else line
             for line in spec.read_text(encoding="utf-8").splitlines()]
    spec.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.integration
def test_a_stage_whose_outputs_are_on_another_device_reruns(tmp_path, wheelhouse):
    from .helpers import forked_doit, make_project

    root = make_project(tmp_path / "project", wheelhouse, with_use=False)
    with tmpfs(tmp_path / "data", "16m") as data:
        (root / "out").symlink_to(data)
        forked_doit(root)
        assert (data / "greeting.txt").read_text() == "hi hi"
        set_repeat(root, 3)
        forked_doit(root)  # the first run's output moves aside across devices
        assert (data / "greeting.txt").read_text() == "hi hi hi"
        set_repeat(root, '"x"')  # the notebook fails before writing
        failed = forked_doit(root, check=False)
        assert failed.returncode != 0
        assert "cross-device" not in failed.stdout + failed.stderr
        assert "holding them open" not in failed.stdout + failed.stderr
        assert (data / "greeting.txt").read_text() == "hi hi hi"
        assert sorted(p.name for p in data.iterdir()) == ["greeting.txt"]
        assert not (root / ".mlops" / "previous" / "make").exists()


@pytest.mark.integration
def test_a_run_on_a_full_disk_says_so_and_the_next_continues(tmp_path, wheelhouse):
    from .helpers import forked_doit, make_project, ran

    root = make_project(tmp_path / "project", wheelhouse, with_use=False)
    with tmpfs(root / ".mlops", "64m") as state:
        forked_doit(root, "venv:make", "kernel:make")
        filler = fill(state)
        full = forked_doit(root, check=False)
        said = full.stdout + full.stderr
        assert full.returncode != 0
        assert f"no space left on {state}" in said, said[-3000:]
        assert "Traceback" not in said, said[-3000:]
        assert asides(state) == []
        assert (state / "doit.db").exists()
        filler.unlink()
        again = forked_doit(root)
        assert "execute:make" in ran(again.stdout)
        assert not {"venv:make", "kernel:make"} & ran(again.stdout), again.stdout
        assert (root / "out" / "greeting.txt").read_text() == "hi hi"
        assert asides(state) == []


def test_a_task_writing_on_a_full_disk_fails_naming_the_folder(tmp_path):
    from doit.exceptions import TaskFailed

    from mlops_tasks.pipeline.actions import user_errors

    @user_errors
    def write_record(config: object, stage: Stage) -> None:
        (Path(".mlops") / "record.json").write_bytes(b"r" * 100_000)

    root = tmp_path / "project"
    root.mkdir()
    with tmpfs(root / ".mlops", "1m") as state:
        fill(state)
        cwd = Path.cwd()
        os.chdir(root)  # doit runs tasks in the project
        try:
            failed = write_record(None, STAGE)
        finally:
            os.chdir(cwd)
        assert isinstance(failed, TaskFailed), failed
        assert f"no space left on {state} " in str(failed), str(failed)
        assert "run doit again" in str(failed)
