"""The embedded sqlite store's runs read and written with sqlite3 alone: what the tool itself
does to a run (create it, log its params, metrics, tags and files, close it, find runs by tag,
fetch their files), without importing MLflow (seconds per doit process).

Only for a store whose schema revision is one this module was checked against
(KNOWN_REVISIONS, the head of the MLflow this package pins; a test holds them equal) and whose
artifacts are local files; anything else (a new store to create, another revision, a server)
goes through MLflow in client.py. Rows are written the way MLflow's SqlAlchemyStore writes
them, so MLflow, its UI and a notebook's own client read them as their own."""

from __future__ import annotations

import math
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

# alembic revisions whose runs/tags/params/metrics/latest_metrics/experiments tables match
# what this module writes (MLflow 3.17's head)
KNOWN_REVISIONS = frozenset({"dc11669786a5"})
TAG_INDEX = "mlops_tags_key_value"  # finds runs by tag value (the stage cache's lookups)
RUN_NAME = "mlflow.runName"
MAX_FLOAT = 1.7976931348623157e308
_checked: dict[str, bool] = {}


def db_path(uri: str) -> Path | None:
    """The file of a `sqlite:///` URI; None for any other store. Pure."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri[len("sqlite:///"):]))


def local_path(artifact_uri: str) -> Path | None:
    """The folder a `file:` artifact URI names; None for any other scheme. Pure."""
    from urllib.request import url2pathname  # on use: it imports http.client

    parsed = urlparse(artifact_uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        return None
    return Path(url2pathname(unquote(parsed.path)))


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=60, isolation_level=None)


@contextmanager
def _writing(path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (BEGIN IMMEDIATE) so two writers queue."""
    with closing(_connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def usable(uri: str) -> Path | None:
    """The store's file when this module may read and write it (a sqlite file that exists,
    at a known schema revision); None when MLflow must. Checked once per process."""
    path = db_path(uri)
    if path is None or not path.is_file():
        return None
    if uri not in _checked:
        try:
            with closing(_connect(path)) as db:
                row = db.execute("SELECT version_num FROM alembic_version").fetchone()
            _checked[uri] = row is not None and row[0] in KNOWN_REVISIONS
        except sqlite3.Error:
            _checked[uri] = False
    return path if _checked[uri] else None


def forget(uri: str) -> None:
    """Check the store's revision again on next use (after MLflow created or migrated it)."""
    _checked.pop(uri, None)


def index_tags(path: Path) -> None:
    """An index on tags (key, value): finding runs by tag value stays flat as runs pile up
    (MLflow's own indexes are on (key, run) and run)."""
    with closing(_connect(path)) as db:
        db.execute(f"CREATE INDEX IF NOT EXISTS {TAG_INDEX} ON tags (key, value)")


def experiment(path: Path, name: str) -> tuple[str, str] | None:
    """The active experiment's id and artifact location; None when there is none."""
    with closing(_connect(path)) as db:
        row = db.execute("SELECT experiment_id, artifact_location, lifecycle_stage FROM "
                         "experiments WHERE name = ? AND workspace = 'default'",
                         (name,)).fetchone()
    if row is None or row[2] != "active":
        return None
    return str(row[0]), str(row[1])


def now_ms() -> int:
    return int(time.time() * 1000)


def create_run(path: Path, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
    """A RUNNING run of the experiment, as MlflowClient.create_run makes one."""
    run_id = uuid.uuid4().hex
    tags = {**tags, RUN_NAME: run_name}
    with _writing(path) as db:
        row = db.execute("SELECT artifact_location, lifecycle_stage FROM experiments "
                         "WHERE experiment_id = ?", (int(experiment_id),)).fetchone()
        if row is None or row[1] != "active":
            raise LookupError(f"experiment {experiment_id} is not active in {path}")
        db.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, deleted_time, source_version, "
            "lifecycle_stage, artifact_uri, experiment_id) VALUES "
            "(?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, NULL, '', 'active', ?, ?)",
            (run_id, run_name, tags.get("mlflow.user", "unknown"), now_ms(),
             f"{str(row[0]).rstrip('/')}/{run_id}/artifacts", int(experiment_id)))
        db.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(k, str(v), run_id) for k, v in tags.items()])
    return run_id


