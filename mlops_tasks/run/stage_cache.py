"""The shared stage cache: a stale stage whose cache key matches a complete, finished run in
the tracking store gets that run's outputs, verified against the hashes the run recorded,
instead of executing (what DVC's run-cache and Bazel's remote cache do, on the MLflow store
the team already runs). The key is the stage key plus the declared outputs and the platform."""

from __future__ import annotations

import json
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import canonical_json, sha256_text
from mlops_tasks.project.spec import Stage
from mlops_tasks.run import provenance as audit
from mlops_tasks.run import record
from mlops_tasks.tracking import client as tracking
from mlops_tasks.tracking import tags as tag

CACHE_KEY_VERSION = 2  # 1: json.dumps with its default separators, no version field


def platform_tag() -> str:
    return f"{sys.platform}-{platform.machine().lower()}"


def cache_key(stage_key: str, outputs: Sequence[str], metrics: Sequence[str],
              platform_name: str | None) -> str:
    """What a reusable run must match: the stage key (freeze with its Python version, code,
    parameters, input contents), the declared outputs, and the platform (None: any). Hashed
    as every key is (canonical JSON); `CACHE_KEY_VERSION` changes whenever its bytes do, so an
    entry made under other rules is never matched. Pure."""
    return sha256_text(canonical_json({
        "version": CACHE_KEY_VERSION, "stage_key": stage_key, "outputs": sorted(outputs),
        "metrics": sorted(metrics), "platform": platform_name}))


def key_for(config: Config, stage: Stage, key: record.StageKey) -> str:
    return cache_key(key.key, stage.outputs, stage.metrics,
                     None if config.cache_across_platforms else platform_tag())


def reads(config: Config, stage: Stage) -> bool:
    """The stage may be restored from the cache (stage_cache read-write or read)."""
    return stage.cache and config.stage_cache in ("read-write", "read")


def offers(config: Config, stage: Stage) -> bool:
    """The stage's runs are offered to the cache (stage_cache read-write)."""
    return stage.cache and config.stage_cache == "read-write"


@dataclass(frozen=True)
class Hit:
    """A complete run with the stage's cache key, and its files fetched and verified."""

    run_id: str
    host: str
    start_ms: int
    files: dict[str, Path]  # declared output (or metrics file) -> the verified download
    notebook: Path


def describe(hit: Hit) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.start_ms / 1000))
    return f"run {hit.run_id} ({hit.host or 'unknown host'}, {when})"


def lookup(config: Config, stage: Stage, uri: str, experiment_id: str,
           key: record.StageKey) -> dict[str, Any] | None:
    """The newest complete run with the stage's cache key; None on a miss, when the stage
    may not read the cache, or when the store does not answer (said once, then it runs)."""
    if not reads(config, stage):
        return None
    try:
        return tracking.find_tagged_run(uri, experiment_id, {
            tag.CACHE_KEY: key_for(config, stage, key), tag.CACHE_COMPLETE: "true"})
    except MlopsError as err:
        console.say(f"the stage cache cannot be searched ({err}); executing", "execute",
                    stage.name)
        return None


def fetch(config: Config, stage: Stage, uri: str, found: dict[str, Any]) -> Hit | None:
    """Download the run's declared outputs, metrics files and executed notebook into the
    state folder and verify each against the hashes the run recorded; None (with a message)
    when anything is missing or differs. Only the stage's own declared paths are fetched,
    whatever else the run holds."""
    run_id = found["run_id"]
    folder = config.root / layout.restore_dir(stage)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        recorded = json.loads(tracking.download(uri, run_id, layout.AUDIT, folder)
                              .read_text(encoding="utf-8")).get("outputs") or {}
        files = {}
        for rel in stage.written:
            # a file or folder arrives under its own name in the folder it is fetched into
            path = tracking.download(uri, run_id, f"outputs/{rel}",
                                     (folder / "outputs" / rel).parent)
            if path.resolve() != (folder / "outputs" / rel).resolve():
                raise MlopsError(f"{rel} arrived as {path}")
            files[rel] = path
        notebook = tracking.download(uri, run_id, f"notebook/{stage.name}.ipynb", folder)
    except (MlopsError, OSError, ValueError) as err:
        console.say(f"run {run_id} has this stage's key but cannot be restored ({err}); "
                    "executing", "execute", stage.name)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    got = audit.content_hashes(folder / "outputs", list(files))
    wrong = [rel for rel in files if got.get(rel) is None or got[rel] != recorded.get(rel)]
    if wrong:
        console.say(f"run {run_id} has this stage's key, but {', '.join(wrong)} differ from "
                    "the hashes it recorded; discarded, executing", "execute", stage.name)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return Hit(run_id, str(found["tags"].get(tag.HOST, "")), int(found["start"] or 0),
               files, notebook)
