"""A tracking server's runs through its REST API with `requests` alone: what the tool itself
does to a run (find runs by tag, read one, create it, log params, metrics, tags and files,
close it, fetch its files), without importing MLflow (seconds per doit process, paid by
every agent that only restores).

Only for an http(s) server reached with a token, a user and password, or nothing (the
variables MLflow's own client reads for those), with artifacts served by the server
(`mlflow-artifacts:`); anything else (TLS settings, an auth plugin, Databricks, artifacts in
s3:) goes through MLflow in client.py. The calls are MLflow's public REST API 2.0."""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
PER_BATCH = 100  # params, tags: MLflow's limit per log-batch request (metrics: 1000)
TIMEOUT = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", "120") or 120)
# what only MLflow's own client knows how to use
MLFLOW_ONLY = ("MLFLOW_TRACKING_INSECURE_TLS", "MLFLOW_TRACKING_SERVER_CERT_PATH",
               "MLFLOW_TRACKING_CLIENT_CERT_PATH", "MLFLOW_TRACKING_AUTH",
               "MLFLOW_ENABLE_DB_SDK", "MLFLOW_TRACKING_AWS_SIGV4")


class ServerError(Exception):
    """The server answered with an error (the text says its status code, for retries)."""


def usable(uri: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this module may talk to the store at `uri` itself. Pure (on `environ`)."""
    if not uri.startswith(("http://", "https://")):
        return False
    return not any(environ.get(name, "").strip() for name in MLFLOW_ONLY)


def artifact_path(artifact_uri: str) -> str | None:
    """The path under the server's artifact API of a run's `mlflow-artifacts:` URI; None
    for another kind of artifact location. Pure."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != "mlflow-artifacts" or parsed.netloc:  # another host: MLflow's way
        return None
    return parsed.path.strip("/")


def _session(uri: str) -> Any:
    import requests

    session = requests.Session()
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = (os.environ.get("MLFLOW_TRACKING_USERNAME"),
                      os.environ.get("MLFLOW_TRACKING_PASSWORD"))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user and password:
        session.auth = (user, password)
    return session


_sessions: dict[str, Any] = {}


def _request(uri: str, method: str, path: str, **kwargs: Any) -> Any:
    """One request to the server; the response (an error status raises ServerError)."""
    session = _sessions.get(uri) or _sessions.setdefault(uri, _session(uri))
    response = session.request(method, uri.rstrip("/") + path, timeout=TIMEOUT, **kwargs)
    if response.status_code >= 400:
        raise ServerError(f"{method} {path}: the server answered with status code "
                          f"{response.status_code}: {response.text[:300]}")
    return response


def _call(uri: str, method: str, path: str, **kwargs: Any) -> Any:
    """One API call; its JSON answer ({} for an empty one)."""
    response = _request(uri, method, path, **kwargs)
    return response.json() if response.content else {}


def experiment(uri: str, name: str) -> tuple[str, str] | None:
    """The active experiment's id and artifact location; None when there is none."""
    try:
        found = _call(uri, "GET", f"{API}/experiments/get-by-name",
                      params={"experiment_name": name})["experiment"]
    except ServerError as err:
        if "RESOURCE_DOES_NOT_EXIST" in str(err):
            return None
        raise
    if found.get("lifecycle_stage") != "active":
        return None
    return str(found["experiment_id"]), str(found.get("artifact_location", ""))


@dataclass(frozen=True)
class RunData:
    artifact_uri: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def _pairs(items: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    return {str(i["key"]): i.get("value") for i in items or ()}


def run(uri: str, run_id: str) -> RunData:
    found = _call(uri, "GET", f"{API}/runs/get", params={"run_id": run_id})["run"]
    data = found.get("data", {})
    return RunData(str(found["info"].get("artifact_uri", "")),
                   str(found["info"].get("status", "")), _pairs(data.get("params")),
                   {k: float(v) for k, v in _pairs(data.get("metrics")).items()},
                   _pairs(data.get("tags")))


def tagged_runs(uri: str, experiment_id: str, tags: Mapping[str, str], limit: int
                ) -> list[dict[str, Any]]:
    """Up to `limit` FINISHED runs of the experiment carrying every tag of `tags`, oldest
    first: each run's id, start time (ms) and tags."""
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    found = _call(uri, "POST", f"{API}/runs/search", json={
        "experiment_ids": [experiment_id], "max_results": limit,
        "filter": f"{where} and attributes.status = 'FINISHED'",
        "order_by": ["attributes.start_time ASC"]})
    return [{"run_id": r["info"]["run_id"], "start": int(r["info"].get("start_time", 0)),
             "tags": _pairs(r.get("data", {}).get("tags"))} for r in found.get("runs", [])]


def create_run(uri: str, experiment_id: str, run_name: str, tags: Mapping[str, str],
               start_ms: int) -> str:
    """A RUNNING run, as MlflowClient.create_run makes one."""
    found = _call(uri, "POST", f"{API}/runs/create", json={
        "experiment_id": experiment_id, "run_name": run_name, "start_time": start_ms,
        "user_id": tags.get("mlflow.user", "unknown"),
        "tags": [{"key": k, "value": str(v)} for k, v in tags.items()]})
    return str(found["run"]["info"]["run_id"])


def log_batch(uri: str, run_id: str, metrics: Mapping[str, float], params: Mapping[str, str],
              tags: Mapping[str, str], stamp_ms: int) -> None:
    """Params, metrics (step 0) and tags, in batches of at most MLflow's limits."""
    metric_list = [{"key": k, "value": json_double(float(v)), "timestamp": stamp_ms,
                    "step": 0} for k, v in metrics.items()]
    param_list = [{"key": k, "value": v} for k, v in params.items()]
    tag_list = [{"key": k, "value": str(v)} for k, v in tags.items()]
    while metric_list or param_list or tag_list:
        body = {"run_id": run_id, "metrics": metric_list[:PER_BATCH],
                "params": param_list[:PER_BATCH], "tags": tag_list[:PER_BATCH]}
        metric_list, param_list, tag_list = (metric_list[PER_BATCH:], param_list[PER_BATCH:],
                                             tag_list[PER_BATCH:])
        _call(uri, "POST", f"{API}/runs/log-batch", json=body)


def json_double(value: float) -> float | str:
    """A double as proto3's JSON writes it (what MLflow's server parses): NaN and the
    infinities as strings, which plain JSON cannot hold. Pure."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def set_tag(uri: str, run_id: str, key: str, value: str) -> None:
    _call(uri, "POST", f"{API}/runs/set-tag", json={"run_id": run_id, "key": key,
                                                    "value": value})


def terminate(uri: str, run_id: str, status: str, end_ms: int) -> None:
    _call(uri, "POST", f"{API}/runs/update", json={"run_id": run_id, "status": status,
                                                  "end_time": end_ms})


def upload(uri: str, root: str, source: Path, dest: str | None) -> None:
    """A file, or a folder with everything under it (keeping its name), under the run's
    artifact path `root`, as MLflow's client uploads them."""
    base = posixpath.join(root, dest) if dest else root
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            rel = path.relative_to(source.parent).parent.as_posix()
            _put(uri, posixpath.join(base, rel), path)
    else:
        _put(uri, base, source)


def _put(uri: str, folder: str, path: Path) -> None:
    with open(path, "rb") as data:
        _request(uri, "PUT", f"{ARTIFACTS}/{quote(posixpath.join(folder, path.name))}",
                 data=data)


def download(uri: str, root: str, artifact: str, dest: Path) -> Path:
    """One artifact (a file or a folder) of the run whose artifact path is `root`, into
    `dest`; the local path."""
    listing = _call(uri, "GET", ARTIFACTS, params={"path": posixpath.join(root, artifact)})
    files = listing.get("files", []) if isinstance(listing, dict) else []
    name = posixpath.basename(artifact.rstrip("/"))
    if not files or (len(files) == 1 and not files[0].get("is_dir")
                     and files[0]["path"] == name):
        target = dest / name
        response = _request(uri, "GET",
                            f"{ARTIFACTS}/{quote(posixpath.join(root, artifact))}", stream=True)
        with open(target, "wb") as out:
            for chunk in response.iter_content(1 << 20):
                out.write(chunk)
        return target
    folder = dest / name
    folder.mkdir(parents=True, exist_ok=True)
    for entry in files:
        child = posixpath.join(artifact, posixpath.basename(entry["path"]))
        download(uri, root, child, folder)
    return folder
