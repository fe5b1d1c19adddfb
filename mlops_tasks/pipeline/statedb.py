"""doit's dependency DB, made durable: the sqlite3 backend with one commit per finished
task (a killed run keeps what finished), a busy timeout (two processes on one workspace
queue instead of failing with "database is locked"), and a corrupted file moved aside
instead of stopping every run. Only a corrupted file: one that failed for lack of space or
an I/O error is left where it is, and the run stops with what happened and the fix (doit
shows an InvalidTask without a traceback). The file is created on the first write, so
read-only commands (`doit list`) in a fresh clone create nothing."""

from __future__ import annotations

import errno
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from doit.dependency import DatabaseException, SqliteDB
from doit.exceptions import InvalidTask

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError, NoSpaceLeft, StateDBError

BUSY_TIMEOUT_S = 120
COMMIT_AFTER = frozenset({"deps:", "ignore:"})
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 11, 13, 26
FULL_BELOW = 1 << 20  # a disk with less free space cannot hold a commit or a -shm file


def kind_of(err: BaseException) -> str:
    """'corrupt', 'full' or 'other': why the DB failed. Only a corrupt file may be moved
    aside; a full disk or an I/O error says nothing about the file's content."""
    while isinstance(err, DatabaseException) and err.__context__ is not None:
        err = err.__context__  # doit wraps the sqlite3 error it got
    if isinstance(err, OSError):
        return "full" if err.errno == errno.ENOSPC else "other"
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        primary = code & 0xFF  # extended codes carry the primary one in their low byte
        return {SQLITE_CORRUPT: "corrupt", SQLITE_NOTADB: "corrupt",
                SQLITE_FULL: "full"}.get(primary, "other")
    if "database or disk is full" in str(err):
        return "full"
    # sqlite3 raises the base DatabaseError only for SQLITE_CORRUPT and SQLITE_NOTADB
    return "corrupt" if type(err) is sqlite3.DatabaseError else "other"


def free_bytes(path: str) -> int:
    """Free space on the file system holding `path` (a large number when unknown)."""
    folder = Path(path).parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return FULL_BELOW


def first_line(err: BaseException) -> str:
    while isinstance(err, DatabaseException) and err.__context__ is not None:
        err = err.__context__
    return (str(err) or type(err).__name__).splitlines()[0]


