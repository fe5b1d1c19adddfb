"""The generated Jenkinsfile run by Groovy (the version Jenkins embeds) against a mock of the
pipeline DSL (tests/data/jenkins_dsl.groovy), on a Linux and a Windows agent, with the
orchestrator's stamp stale and current: each stage's doit runs once, after its own upstream
stages and no later; installs only behind the stamp check; reports archived per stage;
secrets bound from credentials, never build parameters. One JVM for every case."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlops_tasks.commands.jenkinsfile import jenkinsfile
from mlops_tasks.project.config import Orchestrator
from mlops_tasks.project.graph import Graph, build_graph
from mlops_tasks.project.load import load_project
from mlops_tasks.project.spec import parse_stage

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parents[1]
WHEEL = Orchestrator("wheel", "wheels_cache/mlops_tasks-0.1.0-py3-none-any.whl")
SLOW = 400  # ms the slow stage `right` takes; every other stage takes 1


def fork_and_join() -> Graph:
    """7 stages: prep feeds left > left2, right (slow) and side; join reads all three."""
    specs = {"prep": "outputs: [p.txt]",
             "left": "inputs: [p.txt]\noutputs: [l.txt]",
             "left2": "inputs: [l.txt]\noutputs: [l2.txt]",
             "right": "inputs: [p.txt]\noutputs: [r.txt]",
             "side": "inputs: [p.txt]\noutputs: [s.txt]",
             "join": "inputs: [l2.txt, r.txt, s.txt, p.txt]\noutputs: [j.txt]",
             "publish": "inputs: [j.txt]\noutputs: [out.txt]"}
    return build_graph([parse_stage(f"name: {n}\nnotebook: {n}.ipynb\n{s}\n", f"{n}.yaml")
                        for n, s in specs.items()])


def groovy_env() -> dict[str, str]:
    """The environment with a JAVA_HOME that exists (Debian's launcher falls back to a
    default-java link that a lone openjdk package does not make)."""
    env = dict(os.environ)
    java = shutil.which("java")
    if not Path(env.get("JAVA_HOME") or "/nonexistent", "bin", "java").exists() and java:
        env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    if shutil.which("groovy") is None:
        pytest.skip("groovy is not installed (Debian: apt-get install groovy); "
                    "the generated Jenkinsfile is not run")
    folder = tmp_path_factory.mktemp("jenkinsfiles")
    example = load_project(ROOT)
    cases = {"example": (example.graph, example.config.orchestrator, {}),
             "fork_and_join": (fork_and_join(), WHEEL, {"right": SLOW})}
    jobs = []
    for name, (graph, orchestrator, delays) in cases.items():
        (folder / name).write_text(jenkinsfile(graph, orchestrator), encoding="utf-8")
        jobs.append({"name": name, "path": str(folder / name), "delays": delays})
    (folder / "jobs.json").write_text(json.dumps(jobs), encoding="utf-8")
    done = subprocess.run(["groovy", str(DATA / "jenkins_mock_run.groovy"),
                           str(folder / "jobs.json")], capture_output=True, text=True,
                          env=groovy_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    return {name: (cases[name][0], found[name]) for name in cases}


def in_context(events: list) -> list[tuple[int, str, object, str, list]]:
    """Each event with its index and the steps enclosing it on its own thread."""
    stacks: dict[str, list] = {}
    found = []
    for index, (kind, detail, thread) in enumerate(events):
        stack = stacks.setdefault(thread, [])
        if kind.startswith("end ") and kind not in ("end sh", "end bat"):
            stack.pop()
            continue
        found.append((index, kind, detail, thread, list(stack)))
        if kind in ("stage", "node", "timeout", "retry", "dir", "withCredentials"):
            stack.append((kind, detail))
    return found


def doit_runs(events: list, shell: str) -> dict[str, list[int]]:
    """stage -> [index of its doit's start, index of its end]."""
    found: dict[str, list[int]] = {}
    for index, (kind, detail, _) in enumerate(events):
        run = re.search(r"doit(?:\.exe)? run [\"']([a-z0-9_-]+)[\"']", str(detail))
        if run and kind in (shell, f"end {shell}"):
            found.setdefault(run.group(1), []).append(index)
    return found


CASES = ["example", "fork_and_join"]
MODES = ["unix=true stamp=false", "unix=false stamp=false", "unix=true stamp=true",
         "unix=false stamp=true"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_each_stage_runs_once_after_its_own_upstream(runs, case, mode):
    graph, found = runs[case]
    run = found[mode]
    assert run["failure"] is None, run["failure"]
    shell = "sh" if "unix=true" in mode else "bat"
    events = run["events"]
    assert not [e for e in events if e[0] == ("bat" if shell == "sh" else "sh")]
    doit = doit_runs(events, shell)
    assert sorted(doit) == sorted(graph.order)
    for stage, (start, _end) in doit.items():  # exactly once: one start, one end
        for up in graph.upstream[stage]:
            assert doit[up][1] < start, (stage, up)


def test_a_stage_starts_when_its_own_upstream_is_done_not_its_wave(runs):
    graph, found = runs["fork_and_join"]
    assert graph.waves()[1] == ["left", "right", "side"]  # left2 is a wave later than right
    for mode in MODES:
        doit = doit_runs(found[mode]["events"], "sh" if "unix=true" in mode else "bat")
        assert doit["left2"][0] < doit["right"][1], mode  # right (slow) is still running
        assert doit["join"][0] > doit["right"][1]


def test_a_chain_runs_on_one_agent(runs):
    graph, found = runs["example"]
    events = found["unix=true stamp=false"]["events"]
    assert [e[1] for e in events if e[0] == "node"] == ["mlops"]  # the 4-stage chain
    events = runs["fork_and_join"][1]["unix=true stamp=false"]["events"]
    nodes = {e[2] for e in events if e[0] == "node"}
    assert len(nodes) == 4  # prep > left > left2, right, side, join > publish


@pytest.mark.parametrize("mode", MODES)
def test_the_install_runs_only_behind_a_stale_stamp_and_is_retried(runs, mode):
    shell = "sh" if "unix=true" in mode else "bat"
    for case in CASES:
        events = in_context(runs[case][1][mode]["events"])
        checks = [e for e in events if e[1] == shell and str(e[2]).endswith('" check')]
        installs = [e for e in events if e[1] == shell and " -m pip install " in str(e[2])]
        writes = [e for e in events if e[1] == shell and str(e[2]).endswith('" write')]
        nodes = [e for e in events if e[1] == "node"]
        assert nodes and len(checks) == len(nodes)
        if "stamp=true" in mode:
            assert installs == [] and writes == []
            continue
        assert len(installs) == len(writes) == len(nodes)
        for node in nodes:  # on each agent: check, install (retried), write the stamp
            (check, install, write) = [[e for e in found if e[3] == node[3]]
                                       for found in (checks, installs, writes)]
            assert check[0][0] < install[0][0] < write[0][0]
            assert ("retry", 2) in install[0][4]
        for stage in runs[case][0].order:
            (doit,) = [e for e in events if e[1] == shell and re.search(
                f"doit(\\.exe)? run [\"']{stage}[\"']", str(e[2]))]
            assert any(k == "timeout" for k, _ in doit[4]), stage
            assert ("stage", stage) in doit[4]


@pytest.mark.parametrize("case", CASES)
def test_each_stage_archives_under_its_own_name(runs, case):
    graph, found = runs[case]
    events = found["unix=true stamp=false"]["events"]
    archived = [e[1] for e in events if e[0] == "archiveArtifacts"]
    junit = [e[1] for e in events if e[0] == "junit"]
    assert len(archived) == len(set(archived)) == len(graph.order)
    assert sorted(junit) == sorted(f".mlops/ci/{s}/junit.xml" for s in graph.order)
    assert sorted(a.partition("/**,")[0] for a in archived) == sorted(
        f".mlops/ci/{s}" for s in graph.order)
    assert not [a for a in archived if ".mlops/reports" in a]
    written = [e[1] for e in events if e[0] == "writeFile"]
    assert len(written) == len(set(written))


def test_secrets_are_bound_from_credentials_never_parameters(runs):
    _, found = runs["fork_and_join"]
    for mode in MODES:
        events = in_context(found[mode]["events"])
        parameters = {e[2][1]["name"] for e in events if e[1] == "parameter"}
        assert parameters >= {"MLFLOW_CREDENTIALS_ID", "STAGE_TIMEOUT_MINUTES",
                              "BUILD_TIMEOUT_MINUTES", "AGENT_LABEL"}
        assert not parameters & {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN",
                                 "MLOPS_CACHE_KEY"}
        assert "MLFLOW_TRACKING_URI" not in {e[2][0] for e in events if e[1] == "environment"}
        bound = [e for e in events if e[1] == "withCredentials"]
        assert bound and all(e[2] == [{"string": {"credentialsId": "mlflow-tracking-uri",
                                                  "variable": "MLFLOW_TRACKING_URI"}}]
                             for e in bound)
        for e in events:
            if e[1] in ("sh", "bat") and " run " in str(e[2]):
                assert any(k == "withCredentials" for k, _ in e[4])


def test_builds_never_overlap_and_have_a_timeout(runs):
    _, found = runs["example"]
    options = [e[1] for e in found["unix=false stamp=true"]["events"] if e[0] == "option"]
    assert ["disableConcurrentBuilds"] in options
    assert ["timeout", {"time": 360, "unit": "MINUTES"}] in options
