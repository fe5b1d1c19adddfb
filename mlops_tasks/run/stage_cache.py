"""The shared stage cache: a stale stage whose cache key matches a complete, finished run in
the tracking store gets that run's outputs, verified against the hashes the run recorded,
instead of executing (what DVC's run-cache and Bazel's remote cache do, on the MLflow store
the team already runs). The key is the stage key plus the declared outputs and the platform.

Trust: with a signing key (MLOPS_CACHE_KEY), an entry carries an HMAC over its key, its
output hashes, its run id and its signer's name, and only entries that verify (signed by a
producer in `cache_trusted_producers`, when set) are restored, their files checked against
the signed hashes. Without a key, every writer of the tracking store is trusted. The oldest
entry that may be used wins every lookup, so a key's first result sticks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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

CACHE_KEY_VERSION = 3  # 2: the stage key held the installed freeze; 1: json.dumps defaults
SIGNATURE_VERSION = 1  # changes whenever the signed bytes do
SIGNING_KEY_ENV = "MLOPS_CACHE_KEY"  # the secret; from the environment only (a CI credential)
SIGNER_ENV = "MLOPS_CACHE_SIGNER"  # the name a signer declares; the host name when unset
CANDIDATES = 50  # entries looked at per key, oldest first


def platform_tag() -> str:
    return f"{sys.platform}-{platform.machine().lower()}"


def cache_key(stage_key: str, outputs: Sequence[str], metrics: Sequence[str],
              platform_name: str | None) -> str:
    """What a reusable run must match: the stage key (the env as pinned with its Python
    version, code, parameters, input contents), the declared outputs, and the platform
    (None: any). Hashed
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


# -- trust: who may have written an entry, as data ----------------------------------------------


@dataclass(frozen=True)
class Trust:
    """Whom this agent trusts to have written an entry. No secret: an unsigned cache, which
    trusts everyone who can write to the tracking store."""

    secret: bytes | None = field(default=None, repr=False)
    signer: str = ""
    producers: tuple[str, ...] = ()  # cache_trusted_producers; empty: any key holder

    def problem(self) -> str | None:
        """Why no entry can be trusted at all; None when some can."""
        if self.producers and self.secret is None:
            return (f"cache_trusted_producers is set in [tool.mlops_tasks] but {SIGNING_KEY_ENV} "
                    "is not, so no entry's producer can be verified; set the key (a CI "
                    "credential) or remove the setting")
        return None


def trust(config: Config, environ: Mapping[str, str] = os.environ) -> Trust:
    secret = environ.get(SIGNING_KEY_ENV, "")
    return Trust(secret.encode("utf-8") if secret else None,
                 environ.get(SIGNER_ENV) or socket.gethostname(),
                 config.cache_trusted_producers)


def signed_bytes(cache_key: str, outputs: Mapping[str, str | None], run_id: str,
                 signer: str) -> bytes:
    """What a signature covers, as canonical JSON. Pure."""
    return canonical_json({"version": SIGNATURE_VERSION, "cache_key": cache_key,
                           "outputs": dict(outputs), "run_id": run_id,
                           "signer": signer}).encode("utf-8")


def sign(secret: bytes, cache_key: str, outputs: Mapping[str, str | None], run_id: str,
         signer: str) -> str:
    """HMAC-SHA256 of `signed_bytes`, hex. Pure."""
    return hmac.new(secret, signed_bytes(cache_key, outputs, run_id, signer),
                    hashlib.sha256).hexdigest()


def entry_tags(who: Trust, cache_key: str, outputs: Mapping[str, str | None], run_id: str
               ) -> dict[str, str]:
    """The tags that make run `run_id` an entry, the completion tag last (written last);
    signed when the agent has a key. Pure."""
    tags = {tag.CACHE_KEY: cache_key}
    if who.secret is not None:
        tags.update({tag.CACHE_OUTPUTS: canonical_json(dict(outputs)),
                     tag.CACHE_SIGNER: who.signer,
                     tag.CACHE_SIGNATURE: sign(who.secret, cache_key, outputs, run_id,
                                               who.signer)})
    tags[tag.CACHE_COMPLETE] = "true"
    return tags


def signed_outputs(tags: Mapping[str, str]) -> dict[str, str] | None:
    """The output hashes an entry's signature covers; None when they are not readable."""
    try:
        outputs = json.loads(tags.get(tag.CACHE_OUTPUTS, ""))
    except ValueError:
        return None
    if not isinstance(outputs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()):
        return None
    return outputs


def refusal(who: Trust, cache_key: str, run_id: str, tags: Mapping[str, str]) -> str | None:
    """Why this agent must not restore the entry (run `run_id` with `tags`); None when it may.
    Pure."""
    if who.secret is None:
        return who.problem()
    signature = tags.get(tag.CACHE_SIGNATURE)
    if not signature:
        return "no signature"
    outputs, signer = signed_outputs(tags), tags.get(tag.CACHE_SIGNER, "")
    if outputs is None or not hmac.compare_digest(
            sign(who.secret, cache_key, outputs, run_id, signer), signature):
        return "signature does not verify"
    if who.producers and signer not in who.producers:
        return f"signed by {signer!r}, who is not in cache_trusted_producers"
    return None


