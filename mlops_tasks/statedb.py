"""doit's dependency DB, made durable: the sqlite3 backend with one commit per finished
task (a killed run keeps what finished), a busy timeout (two processes on one workspace
queue instead of failing with "database is locked"), and a corrupted file moved aside
instead of stopping every run. The file is created on the first write, so read-only
commands (`doit list`) in a fresh clone create nothing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from doit.dependency import DatabaseException, SqliteDB

from . import console

BUSY_TIMEOUT_S = 120
COMMIT_AFTER = frozenset({"deps:", "ignore:"})


class DurableSqliteDB(SqliteDB):
    def __init__(self, name: str, codec: Any, *, module_name: str | None = None):
        self.name = name
        self.codec = codec
        self._cache: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._before: dict[str, str] = {}  # a saved task's data as it was, encoded
        self._rows: dict[str, str] | None = None  # every task's saved data, undecoded
        self._connection: sqlite3.Connection | None = None
        if Path(name).exists():
            self._open_existing()

    def _open_existing(self) -> None:
        problem = self._try_open()
        if problem:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = f"{self.name}.corrupt-{stamp}"
            for suffix in ("", "-wal", "-shm"):  # closed first: Windows cannot move open files
                if Path(self.name + suffix).exists():
                    Path(self.name + suffix).replace(aside + suffix)
            console.notice(f"the dependency DB {self.name} is unreadable ({problem}); moved it "
                           f"to {aside} and starting a new one: every task is checked again "
                           "(venvs are reused when their markers match)")

    def _try_open(self) -> str:
        """Open the DB; return why it is unreadable ('' when it is fine, connection closed)."""
        try:
            self._connection = self._sqlite3(self.name)
            self._connection.execute("select count(*) from doit").fetchone()
            return ""
        except (DatabaseException, sqlite3.DatabaseError) as err:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return str(err).splitlines()[0]

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection, made (with its file and folder) on first use."""
        if self._connection is None:
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
        super().remove(task_id)
        self._conn.commit()

    def remove_all(self) -> None:
        if self._absent():
            self._cache, self._dirty = {}, set()
            return
        self._rows = {}
        super().remove_all()

    def dump(self) -> None:
        if self._connection is None and not self._dirty:
            return  # nothing was read from or written to a file: leave none behind
        super().dump()
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
            self._conn.execute("insert or replace into doit values (?,?)", (task_id, encoded))
            self._conn.commit()
        self._dirty.discard(task_id)
