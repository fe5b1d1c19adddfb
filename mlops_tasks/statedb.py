"""doit's dependency DB, made durable: the sqlite3 backend with one commit per finished
task (a killed run keeps what finished), a busy timeout (two processes on one workspace
queue instead of failing with "database is locked"), and a corrupted file moved aside
instead of stopping every run."""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from doit.dependency import DatabaseException, SqliteDB

BUSY_TIMEOUT_S = 120
COMMIT_AFTER = frozenset({"deps:", "ignore:"})


class DurableSqliteDB(SqliteDB):
    def __init__(self, name: str, codec: Any, *, module_name: str | None = None):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        problem = self._open(name, codec, module_name)
        if problem:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            aside = f"{name}.corrupt-{stamp}"
            for suffix in ("", "-wal", "-shm"):  # closed first: Windows cannot move open files
                if Path(name + suffix).exists():
                    Path(name + suffix).replace(aside + suffix)
            sys.stderr.write(f"mlops-tasks: the dependency DB {name} is unreadable ({problem}); "
                             f"moved it to {aside} and starting a new one: every task is "
                             "checked again (venvs are reused when their markers match)\n")
            super().__init__(name, codec, module_name=module_name)

    def _open(self, name: str, codec: Any, module_name: str | None) -> str:
        """Open the DB; return why it is unreadable ('' when it is fine), connection closed."""
        try:
            super().__init__(name, codec, module_name=module_name)
            self._conn.execute("select count(*) from doit").fetchone()
            return ""
        except (DatabaseException, sqlite3.DatabaseError) as err:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            return str(err).splitlines()[0]

    def _sqlite3(self, name: str) -> Any:
        conn = super()._sqlite3(name)
        conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        conn.execute("pragma journal_mode = wal")  # readers never wait for a writer
        conn.execute("pragma synchronous = normal")  # a commit survives a killed process
        return conn

    def set(self, task_id: str, dependency: str, value: Any) -> None:
        super().set(task_id, dependency, value)
        if dependency in COMMIT_AFTER:  # the last key doit saves for a finished task
            self._write(task_id)

    def remove(self, task_id: str) -> None:
        super().remove(task_id)
        self._conn.commit()

    def _write(self, task_id: str) -> None:
        self._conn.execute("insert or replace into doit values (?,?)",
                           (task_id, self.codec.encode(self._cache[task_id])))
        self._conn.commit()
        self._dirty.discard(task_id)