@dataclass(frozen=True)
class Entry:
    """A complete run with the stage's cache key that this agent may restore."""

    run_id: str
    start_ms: int
    tags: dict[str, str]
    signed: dict[str, str] | None  # the signed output hashes; None in an unsigned cache

    @property
    def producer(self) -> str:
        """The run that executed: a signed entry signs its own id; an unsigned one may be an
        old entry made by a restore, which names its producer."""
        if self.signed is not None:
            return self.run_id
        return self.tags.get(tag.RESTORED_FROM) or self.run_id


def choose(who: Trust, cache_key: str, found: Sequence[Mapping[str, Any]]
           ) -> tuple[Entry | None, list[str]]:
    """The oldest run of `found` this agent may restore (start time, then run id: every
    agent picks the same one), and a line per run passed over on the way. Pure."""
    skipped: list[str] = []
    for run in sorted(found, key=lambda r: (int(r["start"] or 0), str(r["run_id"]))):
        tags = dict(run["tags"])
        why = refusal(who, cache_key, run["run_id"], tags)
        if why is None:
            signed = signed_outputs(tags) if who.secret is not None else None
            return Entry(run["run_id"], int(run["start"] or 0), tags, signed), skipped
        skipped.append(f"run {run['run_id']}: {why}")
    return None, skipped


@dataclass(frozen=True)
class Hit:
    """A complete run with the stage's cache key, and its files fetched and verified."""

    run_id: str
    host: str
    start_ms: int
    files: dict[str, Path]  # declared output (or metrics file) -> the verified download
    notebook: Path
    producer: str = ""  # the run that executed (run_id, unless the entry was itself restored)
    freeze: str = ""  # the digest of the freeze the outputs were made in


def describe(hit: Hit) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(hit.start_ms / 1000))
    via = f", which restored run {hit.producer}" if hit.producer not in ("", hit.run_id) else ""
    return f"run {hit.run_id} ({hit.host or 'unknown host'}, {when}{via})"


def winner(config: Config, stage: Stage, uri: str, experiment_id: str, key: record.StageKey,
           step: str | None = "execute") -> Entry | None:
    """The entry every lookup of the stage's key returns: the oldest complete run this agent
    may restore. Runs passed over are named, one line each, under `step` (None: quietly).
    Raises TrackingError when the store does not answer."""
    who = trust(config)
    if who.problem():
        if step:
            console.say(f"{who.problem()}; executing", step, stage.name)
        return None
    wanted = key_for(config, stage, key)
    found = tracking.find_tagged_runs(uri, experiment_id, {
        tag.CACHE_KEY: wanted, tag.CACHE_COMPLETE: "true"}, CANDIDATES)
    entry, skipped = choose(who, wanted, found)
    for line in skipped if step else ():
        console.say(f"{line}; not restored", step, stage.name)
    return entry


def surely_missing(config: Config, stage: Stage, key: record.StageKey) -> bool:
    """No run in the local store carries the key (sound only as a quick "no": a store that
    cannot tell says False and the lookup asks MLflow)."""
    return tracking.tag_absent(config.resolved_tracking_uri(), tag.CACHE_KEY,
                               key_for(config, stage, key))


def lookup(config: Config, stage: Stage, uri: str, experiment_id: str,
           key: record.StageKey) -> Entry | None:
    """The stage key's winning entry; None on a miss, when the stage may not read the cache,
    or when the store does not answer (said once, then it runs)."""
    if not reads(config, stage):
        return None
    try:
        return winner(config, stage, uri, experiment_id, key)
    except MlopsError as err:
        console.say(f"the stage cache cannot be searched ({err}); executing", "execute",
                    stage.name)
        if tracking.transient(err):  # gone since its first contact: run without it
            tracking.mark_unreachable(uri, str(err))
        return None


def _download(stage: Stage, uri: str, found: Entry, folder: Path
              ) -> tuple[dict[str, Any], dict[str, Path], Path]:
    """The hashes to check against (the signed ones, or in an unsigned cache those of the
    run's audit.json), the declared outputs and the executed notebook, downloaded."""
    run_id = found.run_id
    recorded = found.signed
    if recorded is None:
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
    return recorded, files, notebook


def fetch(config: Config, stage: Stage, uri: str, found: Entry) -> Hit | None:
    """Download the run's declared outputs, metrics files and executed notebook into the
    state folder and verify each against the signed hashes (in an unsigned cache, those the
    run recorded); None (with a message) when anything is missing or differs. Only the
    stage's own declared paths are fetched, whatever else the run holds."""
    run_id = found.run_id
    folder = config.root / layout.restore_dir(stage)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        recorded, files, notebook = _download(stage, uri, found, folder)
    except (MlopsError, OSError, ValueError, AttributeError) as err:
        console.say(f"run {run_id} has this stage's key but cannot be restored ({err}); "
                    "executing", "execute", stage.name)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    got = audit.content_hashes(folder / "outputs", list(files))
    wrong = [rel for rel in files if got.get(rel) is None or got[rel] != recorded.get(rel)]
    if wrong:
        which = "signed" if found.signed is not None else "recorded"
        console.say(f"run {run_id} has this stage's key, but {', '.join(wrong)} differ from "
                    f"the hashes it {which}; discarded, executing", "execute", stage.name)
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return Hit(run_id, str(found.tags.get(tag.HOST, "")), found.start_ms, files, notebook,
               found.producer, str(found.tags.get(tag.KEY_FREEZE, "")))