@dataclass(frozen=True)
class RunData:
    artifact_uri: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def run(path: Path, run_id: str) -> RunData:
    with closing(_connect(path)) as db:
        row = db.execute("SELECT artifact_uri, status FROM runs WHERE run_uuid = ?",
                         (run_id,)).fetchone()
        if row is None:
            raise LookupError(f"run {run_id} is not in {path}")
        params = dict(db.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)))
        tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)))
        metrics = {k: (math.nan if nan else float(v)) for k, v, nan in db.execute(
            "SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,))}
    return RunData(str(row[0]), str(row[1]), params, metrics, tags)


def metric_value(value: float) -> tuple[float, int]:
    """(the value stored, is_nan) as MLflow stores a metric: NaN as 0 flagged, infinities
    as the largest floats. Pure."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (MAX_FLOAT if value > 0 else -MAX_FLOAT), 0
    return value, 0


def log_batch(path: Path, run_id: str, metrics: Mapping[str, float],
              params: Mapping[str, str], tags: Mapping[str, str]) -> None:
    """Params that are new, metrics at step 0 (each run's latest value kept as MLflow keeps
    it: the greatest (step, timestamp, value)), tags set or replaced; one transaction."""
    stamp = now_ms()
    with _writing(path) as db:
        db.executemany("INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(k, v, run_id) for k, v in params.items()])
        for key, raw in metrics.items():
            value, nan = metric_value(float(raw))
            db.execute("INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, "
                       "is_nan) VALUES (?, ?, ?, ?, 0, ?)", (key, value, stamp, run_id, nan))
            latest = db.execute("SELECT step, timestamp, value FROM latest_metrics WHERE "
                                "key = ? AND run_uuid = ?", (key, run_id)).fetchone()
            if latest is None or (0, stamp, value) > tuple(latest):
                db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, "
                           "step, is_nan, run_uuid) VALUES (?, ?, ?, 0, ?, ?)",
                           (key, value, stamp, nan, run_id))
        _set_tags(db, run_id, tags)


def _set_tags(db: sqlite3.Connection, run_id: str, tags: Mapping[str, str]) -> None:
    db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                   [(k, str(v), run_id) for k, v in tags.items()])
    if RUN_NAME in tags:
        db.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (tags[RUN_NAME], run_id))


def set_tags(path: Path, run_id: str, tags: Mapping[str, str]) -> None:
    with _writing(path) as db:
        _set_tags(db, run_id, tags)


def terminate(path: Path, run_id: str, status: str) -> None:
    with _writing(path) as db:
        db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                   (status, now_ms(), run_id))


def log_artifacts(artifact_uri: str, artifacts: Iterable[tuple[Path, str | None]]) -> None:
    """Files and folders copied under the run's artifact folder, as MLflow's local artifact
    repository copies them (a folder keeps its name)."""
    root = local_path(artifact_uri)
    if root is None:
        raise ValueError(f"not a local artifact location: {artifact_uri}")
    for source, dest in artifacts:
        folder = root / dest if dest else root
        if source.is_dir():
            shutil.copytree(source, folder / source.name, dirs_exist_ok=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / source.name)


def download(path: Path, run_id: str, artifact: str, dest: Path) -> Path:
    """One artifact (a file or a folder) of a run, copied into `dest`; the local path."""
    root = local_path(run(path, run_id).artifact_uri)
    if root is None:
        raise ValueError(f"run {run_id} keeps its artifacts elsewhere than in files")
    source = root / artifact
    target = dest / source.name
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        shutil.copy2(source, target)
    else:
        raise FileNotFoundError(f"run {run_id} has no artifact {artifact}")
    return target


def tagged_runs(path: Path, experiment_id: str, tags: Mapping[str, str], limit: int
                ) -> list[dict[str, Any]]:
    """Up to `limit` active FINISHED runs of the experiment carrying every tag of `tags`,
    oldest first: each run's id, start time (ms) and tags."""
    # driven from the first tag through the tags' (key, value) index: as fast with 10,000
    # runs in the experiment as with 10
    if not tags:
        raise ValueError("tagged_runs looks runs up by at least one tag")
    (first_key, first_value), *others = tags.items()
    where = " ".join("AND EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND "
                     "t.key = ? AND t.value = ?)" for _ in others)
    args: list[Any] = [first_key, first_value, int(experiment_id)]
    for key, value in others:
        args += [key, value]
    with closing(_connect(path)) as db:
        rows = db.execute(
            "SELECT r.run_uuid, r.start_time FROM tags t0 JOIN runs r ON r.run_uuid = "
            "t0.run_uuid WHERE t0.key = ? AND t0.value = ? AND r.experiment_id = ? AND "
            f"r.status = 'FINISHED' AND r.lifecycle_stage = 'active' {where} "
            "ORDER BY r.start_time ASC, r.run_uuid ASC LIMIT ?", (*args, limit)).fetchall()
        found = []
        for run_id, start in rows:
            run_tags = dict(db.execute("SELECT key, value FROM tags WHERE run_uuid = ?",
                                       (run_id,)))
            found.append({"run_id": run_id, "start": start, "tags": run_tags})
    return found
