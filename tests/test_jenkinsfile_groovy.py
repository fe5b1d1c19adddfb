"""The generated Jenkinsfile run by Groovy (the version Jenkins embeds) against a mock of the
pipeline DSL (tests/data/jenkins_dsl.groovy), on a Linux and a Windows agent, with the
orchestrator's stamp stale and current: a chain's stages run in one doit process (cut only
where another chain waits), each stage once, after its own upstream stages and no later; a
failing stage stops its chain and the branches that wait for it; installs only behind the
stamp check; reports archived per doit run; secrets bound from credentials, never build
parameters. One JVM for every case."""

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
    cases = {"example": (example.graph, example.config.orchestrator, {}, []),
             "fork_and_join": (fork_and_join(), WHEEL, {"right": SLOW}, []),
             "example_fails": (example.graph, example.config.orchestrator, {},
                               ["feature_eng"]),
             "fork_and_join_fails": (fork_and_join(), WHEEL, {"right": SLOW}, ["left"])}
    jobs = []
    for name, (graph, orchestrator, delays, fails) in cases.items():
        (folder / name).write_text(jenkinsfile(graph, orchestrator), encoding="utf-8")
        jobs.append({"name": name, "path": str(folder / name), "delays": delays,
                     "fails": fails})
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


DOIT_RUN = re.compile(r"doit(?:\.exe)? run((?: [\"'][a-z0-9_-]+[\"'])+)$")


def doit_calls(events: list, shell: str) -> list[tuple[list[str], int, int]]:
    """Each `doit run` step: its stages, the index of its start and of its end."""
    started: dict[str, tuple[list[str], int]] = {}
    found = []
    for index, (kind, detail, thread) in enumerate(events):
        run = DOIT_RUN.search(str(detail))
        if run and kind == shell:
            started[thread] = (re.findall(r"[a-z0-9_-]+", run.group(1)), index)
        elif run and kind == f"end {shell}":
            names, start = started.pop(thread)
            found.append((names, start, index))
    return found


def doit_runs(events: list, shell: str) -> dict[str, list[int]]:
    """stage -> [index where its doit began it, index where that doit ended]: a stage is
    done, for the other branches, when its doit process ends."""
    ends = {name: end for names, _, end in doit_calls(events, shell) for name in names}
    found: dict[str, list[int]] = {}
    for index, (kind, detail, _) in enumerate(events):
        if kind == "doit stage":
            assert detail not in found, f"{detail} ran twice"
            found[detail] = [index, ends[detail]]
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
    assert sorted(doit) == sorted(graph.order)  # each exactly once
    together = {n: tuple(names) for names, _, _ in doit_calls(events, shell) for n in names}
    for stage, (start, _end) in doit.items():
        for up in graph.upstream[stage]:
            if together[up] == together[stage]:  # one doit: in order
                assert doit[up][0] < start, (stage, up)
            else:  # another doit (maybe another agent): it ended first
                assert doit[up][1] < start, (stage, up)


@pytest.mark.parametrize("mode", MODES)
def test_a_chain_is_one_doit_cut_only_where_another_chain_waits(runs, mode):
    shell = "sh" if "unix=true" in mode else "bat"
    calls = doit_calls(runs["example"][1][mode]["events"], shell)
    assert [names for names, _, _ in calls] == [["data_prep", "feature_eng", "train", "eval"]]
    calls = doit_calls(runs["fork_and_join"][1][mode]["events"], shell)
    # right and side wait for prep only: the first chain is cut after it
    assert sorted(names for names, _, _ in calls) == [
        ["join", "publish"], ["left", "left2"], ["prep"], ["right"], ["side"]]
    for names, start, _ in calls:
        (step,) = [e for e in in_context(runs["fork_and_join"][1][mode]["events"])
                   if e[0] == start]
        assert ("stage", " > ".join(names)) in step[4]  # one Jenkins stage per doit run
        assert ("timeout", {"time": 120 * len(names), "unit": "MINUTES"}) in step[4]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_stage_stops_its_chain_and_the_branches_waiting_for_it(runs, mode):
    shell = "sh" if "unix=true" in mode else "bat"
    run = runs["example_fails"][1][mode]
    assert run["failure"] and "exit code 1" in run["failure"]  # the build fails
    ran = [e[1] for e in run["events"] if e[0] == "doit stage"]
    assert ran == ["data_prep", "feature_eng"]  # doit stopped at the failing stage
    assert len(doit_calls(run["events"], shell)) == 1
    run = runs["fork_and_join_fails"][1][mode]
    assert run["failure"] and "exit code 1" in run["failure"]
    ran = [e[1] for e in run["events"] if e[0] == "doit stage"]
    assert sorted(ran) == ["left", "prep", "right", "side"]  # not left2, join, publish
    assert ["echo", "not run: join, publish (upstream left2 did not succeed)"] in [
        e[:2] for e in run["events"]]
    assert ".mlops/ci/left+left2/junit.xml" in [e[1] for e in run["events"]
                                                if e[0] == "junit"]  # kept all the same


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
        doit = [e for e in events if e[1] == shell and DOIT_RUN.search(str(e[2]))]
        assert doit
        for step in doit:
            assert any(k == "timeout" for k, _ in step[4])
            assert any(k == "stage" for k, _ in step[4])
            assert any(k == "node" for k, _ in step[4])


@pytest.mark.parametrize("case", CASES)
def test_each_doit_run_archives_under_its_own_name(runs, case):
    graph, found = runs[case]
    events = found["unix=true stamp=false"]["events"]
    kept = ["+".join(names) for names, _, _ in doit_calls(events, "sh")]
    archived = [e[1] for e in events if e[0] == "archiveArtifacts"]
    junit = [e[1] for e in events if e[0] == "junit"]
    assert len(archived) == len(set(archived)) == len(kept)
    assert sorted(junit) == sorted(f".mlops/ci/{k}/junit.xml" for k in kept)
    assert sorted(a.partition("/**,")[0] for a in archived) == sorted(
        f".mlops/ci/{k}" for k in kept)
    runs_kept = [p for a in archived for p in a.split(", ") if p.startswith(".mlops/runs/")]
    assert sorted(runs_kept) == sorted(f".mlops/runs/{s}/**/{f}" for s in graph.order
                                       for f in ("*.html", "audit.json"))
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
