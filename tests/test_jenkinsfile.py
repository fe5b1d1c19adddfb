"""The Jenkinsfile: TARGET is checked with the spec's name rule and quoted, the console is
UTF-8, the orchestrator's Python is checked against requires-python, offline installs are
used when the cache holds wheels."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_tasks.base.errors import ConfigError
from mlops_tasks.project.config import Config, Orchestrator
from mlops_tasks.project.spec import NAME_RE

JENKINSFILE = (Path(__file__).resolve().parents[1] / "Jenkinsfile").read_text(encoding="utf-8")


def test_target_is_validated_with_the_spec_name_rule():
    (rule,) = re.findall(r"params\.TARGET ==~ /([^/]+)/", JENKINSFILE)
    assert f"^{rule}$" == NAME_RE.pattern
    for line in JENKINSFILE.splitlines():
        if "+ params.TARGET +" in line:  # pasted into a command line: always quoted
            assert re.search(r"""'run "' \+ params\.TARGET \+ '"'|"run '" \+ params\.TARGET"""
                             r""" \+ "'\"""", line), line


def test_console_is_utf8_and_installs_go_offline_with_a_filled_cache():
    assert "PYTHONUTF8 = '1'" in JENKINSFILE
    assert JENKINSFILE.count("--no-index --find-links wheels_cache -e .") == 2
    assert JENKINSFILE.count("{") == JENKINSFILE.count("}")  # balanced Groovy blocks


def version_check() -> str:
    (script,) = re.findall(r"sh '''(python3 -c .*?)'''", JENKINSFILE)
    return script