class DurableSqliteDB(SqliteDB):
    def __init__(self, name: str, codec: Any, *, module_name: str | None = None):
        self.name = name
        self.codec = codec
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._before: dict[str, str] = {}  # a saved task's data as it was, encoded
        self._rows: dict[str, str] | None = None  # every task's saved data, undecoded
        self._connection: sqlite3.Connection | None = None
        self._failed: str | None = None  # the message of a write that failed, once shown
        if Path(name).exists():
            self._open_existing()

    def _error(self, err: BaseException, what: str) -> MlopsError:
        """The user's message for a DB that failed without being corrupt. sqlite reports a
        -shm file it cannot grow as a "disk I/O error": on a full disk that is a full disk."""
        if kind_of(err) == "full" or free_bytes(self.name) < FULL_BELOW:
            return NoSpaceLeft(self.name, f"the dependency DB {what}; nothing was moved "
                               "aside or lost (tasks that finished are saved)")
        return StateDBError(self.name, what, first_line(err))

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """Stop the run with a message (no traceback) when a write fails; the transaction
        is rolled back, so the file keeps every earlier commit."""
        try:
            yield
        except (DatabaseException, sqlite3.Error, OSError) as err:
            if self._connection is not None:
                with suppress(sqlite3.Error):
                    self._connection.rollback()
            self._failed = str(self._error(err, what))
            raise InvalidTask(self._failed) from None

    def _open_existing(self) -> None:
        problem = self._try_open()
        if problem is not None and kind_of(problem) != "corrupt":
            raise InvalidTask(str(self._error(problem, "could not be opened"))) from None
        if problem is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = f"{self.name}.corrupt-{stamp}"
            for suffix in ("", "-wal", "-shm"):  # closed first: Windows cannot move open files
                if Path(self.name + suffix).exists():
                    Path(self.name + suffix).replace(aside + suffix)
            console.notice(f"the dependency DB {self.name} is unreadable "
                           f"({first_line(problem)}); moved it "
                           f"to {aside} and starting a new one: every task is checked again "
                           "(venvs are reused when their markers match)")

    def _try_open(self) -> Exception | None:
        """Open the DB; return why it cannot be read (None when it is fine; on an error the
        connection is closed)."""
        try:
            self._connection = self._sqlite3(self.name)
            self._connection.execute("select count(*) from doit").fetchone()
            return None
        except (DatabaseException, sqlite3.DatabaseError) as err:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return err

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection, made (with its file and folder) on first use."""
        if self._connection is None:
            with self._writing("could not be created"):
                Path(self.name).parent.mkdir(parents=True, exist_ok=True)
                self._connection = self._sqlite3(self.name)
        return self._connection

    def _absent(self) -> bool:
        return self._connection is None and not Path(self.name).exists()

    def _sqlite3(self, name: str) -> Any:
        conn = super()._sqlite3(name)
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        conn.execute("pragma journal_mode = wal")  # readers never wait for a writer
        conn.execute("pragma synchronous = normal")  # a commit survives a killed process
        return conn

    def _get_task_data(self, task_id: str) -> Any:
        """A task's saved data. The whole table is read at the first request, in one query
        (a no-op asks for every task: one query instead of one per task), and each task's
        row decoded when it is asked for."""
        if self._absent():
            return {}
        if self._rows is None:
            rows = self._conn.execute("select task_id, task_data || '' as raw from doit")
            self._rows = {row["task_id"]: row["raw"] for row in rows}
        raw = self._rows.pop(task_id, None)
        return self.codec.decode(raw) if raw else {}

    def in_(self, task_id: str) -> bool:
        if task_id in self._cache:
            return True
        return False if self._absent() else bool(super().in_(task_id))

    def set(self, task_id: str, dependency: str, value: Any) -> None:
        if task_id not in self._before:
            self._before[task_id] = self.codec.encode(self.get_data(task_id))
        super().set(task_id, dependency, value)
        if dependency in COMMIT_AFTER:  # the last key doit saves for a finished task
            self._write(task_id)

    def remove(self, task_id: str) -> None:
        if self._absent():
            self._cache.pop(task_id, None)
            self._dirty.discard(task_id)
            return
        if self._rows is not None:
            self._rows.pop(task_id, None)
        with self._writing(f"could not forget {task_id}"):
            super().remove(task_id)
            self._conn.commit()

    def remove_all(self) -> None:
        if self._absent():
            self._cache, self._dirty = {}, set()
            return
        self._rows = {}
        with self._writing("could not forget every task"):
            super().remove_all()

    def dump(self) -> None:
        if self._connection is None and not self._dirty:
            return  # nothing was read from or written to a file: leave none behind
        shown = self._failed
        try:
            with self._writing("could not save the tasks of this run"):
                super().dump()
        except InvalidTask:
            if self._connection is not None:
                self._connection.close()
            if shown is None:
                raise  # the first failure: say it (after one, doit is showing that one)
        finally:
            self._connection = None

    def get_data(self, task_id: str) -> Any:
        """Everything saved for a task (read once, then kept)."""
        if task_id not in self._cache:
            self._cache[task_id] = self._get_task_data(task_id)
        return self._cache[task_id]

    def _write(self, task_id: str) -> None:
        """One commit per finished task; none for a task saved as it already was (a no-op
        still saves every group task)."""
        encoded = self.codec.encode(self._cache[task_id])
        if encoded != self._before.pop(task_id, None):
            with self._writing(f"could not save that {task_id} finished"):
                self._conn.execute("insert or replace into doit values (?,?)",
                                   (task_id, encoded))
                self._conn.commit()
        self._dirty.discard(task_id)
