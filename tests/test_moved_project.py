"""A project moved or copied with its state folder logs under its own folder: the embedded
store's artifact locations follow it, and the old folder is never written again."""

from __future__ import annotations

import shutil

import pytest

from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking.client import moved_roots


def test_moved_roots():
    tail = "/.mlops/mlartifacts"
    assert moved_roots("file:///a/p1/.mlops/mlartifacts", "file:///b/p2/.mlops/mlartifacts",
                       tail) == ("file:///a/p1", "file:///b/p2")
    assert moved_roots("file:///a/.mlops/mlartifacts", "file:///a/.mlops/mlartifacts",
                       tail) is None
    assert moved_roots("file:///elsewhere/art", "file:///b/.mlops/mlartifacts", tail) is None


@pytest.fixture(autouse=True)
def quiet_client(monkeypatch):
    """The adapter's client sets this once per process; the test keeps it to itself."""
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def store(root):
    state = root / ".mlops"
    state.mkdir(parents=True, exist_ok=True)
    db = state / "mlflow.db"
    return f"sqlite:///{db.as_posix()}", db, state / "mlartifacts", state / "store.lock"


def log_file(uri, exp_id, folder, text):
    run_id = tracking.start_run(uri, exp_id, "s@x", {})
    note = folder / "note.txt"
    note.write_text(text)
    tracking.log_run(uri, run_id, params={}, metrics={}, tags={}, artifacts=[(note, None)])
    return run_id


def test_a_moved_then_copied_project_logs_under_its_own_folder(tmp_path, capsys):
    uri, db, artifacts, lock = store(tmp_path / "p1")
    exp = tracking.ensure_experiment(uri, "e", artifacts, lock, db)
    first = log_file(uri, exp, tmp_path, "one")
    shutil.move(tmp_path / "p1", tmp_path / "p2")
    uri2, db2, artifacts2, lock2 = store(tmp_path / "p2")
    assert tracking.ensure_experiment(uri2, "e", artifacts2, lock2, db2) == exp
    assert "this project was moved or copied from" in capsys.readouterr().err
    second = log_file(uri2, exp, tmp_path, "two")
    assert not (tmp_path / "p1").exists()  # the old folder is not made again
    assert (artifacts2 / second / "artifacts" / "note.txt").read_text() == "two"
    client = tracking._client(uri2)
    assert client.get_run(first).info.artifact_uri.startswith(artifacts2.as_uri())
    assert client.get_experiment(exp).artifact_location == artifacts2.as_uri()
    shutil.copytree(tmp_path / "p2", tmp_path / "p3")  # a copy writes into itself only
    uri3, db3, artifacts3, lock3 = store(tmp_path / "p3")
    tracking.ensure_experiment(uri3, "e", artifacts3, lock3, db3)
    third = log_file(uri3, exp, tmp_path, "three")
    assert (artifacts3 / third / "artifacts" / "note.txt").exists()
    assert not (artifacts2 / third).exists()


def test_a_store_of_another_folder_is_named_not_rewritten(tmp_path, capsys, monkeypatch):
    uri, db, artifacts, lock = store(tmp_path / "p1")
    tracking.ensure_experiment(uri, "shared", artifacts, lock, db)
    monkeypatch.setattr(tracking, "_experiments", {})  # another doit process
    other = tmp_path / "p9" / "art"
    tracking.ensure_experiment(uri, "shared", other, lock, None)
    said = capsys.readouterr()
    assert "the experiment keeps its artifacts in" in said.out + said.err
    assert tracking._client(uri).get_experiment_by_name("shared").artifact_location == \
        artifacts.as_uri()
