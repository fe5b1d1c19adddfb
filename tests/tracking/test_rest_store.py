"""A tracking server's runs written through its REST API alone read back through MLflow as
runs MLflow writes itself; files go up and come back; anything the module cannot do itself
goes through MLflow."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import rest_store


@pytest.fixture(scope="module")
def server(mlflow_server) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    return mlflow_server.url, str(MlflowClient(mlflow_server.url).create_experiment("rest"))


def _log(uri: str, exp_id: str, files: Path, here: bool) -> str:
    """One run logged the tool's way, through this module (here) or through MLflow."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rest_store, "usable", lambda _uri, environ=None: here)
        run_id = tracking.start_run(uri, exp_id, "s@abc", {"mlops.stage": "s", "k": "v"})
        tracking.log_run(uri, run_id, params={"n": 3, **{f"p{i}": i for i in range(150)}},
                         metrics={"acc": 0.5, "nan": math.nan},
                         tags={"t": "1", **{f"t{i}": str(i) for i in range(120)}},
                         artifacts=[(files / "f.json", "outputs"),
                                    (files / "folder", "outputs")],
                         final_tags={"mlops.cache_complete": "true"})
    return run_id


def test_runs_written_here_read_back_as_mlflow_writes_them(server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri, exp_id = server
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # else set for good
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
                        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                        ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")):
        monkeypatch.setenv(name, value)
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "f.json").write_text('{"a": 1}')
    (tmp_path / "folder" / "sub" / "g.txt").write_text("g")
    here, there = _log(uri, exp_id, tmp_path, True), _log(uri, exp_id, tmp_path, False)
    client = MlflowClient(uri)
    a, b = client.get_run(here), client.get_run(there)
    for run in (a, b):
        assert run.info.status == "FINISHED" and run.info.run_name == "s@abc"
    assert a.data.params == b.data.params and len(a.data.params) == 151
    assert a.data.tags.keys() == b.data.tags.keys()
    assert a.data.metrics["acc"] == 0.5 and math.isnan(a.data.metrics["nan"])

    def listing(run_id: str, path: str = "") -> list[str]:
        out = []
        for item in client.list_artifacts(run_id, path):
            out += listing(run_id, item.path) if item.is_dir else [item.path]
        return sorted(out)

    assert listing(here) == listing(there) == ["outputs/f.json", "outputs/folder/sub/g.txt"]

    assert rest_store.usable(uri)
    found = tracking.find_tagged_runs(uri, exp_id, {"k": "v", "mlops.stage": "s"}, 10)
    assert [r["run_id"] for r in found] == [here, there]  # oldest first
    assert found[0]["tags"]["mlops.cache_complete"] == "true"
    got = tracking.download(uri, here, "outputs/folder", tmp_path / "dl")
    assert (got / "sub" / "g.txt").read_text() == "g"
    assert tracking.download(uri, here, "outputs/f.json", tmp_path / "dl2").read_text() == \
        '{"a": 1}'
    assert tracking.run_metrics(uri, here)["acc"] == 0.5
    with pytest.raises(Exception, match="status code 404"):
        tracking.download(uri, here, "outputs/none.txt", tmp_path / "dl3")


def test_what_only_mlflow_can_do_goes_through_it():
    assert rest_store.usable("http://127.0.0.1:5000", {})
    assert rest_store.usable("https://u:p@host/mlflow", {"MLFLOW_TRACKING_TOKEN": "t"})
    assert not rest_store.usable("databricks", {})
    assert not rest_store.usable("sqlite:///x.db", {})
    assert not rest_store.usable("https://host", {"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    assert not rest_store.usable("https://host", {"MLFLOW_TRACKING_SERVER_CERT_PATH": "/c"})
    assert rest_store.artifact_path("mlflow-artifacts:/1/r/artifacts") == "1/r/artifacts"
    assert rest_store.artifact_path("mlflow-artifacts://other:5000/1/r/artifacts") is None
    assert rest_store.artifact_path("s3://bucket/1/r/artifacts") is None
    assert rest_store.artifact_path("file:///srv/a") is None
