"""A stage cache you can trust: signed entries from named producers, one winner per key
(the oldest), restored runs that never become entries and point at the run that executed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mlops_tasks.base.errors import ConfigError
from mlops_tasks.project.config import Config, load_config
from mlops_tasks.project.spec import parse_stage
from mlops_tasks.run import log, stage_cache
from mlops_tasks.run.stage_cache import Entry, Trust, choose, entry_tags, refusal, sign, trust
from mlops_tasks.tracking import tags as tag

from .helpers import clean_env, doit, make_project, set_config, write_notebook
from .run.test_record import execute_record

SECRET = b"jenkins-credential"
OUTPUTS = {"models/m.pkl": "o" * 64}
CI = Trust(SECRET, "ci-agent-1", ("ci-agent-1",))


def entry(run_id: str, start: int, who: Trust = CI, outputs: dict | None = None,
          signed_as: str | None = None) -> dict:
    """A search result for a complete run, signed by `who` (no secret: unsigned)."""
    tags = entry_tags(who, "key", outputs or OUTPUTS, signed_as or run_id)
    return {"run_id": run_id, "start": start, "tags": tags}


# -- signing and verifying, as data ---------------------------------------------------------


def test_a_signed_entry_verifies_and_any_change_breaks_it():
    good = entry("r1", 1)["tags"]
    assert refusal(CI, "key", "r1", good) is None
    assert good[tag.CACHE_COMPLETE] == "true" and list(good)[-1] == tag.CACHE_COMPLETE
    assert json.loads(good[tag.CACHE_OUTPUTS]) == OUTPUTS
    forged = {**good, tag.CACHE_OUTPUTS: json.dumps({"models/m.pkl": "e" * 64})}
    assert refusal(CI, "key", "r1", forged) == "signature does not verify"
    assert refusal(CI, "key", "r2", good) == "signature does not verify"  # tags copied
    assert refusal(CI, "other-key", "r1", good) == "signature does not verify"
    assert refusal(CI, "key", "r1", {**good, tag.CACHE_SIGNER: "ci-agent-2"}) == \
        "signature does not verify"
    other_key = Trust(b"guessed", "ci-agent-1")
    assert refusal(other_key, "key", "r1", good) == "signature does not verify"
    assert refusal(CI, "key", "r1", {**good, tag.CACHE_OUTPUTS: "not json"}) == \
        "signature does not verify"
    unsigned = entry_tags(Trust(None, "laptop"), "key", OUTPUTS, "r1")
    assert set(unsigned) == {tag.CACHE_KEY, tag.CACHE_COMPLETE}
    assert refusal(CI, "key", "r1", unsigned) == "no signature"
    # a plain HMAC-SHA256 over canonical JSON: every agent, on any version, must agree on
    # these bytes (when they change, SIGNATURE_VERSION changes with them)
    assert stage_cache.signed_bytes("key", {"a": "b"}, "r", "s") == (
        b'{"cache_key":"key","outputs":{"a":"b"},"run_id":"r","signer":"s","version":1}')
    assert sign(b"k", "key", {"a": "b"}, "r", "s") == \
        "e94f4a8deefda263806326bb5acb54c51d11f48286f0a35e8588a48a82cfc7bb"


def test_only_named_producers_are_trusted_and_no_key_trusts_everyone():
    laptop = entry("r1", 1, Trust(SECRET, "laptop-9"))["tags"]
    assert refusal(CI, "key", "r1", laptop) == \
        "signed by 'laptop-9', who is not in cache_trusted_producers"
    assert refusal(Trust(SECRET, "ci-agent-1"), "key", "r1", laptop) is None  # any key holder
    anyone = Trust(None, "dev")
    assert refusal(anyone, "key", "r1", {tag.CACHE_KEY: "key"}) is None
    named_without_key = Trust(None, "dev", ("ci-agent-1",))
    assert "MLOPS_CACHE_KEY is not" in (named_without_key.problem() or "")
    assert refusal(named_without_key, "key", "r1", laptop) is not None
    assert "jenkins" not in repr(CI)  # the secret never reaches a log line


def test_trust_comes_from_the_environment_and_the_setting(tmp_path):
    config = Config(root=tmp_path, cache_trusted_producers=("ci-agent-1",))
    found = trust(config, {"MLOPS_CACHE_KEY": "s3cret", "MLOPS_CACHE_SIGNER": "ci-agent-1"})
    assert found == Trust(b"s3cret", "ci-agent-1", ("ci-agent-1",))
    assert trust(config, {}).secret is None and trust(config, {}).signer  # the host name
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlops_tasks]\ncache_trusted_producers = ["ci-agent-1", "ci-agent-2"]\n')
    assert load_config(tmp_path).cache_trusted_producers == ("ci-agent-1", "ci-agent-2")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlops_tasks]\ncache_trusted_producers = "ci-agent-1"\n')
    with pytest.raises(ConfigError, match="cache_trusted_producers must be a list of signer"):
        load_config(tmp_path)


def test_the_oldest_usable_entry_wins_every_lookup():
    runs = [entry("new", 30), entry("old", 10), entry("tie-b", 20), entry("tie-a", 20)]
    chosen, skipped = choose(CI, "key", runs)
    assert chosen is not None and chosen.run_id == "old" and skipped == []
    assert chosen.signed == OUTPUTS and chosen.producer == "old"
    forged = {**entry("forged", 1)["tags"], tag.CACHE_SIGNATURE: "0" * 64}
    unsigned = entry("plain", 2, Trust(None, "x"))
    chosen, skipped = choose(CI, "key", [*runs, {"run_id": "forged", "start": 1,
                                                 "tags": forged}, unsigned])
    assert chosen is not None and chosen.run_id == "old"
    assert skipped == ["run forged: signature does not verify", "run plain: no signature"]
    chosen, _ = choose(CI, "key", [r for r in runs if r["run_id"] != "old"])
    assert chosen is not None and chosen.run_id == "tie-a"
    assert choose(CI, "key", []) == (None, [])


def test_an_old_unsigned_entry_made_by_a_restore_names_its_producer():
    made_by_restore = Entry("b-run", 1, {tag.RESTORED_FROM: "a-run"}, None)
    assert made_by_restore.producer == "a-run"
    assert Entry("a-run", 1, {tag.RESTORED_FROM: "x"}, OUTPUTS).producer == "a-run"


# -- what log:S offers ------------------------------------------------------------------------

STAGE = parse_stage("name: s\nnotebook: nb.ipynb\noutputs: [models/m.pkl]\n", "s.yaml")


def test_a_restored_run_is_never_offered(tmp_path, monkeypatch):
    monkeypatch.setattr(stage_cache, "winner", lambda *a, **k: None)
    config = Config(root=tmp_path)
    restored = execute_record(run_id="r2", restored_from="r1")
    assert log.cache_tags(config, STAGE, restored, None, {}, "uri", "r2") == {}
    executed = execute_record(run_id="r2")
    assert log.cache_tags(config, STAGE, executed, None, {}, "uri", "r2")[
        tag.CACHE_COMPLETE] == "true"


def test_a_key_that_got_an_entry_meanwhile_keeps_it(tmp_path, monkeypatch):
    config, done = Config(root=tmp_path), execute_record(run_id="late")
    monkeypatch.setattr(stage_cache, "winner",
                        lambda *a, **k: Entry("first", 1, {}, None))
    assert log.cache_tags(config, STAGE, done, None, {}, "uri", "late") == {
        tag.CACHE_SUPERSEDED_BY: "first"}
    monkeypatch.setattr(stage_cache, "winner", lambda *a, **k: None)
    monkeypatch.setenv("MLOPS_CACHE_KEY", SECRET.decode())
    monkeypatch.setenv("MLOPS_CACHE_SIGNER", "ci-agent-1")
    offered = log.cache_tags(config, STAGE, done, None, {}, "uri", "late")
    key = stage_cache.key_for(config, STAGE, done.key)
    assert refusal(CI, key, "late", offered) is None


# -- agents against one tracking server -----------------------------------------------------


def executed(output: str) -> bool:
    return re.search(r"^execute:\S+: done in ", output, re.MULTILINE) is not None


def stage_runs(client, experiment: str, stage: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], f"tags.`mlops.stage` = '{stage}'",
                              order_by=["attributes.start_time ASC"])


def forge(client, exp_id: str, source, start: int, content: str, folder: Path,
          tags: dict[str, str]) -> str:
    """A complete entry made through the server's API alone: the source run's key, a file of
    the forger's choosing and an audit.json whose hash matches it."""
    from mlops_tasks.run.provenance import content_hashes

    run = client.create_run(exp_id, start_time=start, tags={
        "mlops.stage": "make", tag.CACHE_KEY: source.data.tags[tag.CACHE_KEY]})
    work = folder / run.info.run_id
    (work / "out").mkdir(parents=True)
    (work / "out" / "greeting.txt").write_text(content)
    hashes = content_hashes(work, ["out/greeting.txt"])
    (work / "audit.json").write_text(json.dumps({"outputs": hashes}))
    write_notebook(work / "make.ipynb", [(None, "pass")])
    client.log_artifact(run.info.run_id, str(work / "out" / "greeting.txt"), "outputs/out")
    client.log_artifact(run.info.run_id, str(work / "audit.json"))
    client.log_artifact(run.info.run_id, str(work / "make.ipynb"), "notebook")
    signed = tags or {}
    if signed.get("sign-as"):
        who = Trust(SECRET, signed["sign-as"])
        signed = entry_tags(who, source.data.tags[tag.CACHE_KEY], hashes, run.info.run_id)
    for name, value in {**signed, tag.CACHE_COMPLETE: "true"}.items():
        client.set_tag(run.info.run_id, name, value)
    client.set_terminated(run.info.run_id, "FINISHED")
    return str(run.info.run_id)


