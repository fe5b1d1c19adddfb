"""The MLflow adapter: experiments and runs for the execute:S and log:S steps (the only mlflow
import; named for MLflow's tracking API, which it wraps). mlflow is imported once per process,
on first use."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

from mlops_tasks.base.errors import TrackingError
from mlops_tasks.base.redact import redact
from mlops_tasks.tracking import rest_store, sqlite_store

_lock = threading.Lock()
_clients: dict[str, Any] = {}
_experiments: dict[tuple[str, str], str] = {}
_served: dict[str, str] = {}  # store URI -> the URL it is served at to stage kernels

MAX_PARAM = 6000
# Variables set here for the orchestrator's own client; stage kernels do not inherit them.
ORCHESTRATOR_ONLY_ENV: set[str] = set()


def _orchestrator_env(uri: str) -> None:
    """The variables the orchestrator's own client runs with (stage kernels do not inherit
    them): set before any thread makes a client, so a kernel launched meanwhile sees them
    listed in ORCHESTRATOR_ONLY_ENV."""
    # restoring a stage downloads its artifacts: no progress bars in doit's output
    if "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ:
        ORCHESTRATOR_ONLY_ENV.add("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    if uri.startswith(("http://", "https://")):
        # A server that does not answer fails the task in seconds, not minutes
        # (MLflow's default is 7 retries with backoff). Users may set these.
        # MLflow prints run URLs verbatim, credentials included; publish prints a
        # redacted one instead.
        for key, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),
                           ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                           ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")):
            if key not in os.environ:
                ORCHESTRATOR_ONLY_ENV.add(key)
                os.environ[key] = value


def _client(uri: str) -> Any:
    with _lock:
        if uri not in _clients:
            _orchestrator_env(uri)
            from mlflow.tracking import MlflowClient

            # after mlflow's import, which sets up its loggers: the store's set-up says
            # "Creating initial MLflow database tables..." at INFO
            for name in ("alembic", "mlflow"):
                logging.getLogger(name).setLevel(logging.WARNING)

            _clients[uri] = MlflowClient(tracking_uri=uri)
        return _clients[uri]


PROBE_SECONDS = 5.0  # the first contact with an http store: connect and first answer
RETRY_SECONDS = 60.0  # how long calls are retried while the store answers 5xx or drops
RETRY_ENV = "MLOPS_STORE_RETRY_SECONDS"  # a user's own bound for the retries
_unreachable: dict[str, str | None] = {}  # uri -> why it did not answer (None: it did)


class StoreUnreachable(TrackingError):
    """The tracking server did not answer the first contact within PROBE_SECONDS."""


def probe_verdict(status: int | None, error: BaseException | None) -> str | None:
    """Why a probe's outcome means the store cannot be used now (refused, silent, 5xx);
    None when it answered (any answer below 500, an auth refusal included). Pure."""
    if error is not None:
        return f"{type(error).__name__}: {error}"
    if status is None:
        return f"no answer within {PROBE_SECONDS:g} s"
    return f"it answered HTTP {status}" if status >= 500 else None


def _probe(uri: str, name: str) -> str | None:
    """One request to the server's experiment API, bounded by PROBE_SECONDS in all (a
    socket that accepts and never answers included)."""
    import requests

    outcome: dict[str, Any] = {}

    def ask() -> None:
        try:
            outcome["status"] = requests.get(
                uri.rstrip("/") + "/api/2.0/mlflow/experiments/get-by-name",
                params={"experiment_name": name}, timeout=PROBE_SECONDS).status_code
        except requests.exceptions.SSLError:
            outcome["status"] = 0  # it answered; MLflow's own call says what is wrong
        except Exception as err:
            outcome["error"] = err

    asking = threading.Thread(target=ask, name="mlflow-probe", daemon=True)
    asking.start()
    asking.join(PROBE_SECONDS)
    return probe_verdict(outcome.get("status"), outcome.get("error"))


def unreachable(uri: str, name: str) -> str | None:
    """Why the store at `uri` cannot be reached now (None: it can), asked once per process:
    a local store always can; an http server gets one short probe."""
    if not uri.startswith(("http://", "https://")):
        return None
    if uri not in _unreachable:
        _unreachable[uri] = _probe(uri, name)
    return _unreachable[uri]


def wait_for(uri: str, name: str) -> str | None:
    """Wait, probing with backoff for up to retry_seconds(), until the server answers (a
    restart, a database failover); None once it does, else why it still does not."""
    if not uri.startswith(("http://", "https://")):
        return None
    deadline, attempt = time.monotonic() + retry_seconds(), 0
    while True:
        why = _probe(uri, name)
        _unreachable[uri] = why
        if why is None or time.monotonic() + backoff(attempt) > deadline:
            return why
        time.sleep(backoff(attempt))
        attempt += 1


def mark_unreachable(uri: str, why: str) -> None:
    """The store stopped answering after its first contact: the rest of this process works
    without it, as if the probe had failed."""
    if uri.startswith(("http://", "https://")):
        _unreachable[uri] = why


def transient(err: BaseException) -> bool:
    """A failure that a moment's wait may cure: the server answered 5xx, refused, dropped
    the connection or timed out. Pure (on the error's type and text)."""
    text = f"{type(err).__name__}: {err}"
    markers = ("Max retries exceeded", "Connection refused", "Connection aborted",
               "RemoteDisconnected", "ConnectionError", "ConnectionReset", "timed out",
               "Timeout", "too many 5", "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR",
               "error code 5", "response code 5", "status code 5")
    return any(marker in text for marker in markers)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry `attempt` (0, 1, ...): 0.5, 1, 2, 4, then 5. Pure."""
    return min(0.5 * 2 ** attempt, 5.0)


def retry_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RETRY_ENV, RETRY_SECONDS)))
    except ValueError:
        return RETRY_SECONDS


def _patiently(call: Any, *args: Any, deadline: float | None = None, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, retried with backoff while its failure is transient, until
    `deadline` (time.monotonic(); by default retry_seconds() from now). Every call retried
    here is idempotent or skips what is done (params already logged)."""
    if deadline is None:
        deadline = time.monotonic() + retry_seconds()
    attempt = 0
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as err:
            wait = backoff(attempt)
            if not transient(err) or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        attempt += 1


def location_problem(uri: str, location: str) -> str | None:
    """Why an experiment's artifact location may not be used with the store at `uri`; None
    when it may. An http store's artifacts live on the server's side (`mlflow-artifacts:`,
    s3:, gs:, ...): a local path or `file:` location would put a run's files on this
    machine, outside the project, where nobody else sees them. Pure."""
    if not uri.startswith(("http://", "https://")):
        return None
    scheme, sep, _ = location.partition(":")
    local = not sep or scheme.lower() == "file" or len(scheme) == 1 or "/" in scheme
    if not local:
        return None
    return (f"the experiment's artifact location {location} is on this machine, but the "
            f"tracking store {redact(uri)} is a server: runs would write their files there, "
            "outside the project and out of everyone else's sight. Check who changed the "
            "experiment; use one whose artifacts are on the server (mlflow-artifacts:, s3:, "
            "gs:, ...) or set `experiment` in [tool.mlops_tasks] to another name")


def pin_problem(uri: str, name: str, pinned: str | None, found: str, pins_rel: str
                ) -> str | None:
    """Why the experiment found may not be used: it has another id than the one this
    project pinned for that name at that store (replaced: renamed, and a new one made
    under the name); None when it is the pinned one or none was pinned. Pure."""
    if pinned is None or pinned == found:
        return None
    return (f"the experiment '{name}' at {redact(uri)} was {pinned}, now {found}: someone "
            f"replaced it; check the server, then `rm {pins_rel}` to accept the new one")


def read_pins(pins: Path) -> dict[str, dict[str, str]]:
    """{store URI (redacted): {experiment name: id}} as pinned by this project."""
    try:
        data = json.loads(pins.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pinned_experiment(pins: Path, uri: str, name: str) -> str | None:
    found = read_pins(pins).get(redact(uri), {}).get(name)
    return str(found) if found is not None else None


def _pin(pins: Path, uri: str, name: str, exp_id: str, pins_rel: str) -> None:
    """Check the experiment against its pin, and pin it when it is the first (under the
    store's mutex)."""
    data = read_pins(pins)
    known = data.get(redact(uri), {})
    problem = pin_problem(uri, name, known.get(name), exp_id, pins_rel)
    if problem:
        raise TrackingError(problem)
    if known.get(name) != exp_id:
        data[redact(uri)] = {**known, name: exp_id}
        pins.parent.mkdir(parents=True, exist_ok=True)
        temporary = pins.with_name(pins.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, pins)


def ensure_experiment(uri: str, name: str, artifact_root: Path | None, mutex_file: Path,
                      own_store: Path | None = None, pins: Path | None = None,
                      pins_rel: str = "") -> str:
    """Create (once, under a mutex) the store and the experiment; check it against its pin
    in `pins` (the first one seen is pinned) and its artifact location against the store;
    return its id.

    A fresh sqlite store is migrated here, before any stage logs, so stages logging in
    parallel never race on schema creation. `own_store`: the project's embedded sqlite file,
    whose artifact locations follow the project when it is moved or copied.
    """
    key = (uri, name)
    if key in _experiments:
        return _experiments[key]
    mutex_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(mutex_file), timeout=600):
            exp_id, location = _find_or_create(uri, name, artifact_root)
            if pins is not None:
                _pin(pins, uri, name, exp_id, pins_rel or str(pins))
            problem = location_problem(uri, location)
            if problem:
                raise TrackingError(f"experiment '{name}' ({exp_id}): {problem}")
            if artifact_root is not None:
                _follow_the_project(location, artifact_root, own_store)
    except TrackingError:
        raise
    except Exception as err:
        raise TrackingError(redact(f"cannot reach the MLflow tracking store at {uri}: "
                                   f"{type(err).__name__}: {err}")) from None
    _experiments[key] = exp_id
    return exp_id


def _find_or_create(uri: str, name: str, artifact_root: Path | None) -> tuple[str, str]:
    """The experiment's id and artifact location (created when there is none)."""
    db = sqlite_store.usable(uri)
    if db is not None:
        found_here = sqlite_store.experiment(db, name)
        if found_here is not None:
            sqlite_store.index_tags(db)
            return found_here
    if rest_store.usable(uri):
        found_there = _patiently(rest_store.experiment, uri, name)
        if found_there is not None:
            return found_there
    client = _client(uri)
    found = _patiently(client.get_experiment_by_name, name)
    if found is None:
        location = artifact_root.as_uri() if artifact_root else None
        exp_id = str(_patiently(client.create_experiment, name, artifact_location=location))
        found = _patiently(client.get_experiment, exp_id)
    sqlite_store.forget(uri)  # made or migrated by MLflow just now
    db = sqlite_store.usable(uri)
    if db is not None:
        sqlite_store.index_tags(db)
    return str(found.experiment_id), str(found.artifact_location)


def moved_roots(location: str, expected: str, tail: str) -> tuple[str, str] | None:
    """(old root, new root) when `location` is `expected` of a folder moved elsewhere (both
    end in `tail`); None when it is not. Pure."""
    if location == expected or not (location.endswith(tail) and expected.endswith(tail)):
        return None
    return location[: -len(tail)], expected[: -len(tail)]


def _follow_the_project(location: str, artifact_root: Path, own_store: Path | None) -> None:
    """A project moved or copied with its state folder keeps a store whose artifact
    locations name the old folder, where later runs would write. The project's own store is
    rewritten to name this folder (its artifacts came with it); another store is left as it
    is, and the user told."""
    from mlops_tasks.base import console

    expected = artifact_root.as_uri()
    if location == expected:
        return
    roots = moved_roots(location, expected, f"/{artifact_root.parent.name}/{artifact_root.name}")
    if roots is None or own_store is None:
        console.warn(f"the experiment keeps its artifacts in {location}, not in this "
                     f"project's {expected}; set `experiment` in [tool.mlops_tasks] to give "
                     "this project an experiment of its own")
        return
    old, new = roots
    import sqlite3

    db = sqlite3.connect(own_store)
    try:
        with db:
            for table, column in (("experiments", "artifact_location"),
                                  ("runs", "artifact_uri")):
                db.execute(f"update {table} set {column} = ? || substr({column}, ?) "
                           f"where substr({column}, 1, ?) = ?",
                           (new, len(old) + 1, len(old) + 1, old + "/"))
    finally:
        db.close()
    console.notice(f"this project was moved or copied from {old.removeprefix('file://')}: "
                   f"its MLflow store now keeps artifacts under {new.removeprefix('file://')}")


def start_run(uri: str, experiment_id: str, run_name: str, tags: Mapping[str, str]) -> str:
    db = sqlite_store.usable(uri)
    try:
        if db is not None:
            return sqlite_store.create_run(db, experiment_id, run_name, tags)
        if rest_store.usable(uri):
            return str(_patiently(rest_store.create_run, uri, experiment_id, run_name, tags,
                                  _now_ms()))
        run = _patiently(_client(uri).create_run, experiment_id, run_name=run_name,
                         tags=dict(tags))
    except Exception as err:
        raise TrackingError(redact(f"cannot create a run at {uri}: {err}")) from None
    return str(run.info.run_id)


def log_run(
    uri: str,
    run_id: str,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: Iterable[tuple[Path, str | None]],
    status: str = "FINISHED",
    final_tags: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Add params, metrics, tags and artifacts to a run, then `final_tags` (written after
    every artifact: a run that has them is complete), then close it with status. Returns
    the run's metrics: those given and those its notebook logged itself."""
    db = sqlite_store.usable(uri)
    if db is not None:
        done = _log_run_here(db, run_id, params=params, metrics=metrics, tags=tags,
                             artifacts=artifacts, status=status, final_tags=final_tags)
        if done is not None:
            return done
    if rest_store.usable(uri):
        done = _log_run_rest(uri, run_id, params=params, metrics=metrics, tags=tags,
                             artifacts=artifacts, status=status, final_tags=final_tags)
        if done is not None:
            return done
    from mlflow.entities import Metric, Param, RunTag

    client = _client(uri)
    deadline = time.monotonic() + retry_seconds()  # one bound for the whole step
    try:
        run = _patiently(client.get_run, run_id, deadline=deadline)
        problem = location_problem(uri, run.info.artifact_uri)
        if problem:
            raise TrackingError(f"run {run_id}: {problem}")
        before = run.data
        existing = before.params
        param_list = [Param(k, _param_text(v)) for k, v in params.items()
                      if k not in existing]
        _patiently(client.log_batch, run_id,
                   metrics=[Metric(k, float(v), _now_ms(), 0) for k, v in metrics.items()],
                   params=param_list, tags=[RunTag(k, str(v)) for k, v in tags.items()],
                   deadline=deadline)
        for path, dest in artifacts:
            if path.is_dir():  # a folder output: logged as a folder of artifacts
                folder = f"{dest}/{path.name}" if dest else path.name
                _patiently(client.log_artifacts, run_id, str(path), folder, deadline=deadline)
            else:
                _patiently(client.log_artifact, run_id, str(path), dest, deadline=deadline)
        for key, value in (final_tags or {}).items():
            _patiently(client.set_tag, run_id, key, value, deadline=deadline)
        _patiently(client.set_terminated, run_id, status=status, deadline=deadline)
    except TrackingError:
        raise
    except Exception as err:
        raise TrackingError(redact(f"cannot log run {run_id} to {uri}: "
                                   f"{type(err).__name__}: {err}")) from None
    return {**{k: float(v) for k, v in before.metrics.items()}, **metrics}


def _log_run_here(db: Path, run_id: str, *, params: Mapping[str, Any],
                  metrics: Mapping[str, float], tags: Mapping[str, str],
                  artifacts: Iterable[tuple[Path, str | None]], status: str,
                  final_tags: Mapping[str, str] | None) -> dict[str, float] | None:
    """log_run on the embedded store with sqlite3 and file copies; None when the run keeps
    its artifacts elsewhere than in local files (MLflow logs it then)."""
    try:
        before = sqlite_store.run(db, run_id)
        if sqlite_store.local_path(before.artifact_uri) is None:
            return None
        texts = {k: _param_text(v) for k, v in params.items() if k not in before.params}
        sqlite_store.log_batch(db, run_id, metrics, texts, {k: str(v) for k, v in tags.items()})
        sqlite_store.log_artifacts(before.artifact_uri, artifacts)
        if final_tags:
            sqlite_store.set_tags(db, run_id, final_tags)
        sqlite_store.terminate(db, run_id, status)
    except Exception as err:
        raise TrackingError(redact(f"cannot log run {run_id} to {db}: "
                                   f"{type(err).__name__}: {err}")) from None
    return {**before.metrics, **{k: float(v) for k, v in metrics.items()}}


def _log_run_rest(uri: str, run_id: str, *, params: Mapping[str, Any],
                  metrics: Mapping[str, float], tags: Mapping[str, str],
                  artifacts: Iterable[tuple[Path, str | None]], status: str,
                  final_tags: Mapping[str, str] | None) -> dict[str, float] | None:
    """log_run through the server's REST API; None when the run keeps its artifacts
    elsewhere than on the server (MLflow logs it then)."""
    deadline = time.monotonic() + retry_seconds()
    try:
        before = _patiently(rest_store.run, uri, run_id, deadline=deadline)
        root = rest_store.artifact_path(before.artifact_uri)
        if root is None:
            return None
        texts = {k: _param_text(v) for k, v in params.items() if k not in before.params}
        _patiently(rest_store.log_batch, uri, run_id, metrics, texts,
                   {k: str(v) for k, v in tags.items()}, _now_ms(), deadline=deadline)
        for path, dest in artifacts:
            _patiently(rest_store.upload, uri, root, path, dest, deadline=deadline)
        for key, value in (final_tags or {}).items():
            _patiently(rest_store.set_tag, uri, run_id, key, value, deadline=deadline)
        _patiently(rest_store.terminate, uri, run_id, status, _now_ms(), deadline=deadline)
    except Exception as err:
        raise TrackingError(redact(f"cannot log run {run_id} to {uri}: "
                                   f"{type(err).__name__}: {err}")) from None
    return {**before.metrics, **{k: float(v) for k, v in metrics.items()}}


def download(uri: str, run_id: str, artifact: str, dest: Path) -> Path:
    """One artifact (a file or a folder) of a run, into `dest`; the local path."""
    dest.mkdir(parents=True, exist_ok=True)
    db = sqlite_store.usable(uri)
    try:
        if db is not None and sqlite_store.local_path(
                sqlite_store.run(db, run_id).artifact_uri) is not None:
            return sqlite_store.download(db, run_id, artifact, dest)
        if rest_store.usable(uri):
            root = rest_store.artifact_path(_patiently(rest_store.run, uri, run_id).artifact_uri)
            if root is not None:
                return Path(_patiently(rest_store.download, uri, root, artifact, dest))
        return Path(_client(uri).download_artifacts(run_id, artifact, str(dest)))
    except Exception as err:
        raise TrackingError(redact(f"cannot download {artifact} of run {run_id} from {uri}: "
                                   f"{type(err).__name__}: {err}")) from None


def close_run(uri: str, run_id: str, tags: Mapping[str, str], status: str = "KILLED",
              artifacts: Iterable[tuple[Path, str | None]] = ()) -> None:
    """End a run that will get no params or metrics (failed, killed, superseded)."""
    log_run(uri, run_id, params={}, metrics={}, tags=tags, artifacts=artifacts, status=status)


def _param_text(value: Any) -> str:
    """Strings as they are, nested values as JSON (what a notebook's reader can parse)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict | list | tuple):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    else:
        text = repr(value)
    return text[:MAX_PARAM]


def _now_ms() -> int:
    return int(time.time() * 1000)


def talks_http(uri: str) -> bool:
    """A URI any MLflow client reaches over its REST API (no store of its own to open)."""
    return uri.startswith(("http://", "https://", "databricks"))


def serve_store(uri: str, artifact_root: Path) -> str:
    """The store at `uri` over HTTP on 127.0.0.1, for stage kernels, from a thread of this
    process (started once, on first need; it ends with the process).

    A stage's own mlflow client of another version would open (and try to migrate) the
    tool's database itself; over the REST API it never touches the schema. Artifacts are
    not proxied: the kernel writes them where the run's artifact URI says, on this machine.

    The address is known at once (the socket is bound and listening here); MLflow's server
    app is imported and starts answering in the background, so the notebook's cells start
    meanwhile, and only a notebook's first MLflow call waits for it (in the socket's queue).
    """
    import socket

    with _lock:
        if uri in _served:
            return _served[uri]
        if _served:
            raise TrackingError(f"one store is served per doit process; {redact(uri)} is "
                                "another one")
        # MLflow's server app reads its store from these, once, on first request.
        for key, value in (("_MLFLOW_SERVER_FILE_STORE", uri),
                           ("_MLFLOW_SERVER_ARTIFACT_ROOT", artifact_root.as_uri())):
            os.environ[key] = value
            ORCHESTRATOR_ONLY_ENV.add(key)
        listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening.bind(("127.0.0.1", 0))
        listening.listen(128)
        threading.Thread(target=_serve, args=(listening,), name="mlflow-store",
                         daemon=True).start()
        _served[uri] = f"http://127.0.0.1:{listening.getsockname()[1]}"
        return _served[uri]


def _serve(listening: Any) -> None:
    """MLflow's server app on an already listening socket, until the process ends. If it
    cannot start, the socket is closed: the kernel's calls are refused at once instead of
    waiting for an answer that never comes."""
    try:
        from mlflow.server import app
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        port = listening.getsockname()[1]
        server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet,
                             fd=listening.fileno())
    except Exception as err:
        logging.getLogger(__name__).warning("the MLflow store could not be served to "
                                            "kernels: %s: %s", type(err).__name__, err)
        listening.close()
        return
    server.serve_forever()


def find_tagged_runs(uri: str, experiment_id: str, tags: Mapping[str, str], limit: int
                     ) -> list[dict[str, Any]]:
    """Up to `limit` FINISHED runs of the experiment carrying every tag of `tags` (one search,
    on tags), oldest first: each run's id, start time (ms) and tags. A search that cannot be
    made gives up within PROBE_SECONDS, as MLflow's client does: a stage-cache lookup that
    fails means executing, at once, not after a minute of retries."""
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    db = sqlite_store.usable(uri)
    try:
        if db is not None:
            return sqlite_store.tagged_runs(db, experiment_id, tags, limit)
        if rest_store.usable(uri):
            soon = time.monotonic() + min(PROBE_SECONDS, retry_seconds())
            return list(_patiently(rest_store.tagged_runs, uri, experiment_id, tags, limit,
                                   deadline=soon))
        runs = _client(uri).search_runs(
            [experiment_id], filter_string=f"{where} and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time ASC"], max_results=limit)
    except Exception as err:
        raise TrackingError(redact(f"cannot search runs at {uri}: {type(err).__name__}: "
                                   f"{err}")) from None
    return [{"run_id": run.info.run_id, "start": run.info.start_time,
             "tags": dict(run.data.tags)} for run in runs]


def run_metrics(uri: str, run_id: str) -> dict[str, float]:
    """A run's metrics (each one's latest value), those its notebook logged included."""
    db = sqlite_store.usable(uri)
    try:
        if db is not None:
            return sqlite_store.run(db, run_id).metrics
        if rest_store.usable(uri):
            return dict(_patiently(rest_store.run, uri, run_id).metrics)
        metrics = _client(uri).get_run(run_id).data.metrics
    except Exception as err:
        raise TrackingError(redact(f"cannot read the metrics of run {run_id} at {uri}: "
                                   f"{type(err).__name__}: {err}")) from None
    return {str(k): float(v) for k, v in metrics.items()}


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """A run's page in the tracking server's UI; None for a store with no UI (local). Pure."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def tag_absent(uri: str, key: str, value: str) -> bool:
    """True when the local sqlite store `uri` surely has no run tagged key=value, read from
    its file with sqlite3 alone (MLflow's `tags` table: key, value, run_uuid), without
    loading mlflow: the common miss of a cache lookup costs milliseconds. False whenever it
    cannot tell (another kind of store, a file it cannot read): ask MLflow then."""
    import sqlite3
    from contextlib import closing
    from urllib.parse import unquote

    if not uri.startswith("sqlite:///"):
        return False
    path = Path(unquote(uri[len("sqlite:///"):]))
    if not path.is_file():
        return False  # a new store: MLflow creates it
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                     timeout=5)) as db:
            row = db.execute("SELECT 1 FROM tags WHERE key = ? AND value = ? LIMIT 1",
                             (key, value)).fetchone()
    except sqlite3.Error:
        return False
    return row is None


_preloading: dict[str, threading.Thread] = {}


def preload(uri: str) -> None:
    """Import mlflow and open the store for `uri` in a background thread, once per process,
    so that the first call that needs them (creating the stage's run) finds them ready
    instead of paying for them on the critical path (started while a venv is made ready
    and a kernel boots). Errors are left for that first call to raise."""
    if (uri in _preloading or uri in _clients or sqlite_store.usable(uri) is not None
            or rest_store.usable(uri)):
        return
    with _lock:
        _orchestrator_env(uri)

    def load() -> None:
        try:
            client = _client(uri)
            if not talks_http(uri):
                client._tracking_client.store  # noqa: B018 (opens the store: a schema check)
        except Exception:  # the real call says what is wrong
            pass

    _preloading[uri] = threading.Thread(target=load, name="mlflow-preload", daemon=True)
    _preloading[uri].start()