@pytest.mark.skipif(os.name == "nt", reason="runs the Linux agent's sh step")
def test_the_linux_python_check_runs(tmp_path):
    ok = subprocess.run(["bash", "-c", version_check()], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    # a real interpreter, not a pyenv shim (a shim named python3 dispatches by its name)
    old = next((str(p) for p in Path.home().glob(".pyenv/versions/3.[89]*/bin/python3")),
               shutil.which("python3.9") or shutil.which("python3.8"))
    if old is None:
        pytest.skip("no Python older than 3.10 to stand in for an old agent")
    (tmp_path / "python3").symlink_to(old)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    bad = subprocess.run(["bash", "-c", version_check()], capture_output=True, text=True,
                         env=env)
    assert bad.returncode == 1
    assert "mlops-tasks needs Python 3.10 or newer (requires-python); python3 on PATH is 3." \
        in bad.stderr


# -- `doit jenkinsfile`: the stage graph spread over agents -----------------------------------


def diamond():
    from mlops_tasks.project.graph import build_graph
    from mlops_tasks.project.spec import parse_stage

    specs = {"prep": "outputs: [p.txt]", "left": "inputs: [p.txt]\noutputs: [l.txt]",
             "right": "inputs: [p.txt]\noutputs: [r.txt]",
             "join": "inputs: [l.txt, r.txt]\noutputs: [j.txt]"}
    return build_graph([parse_stage(f"name: {n}\nnotebook: {n}.ipynb\n{s}\n", f"{n}.yaml")
                        for n, s in specs.items()])


def test_waves_group_stages_that_can_run_side_by_side():
    assert diamond().waves() == [["prep"], ["left", "right"], ["join"]]


WHEEL = Orchestrator("wheel", "wheels_cache/mlops_tasks-0.1.0-py3-none-any.whl")


def graph_of(**specs: str):
    from mlops_tasks.project.graph import build_graph
    from mlops_tasks.project.spec import parse_stage

    return build_graph([parse_stage(f"name: {n}\nnotebook: {n}.ipynb\n{s}\n", f"{n}.yaml")
                        for n, s in specs.items()])


def test_a_chain_with_a_shortcut_edge_runs_on_one_agent():
    from mlops_tasks.commands.jenkinsfile import chains, direct_upstream

    # the example's shape: eval reads what feature_eng and train write
    graph = graph_of(a="outputs: [a.txt]", b="inputs: [a.txt]\noutputs: [b.txt]",
                     c="inputs: [b.txt]\noutputs: [c.txt]",
                     d="inputs: [b.txt, c.txt]\noutputs: [d.txt]")
    assert graph.upstream["d"] == ("b", "c")
    assert direct_upstream(graph)["d"] == ("c",)  # waiting for c waits for b
    assert chains(graph) == [((), ["a", "b", "c", "d"])]


def test_a_fork_continues_on_the_agent_of_its_first_branch_and_a_join_waits_for_all():
    from mlops_tasks.commands.jenkinsfile import chains

    assert chains(diamond()) == [((), ["prep", "left"]), (("prep",), ["right"]),
                                 (("left", "right"), ["join"])]


def test_a_chain_is_one_doit_run_cut_after_a_stage_another_chain_waits_for():
    from mlops_tasks.commands.jenkinsfile import doit_runs, plan

    line = graph_of(a="outputs: [a.txt]", b="inputs: [a.txt]\noutputs: [b.txt]",
                    c="inputs: [b.txt]\noutputs: [c.txt]")
    assert plan(line) == [((), [["a", "b", "c"]])]  # one process for the whole chain
    assert plan(diamond()) == [((), [["prep"], ["left"]]), (("prep",), [["right"]]),
                               (("left", "right"), [["join"]])]
    assert doit_runs(["a", "b", "c", "d"], {"b", "d", "x"}) == [["a", "b"], ["c", "d"]]
    assert doit_runs(["a"], set()) == [["a"]]


def test_the_generated_jenkinsfile_runs_each_chain_as_a_branch_that_waits_for_its_upstream():
    from mlops_tasks.commands.jenkinsfile import jenkinsfile

    text = jenkinsfile(diamond(), WHEEL)
    # right waits for prep: the first chain's doit run is cut after prep
    assert "          branches['prep > left'] = { runChain(done, [], [['prep'], ['left']]) }\n" \
        in text
    assert "branches['right'] = { runChain(done, ['prep'], [['right']]) }" in text
    assert "branches['join'] = { runChain(done, ['left', 'right'], [['join']]) }" in text
    assert text.count("  parallel branches\n") == 1
    assert "waitUntil { pending(done, upstream) == 0 }" in text
    assert "//   one agent: join (after left, right)" in text
    assert "node(setting('AGENT_LABEL', 'mlops'))" in text and "checkout scm" in text
    assert "//   one agent: prep > left: doit run prep | doit run left" in text
    assert ".venv/bin/doit run${quoted}" in text and "doit.exe run${quoted}" in text
    assert "\" '${name}'\"" in text and '" \\"${name}\\""' in text and "isUnix()" in text
    assert "PYTHONUTF8 = '1'" in text and "--no-index --find-links wheels_cache" in text
    assert "disableConcurrentBuilds()" in text and "retry(2) {" in text
    assert "string(name: 'MLFLOW_TRACKING_URI'" not in text  # a secret is no parameter
    assert "variable: 'MLFLOW_TRACKING_URI'" in text and "variable: 'MLOPS_CACHE_KEY'" in text
    assert text.count("{") == text.count("}")  # balanced Groovy blocks


def stamp(text: str, word: str) -> str:
    """The generated sh step that checks or writes the orchestrator's stamp, as sh runs it."""
    (step,) = re.findall(r"sh\(?(?:script: )? ?'(\.venv/bin/python -c .*? " + word + ")'", text)
    return step.replace("\\'", "'")


@pytest.mark.skipif(os.name == "nt", reason="runs the Linux agent's sh step")
def test_the_orchestrator_stamp_matches_until_pyproject_or_the_wheel_changes(tmp_path):
    from mlops_tasks.commands.jenkinsfile import jenkinsfile

    text = jenkinsfile(diamond(), WHEEL)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / ".venv")],
                   check=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n", encoding="utf-8")
    (tmp_path / WHEEL.requirement).parent.mkdir()
    (tmp_path / WHEEL.requirement).write_bytes(b"PK1")

    def sh(word: str) -> int:
        return subprocess.run(["sh", "-c", stamp(text, word)], cwd=tmp_path).returncode

    assert sh("check") == 1  # a fresh agent installs
    assert sh("write") == 0 and sh("check") == 0  # then skips the install
    assert (tmp_path / ".venv" / "mlops-orchestrator.sha256").is_file()
    (tmp_path / WHEEL.requirement).write_bytes(b"PK2")  # another wheel: install again
    assert sh("check") == 1
    assert sh("write") == 0 and sh("check") == 0
    (tmp_path / "pyproject.toml").write_text("[project]\n# pins\n", encoding="utf-8")
    assert sh("check") == 1
    other = jenkinsfile(diamond(), WHEEL, "offline")  # another install command
    subprocess.run(["sh", "-c", stamp(text, "write")], cwd=tmp_path, check=True)
    assert subprocess.run(["sh", "-c", stamp(other, "check")], cwd=tmp_path).returncode == 1