@pytest.mark.integration
def test_agents_restore_only_what_they_trust(tmp_path, wheelhouse, mlflow_server):
    from mlflow.tracking import MlflowClient

    signer = {"MLOPS_CACHE_KEY": SECRET.decode()}
    a = make_project(tmp_path / "a", wheelhouse)
    b = make_project(tmp_path / "b", wheelhouse)
    for root in (a, b):
        set_config(root, experiment="trust")
    set_config(b, cache_trusted_producers=["ci-agent-1"])
    ci = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLOPS_CACHE_SIGNER="ci-agent-1",
                   **signer)
    assert executed(doit(a, env=ci).stdout)
    client = MlflowClient(mlflow_server.url)
    (a_make,), (a_use,) = stage_runs(client, "trust", "make"), stage_runs(client, "trust", "use")
    assert a_use.data.metrics["logged_by_notebook"] == 42 and tag.CACHE_SIGNATURE in \
        a_use.data.tags
    # B holds the key and trusts ci-agent-1: both stages restored, pointing at A's runs
    second = doit(b, env={**ci, "MLOPS_CACHE_SIGNER": "ci-agent-2"})
    assert not executed(second.stdout), second.stdout
    b_use = stage_runs(client, "trust", "use")[-1]
    assert b_use.data.tags[tag.RESTORED_FROM] == a_use.info.run_id
    assert b_use.data.metrics == a_use.data.metrics  # the notebook's own metric included
    assert tag.CACHE_KEY not in b_use.data.tags and tag.CACHE_COMPLETE not in b_use.data.tags
    audit = doit(b, "audit", env=ci).stdout
    assert f"restored from run {a_use.info.run_id}" in audit, audit
    # older entries: unsigned, with A's signature copied, signed by an untrusted producer
    exp_id, folder = a_make.info.experiment_id, tmp_path / "forger"
    copied = {k: v for k, v in a_make.data.tags.items() if k.startswith("mlops.cache_")}
    plain = forge(client, exp_id, a_make, 1000, "pwned", folder, {})
    copy = forge(client, exp_id, a_make, 2000, "pwned", folder, copied)
    laptop = forge(client, exp_id, a_make, 3000, "pwned", folder, {"sign-as": "laptop-9"})

    def make_again(env: dict[str, str]) -> str:
        doit(b, "forget", "execute:make", "log:make", env=env)
        return doit(b, "run", "make", env=env).stdout

    keyed = make_again(ci)
    for line in (f"run {plain}: no signature", f"run {copy}: signature does not verify",
                 f"run {laptop}: signed by 'laptop-9', who is not in cache_trusted_producers",
                 f"restored from run {a_make.info.run_id}"):
        assert line in keyed, keyed
    assert (b / "out" / "greeting.txt").read_text() == (a / "out" / "greeting.txt").read_text()
    # without a key the cache trusts every writer: the oldest entry, the forged one, wins;
    # the run that restored it is not offered again
    set_config(b, cache_trusted_producers=None)
    unkeyed = make_again(clean_env(MLFLOW_TRACKING_URI=mlflow_server.url))
    assert f"restored from run {plain}" in unkeyed and not executed(unkeyed)
    assert (b / "out" / "greeting.txt").read_text() == "pwned"
    laundered = stage_runs(client, "trust", "make")[-1]
    assert laundered.data.tags[tag.RESTORED_FROM] == plain
    assert tag.CACHE_COMPLETE not in laundered.data.tags


def test_a_notebook_never_sees_the_signing_key(tmp_path):
    from mlops_tasks.run.kernel_launch import kernel_manager

    km = kernel_manager("s", "k", tmp_path, {}, (), None, tmp_path)
    assert stage_cache.SIGNING_KEY_ENV in km.drop_env
