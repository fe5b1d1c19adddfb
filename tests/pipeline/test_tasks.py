"""Task dictionaries as data: names, dependencies, targets, docs."""

from __future__ import annotations

from pathlib import Path

from mlops_tasks.pipeline import actions, checks
from mlops_tasks.pipeline.tasks import all_tasks
from mlops_tasks.project.config import Config
from mlops_tasks.project.graph import build_graph
from mlops_tasks.project.spec import Stage


def stages():
    return [
        Stage("prep", "env_specs/prep.yaml", "nb/prep.ipynb", ".venvs/prep", "mlops-prep",
              outputs=("data/raw.csv",)),
        Stage("train", "env_specs/train.yaml", "nb/train.ipynb", ".venvs/train", "k-train",
              inputs=("data/raw.csv",), outputs=("models/m.pkl",), metrics=("r/m.json",),
              parameters={"n": 3}),
        Stage("summary", "env_specs/summary.yaml", "nb/summary.ipynb", ".venvs/summary", "k-rep",
              depends_on=("train",)),
    ]


def by_name(tasks):
    out = {}
    for task in tasks:
        name = task["basename"] + (f":{task['name']}" if task.get("name") else "")
        out[name] = task
    return out


def make():
    items = stages()
    return by_name(all_tasks(Config(root=Path("/proj")), items, build_graph(items)))


def test_every_task_is_named_and_documented():
    tasks = make()
    expected = {"venv", "kernel", "execute", "log", "prep", "train", "summary"}
    expected |= {f"{p}:{s}" for p in ("venv", "kernel", "execute", "log")
                 for s in ("prep", "train", "summary")}
    assert set(tasks) == expected
    for name, task in tasks.items():
        assert task.get("doc"), f"{name} has no doc"
        assert "\n" not in task["doc"]


def test_chain_of_one_stage():
    tasks = make()
    venv, kernel = tasks["venv:train"], tasks["kernel:train"]
    execute, log = tasks["execute:train"], tasks["log:train"]
    assert venv["targets"] == [".venvs/train/pip-freeze.txt"]
    assert isinstance(venv["uptodate"][0], checks.EnvUpToDate)
    assert venv["actions"][0][0] is actions.build_venv
    assert kernel["task_dep"] == ["venv:train"] and "file_dep" not in kernel
    assert kernel["targets"] == [".mlops/jupyter/kernels/k-train/kernel.json"]
    # inputs (files or folders) are checked by content in InputsUnchanged, not as file_dep;
    # the venv is made by the action after a cache miss: no file_dep on its freeze
    assert "file_dep" not in execute
    env_check = execute["uptodate"][-1]
    assert isinstance(env_check, checks.EnvAsBuilt) and execute["actions"][0][1][2] is env_check
    inputs_check = next(c for c in execute["uptodate"] if isinstance(c, checks.InputsUnchanged))
    assert inputs_check.stage.inputs == ("data/raw.csv",)
    code_check = execute["uptodate"][0]
    assert isinstance(code_check, checks.NotebookCodeUnchanged)
    assert code_check.notebook == "nb/train.ipynb"
    assert execute["task_dep"] == ["log:prep"]  # upstream logged first; no venv:/kernel:
    assert execute["targets"] == [".mlops/executed/train.ipynb", ".mlops/executed/train.json",
                                  "models/m.pkl", "r/m.json"]
    assert log["file_dep"] == [".mlops/executed/train.ipynb", ".mlops/executed/train.json",
                               "r/m.json"]
    assert log["targets"] == [".mlops/runs/train/last-run.json"]


def test_group_tasks_pull_upstream():
    tasks = make()
    assert tasks["prep"]["task_dep"] == ["log:prep"]
    assert tasks["train"]["task_dep"] == ["prep", "log:train"]
    assert tasks["summary"]["task_dep"] == ["train", "log:summary"]
    assert tasks["summary"]["actions"] is None
    # an explicit depends_on orders execution too (no file links the two)
    assert "log:train" in tasks["execute:summary"]["task_dep"]
    assert any(isinstance(c, checks.UpstreamRunsUnchanged)
               for c in tasks["execute:summary"]["uptodate"])


def test_parameters_take_part_in_uptodate():
    from mlops_tasks.project.fingerprint import canonical_json, parameters_digest

    saved = {"_parameters": parameters_digest({"n": 3}),
             "_parameters_json": canonical_json({"n": 3})}
    check = make()["execute:train"]["uptodate"][1]
    assert isinstance(check, checks.ParametersUnchanged)
    assert check(None, saved) is True
    items = stages()
    items[1] = Stage(**{**items[1].__dict__, "parameters": {"n": 4, "seed": 1}})
    tasks = by_name(all_tasks(Config(root=Path("/proj")), items, build_graph(items)))
    changed = tasks["execute:train"]["uptodate"][1]
    assert changed(None, saved) is False
    assert repr(changed) == "<parameters: +seed, n: 3 → 4>"


def test_execute_accepts_parameter_overrides():
    params = make()["execute:train"]["params"]
    assert params[0]["long"] == "param" and params[0]["type"] is list


def test_venv_layout_on_both_platforms():
    from mlops_tasks.project import layout

    assert layout.venv_python(".venvs/train", windows=True) == ".venvs/train/Scripts/python.exe"
    assert layout.venv_python(".venvs/train", windows=False) == ".venvs/train/bin/python"
    stage = stages()[1]
    assert layout.pins_file(stage) == "env_specs/train.lock"


def test_env_variables_added_changed_or_removed_rerun_the_stage():
    from dataclasses import replace

    bare = stages()[0]
    with_env = replace(bare, env={"A": "1"})
    saved: dict[str, object] = {}
    check = checks.EnvVarsUnchanged(with_env)

    class Task:
        value_savers: list = []

    check.configure_task(Task)
    for saver in Task.value_savers:
        saved.update(saver())
    assert not checks.EnvVarsUnchanged(with_env)(None, {})  # added
    assert checks.EnvVarsUnchanged(with_env)(None, saved)
    assert not checks.EnvVarsUnchanged(replace(bare, env={"A": "2"}))(None, saved)  # changed
    removed = checks.EnvVarsUnchanged(bare)
    assert not removed(None, saved) and "removed" in repr(removed)
    assert checks.EnvVarsUnchanged(bare)(None, {})  # never had any: nothing to rerun