def test_agents_install_the_orchestrator_from_the_one_setting():
    from mlops_tasks.commands.jenkinsfile import jenkinsfile

    text = jenkinsfile(diamond(), WHEEL, "offline")
    assert "-e ." not in text  # a pipeline project is not a Python package
    assert ("sh '.venv/bin/python -m pip install --no-index --find-links wheels_cache "
            '"wheels_cache/mlops_tasks-0.1.0-py3-none-any.whl"\'') in text
    assert "// mlops-tasks comes from the wheel wheels_cache/mlops_tasks-0.1.0" in text
    index = Orchestrator("index", "mlops-tasks==0.1.0", "https://pypi.corp.example/simple")
    online = jenkinsfile(diamond(), index, "online")
    assert ('pip install --index-url https://pypi.corp.example/simple --find-links '
            'wheels_cache "mlops-tasks==0.1.0"') in online
    own = jenkinsfile(diamond(), Orchestrator("self", "-e ."))
    assert ".venv/bin/python -m pip install --no-index --find-links wheels_cache -e . || " \
           ".venv/bin/python -m pip install --find-links wheels_cache -e ." in own


def test_a_project_without_the_setting_or_its_wheel_is_refused(tmp_path):
    from mlops_tasks.commands.jenkinsfile import orchestrator_of

    with pytest.raises(ConfigError) as unset:
        orchestrator_of(Config(tmp_path))
    assert "pyproject.toml: [tool.mlops_tasks] has no orchestrator" in str(unset.value)
    assert "mlops-tasks init" in str(unset.value)
    with pytest.raises(ConfigError) as missing:
        orchestrator_of(Config(tmp_path, orchestrator=WHEEL))
    assert "no such file in the project" in str(missing.value)
    (tmp_path / WHEEL.requirement).parent.mkdir()
    (tmp_path / WHEEL.requirement).write_bytes(b"PK")
    assert orchestrator_of(Config(tmp_path, orchestrator=WHEEL)) == WHEEL


def parameter_names(notebook: Path) -> set[str]:
    import ast
    import json

    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    (cell,) = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def test_the_profile_pull_requests_run_is_defined_and_makes_a_smaller_run():
    from mlops_tasks.project.load import load_project

    project = load_project(Path(__file__).resolve().parents[1])
    named = set(re.findall(r"profile=([a-z0-9_-]+)", JENKINSFILE))
    assert named == {"smoke"}
    changed = {}
    for stage in project.stages:
        for profile, overrides in stage.profiles.items():
            notebook = project.config.root / stage.notebook
            assert set(overrides) <= parameter_names(notebook), stage.name
            changed[(profile, stage.name)] = overrides
    assert {p for p, _ in changed} >= named  # `doit profile=smoke` is not refused
    train = changed[("smoke", "train")]
    assert train["n_estimators"] < project.stage("train").parameters["n_estimators"]
