"""The shared stage cache through the tracking server: a stale stage whose key matches a
complete run elsewhere is restored (verified, recorded, no kernel), and never from a run
that is incomplete, tampered with, or not allowed."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from mlops_tasks.base.errors import ConfigError
from mlops_tasks.project.config import Config, load_config
from mlops_tasks.project.spec import parse_stage
from mlops_tasks.run.record import StageKey
from mlops_tasks.run.stage_cache import cache_key, lookup, offers, reads

from .helpers import clean_env, closed_port, doit, make_project, ran

# -- deciding, as data ----------------------------------------------------------------------------

STAGE = parse_stage("name: s\nnotebook: nb.ipynb\noutputs: [b.txt, a.txt]\n", "s.yaml")


def test_the_cache_key_covers_outputs_and_platform():
    base = cache_key("k", ["a", "b"], ["m.json"], "linux-x86_64")
    assert base == cache_key("k", ["b", "a"], ["m.json"], "linux-x86_64")
    assert base != cache_key("k", ["a"], ["m.json"], "linux-x86_64")
    assert base != cache_key("k", ["a", "b"], [], "linux-x86_64")
    assert base != cache_key("k", ["a", "b"], ["m.json"], "win32-amd64")
    assert base != cache_key("k2", ["a", "b"], ["m.json"], "linux-x86_64")
    # the bytes agents on other machines and versions must agree on: when this changes,
    # CACHE_KEY_VERSION must change with it
    assert cache_key("k", ["a"], [], None) == \
        "45ac449459897880aac2a742d5d00137a3a704b7c8e9f86a44e8dd4481b3bf69"


@pytest.mark.parametrize(("setting", "flag", "read", "offer"), [
    ("read-write", True, True, True), ("read", True, True, False), ("off", True, False, False),
    ("read-write", False, False, False),
])
def test_who_reads_and_who_offers(tmp_path, setting, flag, read, offer):
    config = Config(root=tmp_path, stage_cache=setting)
    stage = parse_stage(f"name: s\nnotebook: nb.ipynb\ncache: {str(flag).lower()}\n", "s.yaml")
    assert (reads(config, stage), offers(config, stage)) == (read, offer)


def test_the_setting_and_its_override(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[tool.mlops_tasks]\nstage_cache = "read"\n')
    assert load_config(tmp_path).stage_cache == "read"
    monkeypatch.setenv("MLOPS_STAGE_CACHE", "off")
    assert load_config(tmp_path).stage_cache == "off"
    monkeypatch.setenv("MLOPS_STAGE_CACHE", "sometimes")
    with pytest.raises(ConfigError, match="stage_cache .or MLOPS_STAGE_CACHE. must be one of "
                                          "read-write, read, off; got 'sometimes'"):
        load_config(tmp_path)


def test_a_bad_cache_flag_names_the_spec():
    from mlops_tasks.base.errors import SpecError

    with pytest.raises(SpecError, match="'cache' must be true or false"):
        parse_stage("name: s\nnotebook: nb.ipynb\ncache: sometimes\n", "s.yaml")


def test_a_server_that_does_not_answer_means_executing(tmp_path, capsys, monkeypatch):
    for name, value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1"),  # what doit would set
                        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"),
                        ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true"),
                        ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")):
        monkeypatch.setenv(name, value)
    uri = f"http://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    found = lookup(Config(root=tmp_path), STAGE, uri, "1", StageKey("k", "f", "c", "p", "i"))
    assert found is None and time.monotonic() - t0 < 20  # gives up within seconds
    out = capsys.readouterr().out
    assert out.count("the stage cache cannot be searched") == 1 and "executing" in out


# -- two agents, one tracking server ----------------------------------------------------------


def executed(output: str) -> bool:
    return re.search(r"^execute:\S+: done in ", output, re.MULTILINE) is not None


def stage_run(client, stage: str, restored: bool | None = None):
    exp = client.get_experiment_by_name("test-pipeline")
    runs = client.search_runs([exp.experiment_id], f"tags.`mlops.stage` = '{stage}'",
                              order_by=["attributes.start_time DESC"])
    if restored is not None:
        runs = [r for r in runs if ("mlops.restored_from" in r.data.tags) == restored]
    return runs[0]


@pytest.mark.integration
def test_agent_b_restores_what_agent_a_ran(tmp_path, wheelhouse, mlflow_server):
    from mlflow.tracking import MlflowClient

    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    a = make_project(tmp_path / "agent-a" / "proj", wheelhouse)
    b = make_project(tmp_path / "b" / "work" / "space" / "proj", wheelhouse)
    first = doit(a, env=env)
    assert executed(first.stdout)
    second = doit(b, env=env)
    assert not executed(second.stdout), second.stdout  # no kernel started
    assert second.stdout.count("restored from run") == 2
    # nothing built for a restore: no venv, no kernelspec, no kernel log
    assert "building" not in second.stdout and not (b / ".venvs").exists()
    assert not (b / ".mlops" / "jupyter" / "kernels").exists()
    assert not list((b / ".mlops" / "logs").glob("*.log"))
    for rel in ("out/greeting.txt", "out/metrics.json"):
        assert (b / rel).read_bytes() == (a / rel).read_bytes()
    client = MlflowClient(mlflow_server.url)
    for stage in ("make", "use"):
        restored = stage_run(client, stage, restored=True)
        original = stage_run(client, stage, restored=False)
        assert restored.data.tags["mlops.restored_from"] == original.info.run_id
        assert restored.data.tags["mlops.stage_key"] == original.data.tags["mlops.stage_key"]
        assert restored.info.status == "FINISHED"
    assert doit(b, "audit", env=env).returncode == 0  # restored outputs audit like executed
    # B edits one notebook: only that stage executes; A, given the same edit, restores it
    edited = (b / "notebooks" / "use.ipynb").read_text().replace("scale = 1", "scale = 1  # b")
    (b / "notebooks" / "use.ipynb").write_text(edited)
    third = doit(b, env=env)
    assert executed(third.stdout) and ran(third.stdout) == {"execute:use", "log:use"}
    assert "venv:use: building" in third.stdout and "venv:make:" not in third.stdout
    (a / "notebooks" / "use.ipynb").write_text(edited)
    fourth = doit(a, env=env)
    assert not executed(fourth.stdout) and fourth.stdout.count("restored from run") == 1


@pytest.mark.integration
def test_runs_the_cache_must_not_use(tmp_path, wheelhouse, mlflow_server):
    from mlflow.tracking import MlflowClient

    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    a = make_project(tmp_path / "a", wheelhouse, with_use=False)
    b = make_project(tmp_path / "b", wheelhouse, with_use=False)
    client = MlflowClient(mlflow_server.url)
    # a different experiment keeps the other test's runs out of the way
    for root in (a, b):
        text = (root / "pyproject.toml").read_text()
        (root / "pyproject.toml").write_text(text.replace('"test-pipeline"', '"cache-rules"'))
    doit(a, env=env)
    exp = client.get_experiment_by_name("cache-rules").experiment_id
    (source,) = client.search_runs([exp])
    reader = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLOPS_STAGE_CACHE="read")

    def again(**extra: str) -> str:
        doit(b, "forget", "execute:make", "log:make", env=env)
        return doit(b, "run", "make", env={**reader, **extra}).stdout

    doit(b, "run", "venv:make", "kernel:make", env=env)
    assert executed(again(MLOPS_STAGE_CACHE="off"))
    spec = b / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text() + "cache: false\n")
    assert executed(again())
    spec.write_text(spec.read_text().replace("cache: false\n", ""))
    # whatever names the run's artifacts have, only the declared outputs are written
    evil = tmp_path / "elsewhere" / "evil.txt"
    evil.parent.mkdir()
    evil.write_text("x")
    client.log_artifact(source.info.run_id, str(evil), "outputs")
    client.log_artifact(source.info.run_id, str(evil), "outputs/out")  # beside the output
    restored = again()
    assert not executed(restored) and "restored from run" in restored
    assert sorted(p.name for p in (b / "out").iterdir()) == ["greeting.txt"]
    assert not (b / "evil.txt").exists() and not (b.parent / "evil.txt").exists()
    # a run without the completion tag (its upload did not finish) is never used
    client.delete_tag(source.info.run_id, "mlops.cache_complete")
    assert executed(again())
    client.set_tag(source.info.run_id, "mlops.cache_complete", "true")
    # a tampered artifact: the download is discarded, the stage executes
    (stored,) = Path(mlflow_server.folder / "artifacts").rglob(
        f"{source.info.run_id}/artifacts/outputs/out/greeting.txt")
    stored.write_text("tampered")
    tampered = again()
    assert "differ from the hashes it recorded; discarded, executing" in tampered
    assert executed(tampered) and (b / "out" / "greeting.txt").read_text() != "tampered"
    shutil.rmtree(b / ".mlops" / "restore", ignore_errors=True)


# -- the plan of `doit jenkinsfile`, run as separate agents -----------------------------------

FORK = {  # prep -> left, prep -> right: two waves, the second of two stages
    "prep": ("", "out/p.txt", "Path('out/p.txt').write_text('p')"),
    "left": ("out/p.txt", "out/l.txt",
             "Path('out/l.txt').write_text(Path('out/p.txt').read_text() + 'l')"),
    "right": ("out/p.txt", "out/r.txt",
              "Path('out/r.txt').write_text(Path('out/p.txt').read_text() + 'r')"),
}


def fork_project(root: Path, wheelhouse: Path) -> Path:
    from .helpers import git_commit_all, offline_pipeline, write_notebook

    offline_pipeline(root, wheelhouse, "fork")
    for name, (needs, makes, code) in FORK.items():
        write_notebook(root / "nb" / f"{name}.ipynb",
                       [(None, f"from pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
                               f"{code}")])
        spec = f"name: {name}\nnotebook: nb/{name}.ipynb\noutputs: [{makes}]\n"
        (root / "env_specs" / f"{name}.yaml").write_text(
            spec + (f"inputs: [{needs}]\n" if needs else ""))
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n")
    git_commit_all(root)
    return root


@pytest.mark.integration
def test_the_jenkinsfile_plan_runs_each_stage_once_across_agents(tmp_path, wheelhouse,
                                                                 mlflow_server):
    import subprocess

    from mlops_tasks.commands.jenkinsfile import chains, jenkinsfile
    from mlops_tasks.project.config import Orchestrator
    from mlops_tasks.project.load import load_project

    from .helpers import PYTHON

    env = clean_env(MLFLOW_TRACKING_URI=mlflow_server.url)
    plan = load_project(fork_project(tmp_path / "plan", wheelhouse)).graph
    branches = chains(plan)  # what the generated plan runs: a chain per agent
    assert branches == [((), ["prep", "left"]), (("prep",), ["right"])]
    # each chain's doit runs, cut after a stage another chain waits for: prep | left, right
    written = jenkinsfile(plan, Orchestrator("self", "-e ."))
    assert "runChain(done, [], [['prep'], ['left']])" in written
    assert "runChain(done, ['prep'], [['right']])" in written
    executions: dict[str, int] = {}
    agents = []
    for number, (_, chain) in enumerate(branches):  # in order: each waits for its upstream
        root = fork_project(tmp_path / f"agent-{number}", wheelhouse)
        agents.append(root)
        for name in chain:
            proc = subprocess.run([PYTHON, "-m", "doit", "run", name], cwd=root, env=env,
                                  text=True, capture_output=True, timeout=600, check=False)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, output[-3000:]
            for stage in FORK:
                if f"execute:{stage}: done in" in output:
                    executions[stage] = executions.get(stage, 0) + 1
            if number == 1:  # prep is restored there: no venv built, no kernel started
                assert "venv:prep: building" not in output and "restored from" in output
    assert executions == {"prep": 1, "left": 1, "right": 1}
    alone = fork_project(tmp_path / "alone", wheelhouse)
    doit(alone, env=clean_env(MLFLOW_TRACKING_URI=mlflow_server.url, MLOPS_STAGE_CACHE="off"))
    for rel in ("out/p.txt", "out/l.txt", "out/r.txt"):
        made = [root / rel for root in agents if (root / rel).exists()]
        assert made and all(p.read_bytes() == (alone / rel).read_bytes() for p in made), rel
