"""A pinned store, and no stage failed by a tracking-server blip: the experiment is pinned per
project and store, a store that cannot be reached lets the stage execute and publishes later,
a server restarting during log:S is waited for, a replaced experiment is refused."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from mlops_tasks.base.errors import TrackingError
from mlops_tasks.run.lifecycle import is_local_run, local_run_id
from mlops_tasks.tracking import client as tracking

from .helpers import clean_env, closed_port, doit, make_project, ran, set_config

# -- decisions, as data ----------------------------------------------------------------------


def test_probe_verdicts():
    assert tracking.probe_verdict(200, None) is None
    assert tracking.probe_verdict(404, None) is None  # no such experiment yet: it answered
    assert tracking.probe_verdict(401, None) is None  # it answered; MLflow says the rest
    assert tracking.probe_verdict(503, None) == "it answered HTTP 503"
    assert tracking.probe_verdict(None, None) == f"no answer within {tracking.PROBE_SECONDS:g} s"
    assert "refused" in str(tracking.probe_verdict(None, ConnectionError("refused")))


def test_transient_failures_and_backoff():
    assert tracking.transient(Exception("Max retries exceeded with url: /api (Caused by "
                                        "ResponseError('too many 503 error responses'))"))
    assert tracking.transient(ConnectionResetError("Connection aborted"))
    assert tracking.transient(Exception("API request failed with error code 503 != 200"))
    assert not tracking.transient(Exception("RESOURCE_DOES_NOT_EXIST: run abc not found"))
    assert not tracking.transient(Exception("INVALID_PARAMETER_VALUE: Changing param values"))
    assert [tracking.backoff(n) for n in range(6)] == [0.5, 1, 2, 4, 5, 5]


def test_retries_last_until_the_deadline_and_no_longer(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("Connection refused")
        return "ok"

    assert tracking._patiently(flaky, deadline=time.monotonic() + 60) == "ok"
    assert sleeps == [0.5, 1, 2]

    def down() -> None:
        raise ConnectionError("Connection refused")

    with pytest.raises(ConnectionError):
        tracking._patiently(down, deadline=time.monotonic() + 1)  # 0.5 fits, 1 more does not

    def wrong() -> None:
        raise ValueError("RESOURCE_DOES_NOT_EXIST")

    sleeps.clear()
    with pytest.raises(ValueError):
        tracking._patiently(wrong, deadline=time.monotonic() + 60)
    assert sleeps == []  # not transient: not retried


def test_retry_bound_from_the_environment(monkeypatch):
    monkeypatch.delenv(tracking.RETRY_ENV, raising=False)
    assert tracking.retry_seconds() == tracking.RETRY_SECONDS == 60
    monkeypatch.setenv(tracking.RETRY_ENV, "5")
    assert tracking.retry_seconds() == 5


@pytest.mark.parametrize("location", ["file:///any/dir", "/any/dir", "C:\\any\\dir",
                                      "c:/any/dir", "./mlruns"])
def test_a_local_artifact_location_is_refused_for_a_server(location):
    problem = tracking.location_problem("http://u:secret@srv:5000", location)
    assert problem is not None
    assert location in problem and "http://***@srv:5000" in problem
    assert "secret" not in problem


@pytest.mark.parametrize("location", ["mlflow-artifacts:/1", "s3://bucket/mlflow",
                                      "gs://b/x", "wasbs://c@a.blob.core.windows.net/x"])
def test_a_server_side_artifact_location_is_accepted(location):
    assert tracking.location_problem("https://srv", location) is None
    assert tracking.location_problem("sqlite:///x/mlflow.db", "file:///x/art") is None


def test_a_replaced_experiment_is_refused_with_the_fix(tmp_path):
    pins = tmp_path / ".mlops" / "experiments.json"
    tracking._pin(pins, "http://srv", "X", "3", ".mlops/experiments.json")
    tracking._pin(pins, "http://srv", "X", "3", ".mlops/experiments.json")  # the same: fine
    tracking._pin(pins, "http://other", "X", "9", ".mlops/experiments.json")  # another store
    with pytest.raises(TrackingError) as err:
        tracking._pin(pins, "http://srv", "X", "7", ".mlops/experiments.json")
    assert str(err.value) == (
        "the experiment 'X' at http://srv was 3, now 7: someone replaced it; check the "
        "server, then `rm .mlops/experiments.json` to accept the new one")
    assert tracking.pinned_experiment(pins, "http://srv", "X") == "3"
    assert tracking.pinned_experiment(pins, "http://srv", "Y") is None


def test_local_run_ids():
    run_id = local_run_id()
    assert is_local_run(run_id) and run_id != local_run_id()
    assert not is_local_run("0123456789abcdef0123456789abcdef")


class SilentPort:
    """A socket on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self, port: int | None = None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        try:
            while True:
                self.accepted.append(self.sock.accept()[0])
        except OSError:
            pass

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self.sock.close()
        self.thread.join(5)


