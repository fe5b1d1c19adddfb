"""Which kernel boots ahead: doit's order of the tasks a run selected, and the next stage only
when it reads what the running one writes."""

from __future__ import annotations

from mlops_tasks.run.kernels import doit_order, next_stage, stage_plan

# a -> b -> c, and x on its own; the tasks as the dodo makes them
TASK_DEP = {
    "venv:a": [], "execute:a": [], "log:a": ["execute:a"], "a": ["execute:a", "log:a"],
    "execute:b": ["log:a"], "log:b": ["execute:b"], "b": ["a", "execute:b", "log:b"],
    "execute:c": ["log:b"], "log:c": ["execute:c"], "c": ["b", "execute:c", "log:c"],
    "execute:x": [], "log:x": ["execute:x"], "x": ["execute:x", "log:x"],
}


def test_doit_order_runs_each_task_after_its_task_dep_once():
    assert doit_order(["c"], TASK_DEP) == [
        "execute:a", "log:a", "a", "execute:b", "log:b", "b", "execute:c", "log:c", "c"]
    assert doit_order(["log:b", "--param=n=1", "log:b"], TASK_DEP) == [
        "execute:a", "log:a", "execute:b", "log:b"]


def test_stage_plan_names_the_stages_executed_and_their_upstream():
    order, upstream = stage_plan(["a", "x", "c"], TASK_DEP)
    assert order == ["a", "x", "b", "c"]
    assert upstream == {"a": frozenset(), "x": frozenset(), "b": frozenset({"a"}),
                        "c": frozenset({"b"})}


def test_only_the_next_stage_that_reads_this_ones_outputs_boots_ahead():
    order, upstream = stage_plan(["c", "x"], TASK_DEP)
    assert next_stage(order, upstream, "a") == "b"
    assert next_stage(order, upstream, "b") == "c"
    assert next_stage(order, upstream, "c") is None  # x runs next, and reads nothing of c
    assert next_stage(order, upstream, "x") is None  # the last
    assert next_stage(*stage_plan(["a", "x", "b"], TASK_DEP), "a") is None  # x comes first
    assert next_stage(order, upstream, "unknown") is None


def test_task_deps_add_the_producers_of_file_deps_as_doit_does():
    from types import SimpleNamespace as Task

    tasks = [Task(name="execute:a", task_dep=[], file_dep=["nb.ipynb"], targets=["r/a.json"]),
             Task(name="log:a", task_dep=[], file_dep=["r/a.json"], targets=[]),
             Task(name="execute:b", task_dep=["log:a"], file_dep=[], targets=[])]
    from mlops_tasks.run.kernels import task_deps

    assert task_deps(tasks) == {"execute:a": [], "log:a": ["execute:a"],
                                "execute:b": ["log:a"]}


def test_a_kernel_booted_ahead_takes_its_stage_from_the_run(monkeypatch, tmp_path):
    """The stages the run loaded are handed to the plan: booting a kernel ahead does not load
    the project again (a thousand stages loaded once per stage would be quadratic)."""
    from mlops_tasks.env import venv
    from mlops_tasks.project import load
    from mlops_tasks.project.config import load_config
    from mlops_tasks.project.spec import parse_stage
    from mlops_tasks.run import kernels

    (tmp_path / "pyproject.toml").write_text("[tool.mlops_tasks]\n")
    stage = parse_stage("name: b\nnotebook: b.ipynb\n", "env_specs/b.yaml", exists=lambda p: True)
    asked: list[str] = []

    def not_again(root):
        raise AssertionError("the project was loaded again")

    monkeypatch.setattr(load, "load_project", not_again)
    monkeypatch.setattr(venv, "ready_if_built", lambda config, s: asked.append(s.name) or False)
    kernels.plan(["a", "b"], {"b": frozenset({"a"})}, [stage])
    try:
        kernels._boot(load_config(tmp_path), "b")
    finally:
        kernels.plan([], {})
    assert asked == ["b"]
