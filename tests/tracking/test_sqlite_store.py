"""The embedded store written with sqlite3 alone reads back through MLflow exactly as runs
MLflow writes itself, and is used only at a schema revision it was checked against."""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import sqlite_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """A store made by MLflow, with one experiment whose artifacts are local files."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{(root / 'mlflow.db').as_posix()}"
    exp_id = MlflowClient(uri).create_experiment("e", artifact_location=(root / "a").as_uri())
    return uri, str(exp_id), root


def test_the_pinned_mlflow_makes_stores_at_a_known_revision(store):
    uri, _, root = store
    with closing(sqlite3.connect(root / "mlflow.db")) as db:
        (revision,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
    assert revision in sqlite_store.KNOWN_REVISIONS, (
        f"MLflow's store is at revision {revision}: check sqlite_store's SQL against its "
        "runs, tags, params, metrics, latest_metrics and experiments tables, then add it")
    assert sqlite_store.usable(uri) == root / "mlflow.db"


def _log(uri: str, exp_id: str, files: Path, here: bool) -> str:
    """One run logged the tool's way, through this module (here) or through MLflow."""
    sqlite_store.forget(uri)
    if not here:
        sqlite_store._checked[uri] = False  # as for a store at an unknown revision
    run_id = tracking.start_run(uri, exp_id, "s@abc", {"mlops.stage": "s", "k": "v"})
    tracking.log_run(uri, run_id, params={"n": 3, "d": {"a": 1}},
                     metrics={"acc": 0.5, "nan": math.nan, "inf": math.inf},
                     tags={"t": "1"}, artifacts=[(files / "f.txt", "outputs"),
                                                 (files / "folder", "outputs")],
                     final_tags={"mlops.cache_complete": "true"})
    sqlite_store.forget(uri)
    return run_id


def test_runs_written_here_read_back_as_mlflow_writes_them(store, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # else set for good

    uri, exp_id, _ = store
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "f.txt").write_text("f")
    (tmp_path / "folder" / "sub" / "g.txt").write_text("g")
    here, there = _log(uri, exp_id, tmp_path, True), _log(uri, exp_id, tmp_path, False)
    client = MlflowClient(uri)
    a, b = client.get_run(here), client.get_run(there)
    for run in (a, b):
        assert run.info.status == "FINISHED" and run.info.end_time >= run.info.start_time
        assert run.info.run_name == "s@abc" and run.info.lifecycle_stage == "active"
        assert run.info.artifact_uri.endswith(f"/{run.info.run_id}/artifacts")
    assert a.data.params == b.data.params == {"n": "3", "d": '{"a": 1}'}
    assert a.data.tags == b.data.tags
    assert a.data.metrics["acc"] == 0.5 and math.isnan(a.data.metrics["nan"])
    assert a.data.metrics.keys() == b.data.metrics.keys()
    assert a.data.metrics["inf"] == b.data.metrics["inf"]
    assert a.info.user_id == b.info.user_id

    def listing(run_id: str, path: str = "") -> list[str]:
        out = []
        for item in client.list_artifacts(run_id, path):
            out += listing(run_id, item.path) if item.is_dir else [item.path]
        return sorted(out)

    assert listing(here) == listing(there) == ["outputs/f.txt", "outputs/folder/sub/g.txt"]
    found = client.search_runs([exp_id], "tags.k = 'v' and attributes.status = 'FINISHED'")
    assert {r.info.run_id for r in found} >= {here, there}


def test_finding_and_fetching_runs_here(store, tmp_path):
    uri, exp_id, _ = store
    (tmp_path / "folder").mkdir()
    (tmp_path / "f.txt").write_text("f")
    (tmp_path / "folder" / "g.txt").write_text("g")
    first, second = _log(uri, exp_id, tmp_path, True), _log(uri, exp_id, tmp_path, True)
    running = tracking.start_run(uri, exp_id, "s@abc", {"k": "v"})  # not FINISHED: not found
    db = sqlite_store.usable(uri)
    assert db is not None
    found = sqlite_store.tagged_runs(db, exp_id, {"k": "v", "mlops.stage": "s"}, 100)
    ids = [r["run_id"] for r in found]
    assert running not in ids and ids.index(first) < ids.index(second)
    assert found[ids.index(first)]["tags"]["mlops.cache_complete"] == "true"
    assert sqlite_store.tagged_runs(db, exp_id, {"k": "other"}, 100) == []
    assert tracking.find_tagged_runs(uri, exp_id, {"k": "v"}, 1)[0]["run_id"] == ids[0]
    got = tracking.download(uri, first, "outputs/folder", tmp_path / "dl")
    assert (got / "g.txt").read_text() == "g"
    assert tracking.download(uri, first, "outputs/f.txt", tmp_path / "dl2").read_text() == "f"
    assert tracking.run_metrics(uri, first)["acc"] == 0.5
    with pytest.raises(Exception, match="no artifact"):
        tracking.download(uri, first, "outputs/none.txt", tmp_path / "dl3")


def test_other_stores_and_revisions_go_through_mlflow(store, tmp_path):
    uri, _, root = store
    assert sqlite_store.usable("http://127.0.0.1:5000") is None
    assert sqlite_store.usable(f"sqlite:///{(tmp_path / 'none.db').as_posix()}") is None
    copy = tmp_path / "copy.db"
    with closing(sqlite3.connect(root / "mlflow.db")) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
        dst.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        dst.commit()
    assert sqlite_store.usable(f"sqlite:///{copy.as_posix()}") is None


@pytest.mark.parametrize(("uri", "path"), [
    ("file:///srv/p/.mlops/mlartifacts/1/artifacts", "/srv/p/.mlops/mlartifacts/1/artifacts"),
    ("file:///srv/a%20b/x", "/srv/a b/x"),
    ("mlflow-artifacts:/1/x/artifacts", None),
    ("s3://bucket/x", None),
])
def test_local_path(uri, path):
    found = sqlite_store.local_path(uri)
    assert (found.as_posix() if found else None) == path


def test_metric_values_as_mlflow_stores_them():
    assert sqlite_store.metric_value(0.25) == (0.25, 0)
    assert sqlite_store.metric_value(math.nan) == (0.0, 1)
    assert sqlite_store.metric_value(-math.inf) == (-sqlite_store.MAX_FLOAT, 0)