def test_the_first_contact_is_bounded(monkeypatch):
    silent = SilentPort()
    try:
        for url in (f"http://127.0.0.1:{closed_port()}", f"http://127.0.0.1:{silent.port}"):
            t0 = time.monotonic()
            why = tracking._probe(url, "x")
            assert why is not None and time.monotonic() - t0 < tracking.PROBE_SECONDS + 1
    finally:
        silent.close()


# -- against a real server -------------------------------------------------------------------


def server_client(url: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(url)


def read(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text(encoding="utf-8"))


@pytest.mark.integration
def test_an_unreachable_server_lets_the_stage_execute_then_publishes(
        tmp_path, wheelhouse, mlflow_server):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    set_config(root, experiment="blips-offline")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    mlflow_server.stop()
    silent = SilentPort(mlflow_server.port)
    try:  # silent: accepts, never answers
        proc = doit(root, env=env)
        out = proc.stdout + proc.stderr
        assert f"tracking server {mlflow_server.url} not reachable (" in out
        assert "executing without the stage cache; the run is recorded locally and " \
               "published by the next doit" in out
        first = read(root, ".mlops/executed/make.json")["run_id"]
        assert is_local_run(first)
        assert (root / f".mlops/runs/make/{first}/to-publish.json").is_file()
        assert not (root / ".mlops/runs/make/last-run.json").exists()
    finally:
        silent.close()
    # refused: the stage executes again (a new parameter), still locally
    spec = root / "env_specs/make.yaml"
    spec.write_text(spec.read_text().replace("greeting: hi", "greeting: ho"))
    proc = doit(root, env=env)
    assert {"execute:make", "log:make"} <= ran(proc.stdout)
    done = read(root, ".mlops/executed/make.json")
    assert is_local_run(done["run_id"]) and done["run_id"] != first
    mlflow_server.start()
    proc = doit(root, env=env)
    assert ran(proc.stdout) == {"log:make"}  # published; nothing executes again
    logged = read(root, ".mlops/runs/make/last-run.json")
    assert logged["recreated_from"] == done["run_id"] and not is_local_run(logged["run_id"])
    run = server_client(mlflow_server.url).get_run(logged["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["greeting"] == "ho"
    assert run.data.tags["mlops.stage_key"] == done["key"]["key"]
    assert done["run_id"] in run.data.tags["mlops.recreated_from"]
    assert not (root / f".mlops/runs/make/{done['run_id']}/to-publish.json").exists()
    assert ran(doit(root, env=env).stdout) == set()


@pytest.fixture(scope="module")
def logged_project(tmp_path_factory, wheelhouse, mlflow_server):
    """A project executed against the server (its run there), not yet logged."""
    root = make_project(tmp_path_factory.mktemp("blips") / "proj", wheelhouse, with_use=False)
    set_config(root, experiment="blips-online")
    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    doit(root, "run", "execute:make", env=env)
    return root, env


@pytest.mark.integration
def test_a_server_restarting_during_log_is_waited_for(logged_project, mlflow_server):
    root, env = logged_project
    run_id = read(root, ".mlops/executed/make.json")["run_id"]
    assert not is_local_run(run_id)
    mlflow_server.stop()
    restart = threading.Thread(target=lambda: (time.sleep(2), mlflow_server.start()))
    restart.start()
    try:
        proc = doit(root, "run", "log:make", env=env)
    finally:
        restart.join()
    assert ran(proc.stdout) == {"log:make"}
    assert read(root, ".mlops/runs/make/last-run.json")["run_id"] == run_id
    assert server_client(mlflow_server.url).get_run(run_id).info.status == "FINISHED"


@pytest.mark.integration
def test_a_replaced_experiment_is_refused(logged_project, mlflow_server, tmp_path):
    root, env = logged_project
    pinned = read(root, ".mlops/experiments.json")[mlflow_server.url]["blips-online"]
    client = server_client(mlflow_server.url)
    client.rename_experiment(pinned, "blips-online-old")
    elsewhere = tmp_path / "elsewhere"
    new = client.create_experiment("blips-online", artifact_location=elsewhere.as_uri())
    spec = root / "env_specs/make.yaml"
    spec.write_text(spec.read_text().replace("greeting: hi", "greeting: hey"))
    proc = doit(root, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"the experiment 'blips-online' at {mlflow_server.url} was {pinned}, now {new}: "
            "someone replaced it; check the server, then `rm .mlops/experiments.json` to "
            "accept the new one") in out
    (root / ".mlops/experiments.json").unlink()  # accepted: its artifact location is not
    proc = doit(root, env=env, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"artifact location {elsewhere.as_uri()} is on this machine" in out
    assert mlflow_server.url in out
    assert not elsewhere.exists()
    assert client.search_runs([new]) == []
