"""Stage graph: order from inputs/outputs and depends_on, cycles, conflicts."""

from __future__ import annotations

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.graph import build_graph
from mlops_tasks.project.spec import Stage


def stage(name, inputs=(), outputs=(), depends_on=(), metrics=()):
    return Stage(name=name, spec_path=f"env_specs/{name}.yaml", notebook=f"nb/{name}.ipynb",
                 env_dir=f".venvs/{name}", kernel_name=f"mlops-{name}", inputs=tuple(inputs),
                 outputs=tuple(outputs), depends_on=tuple(depends_on), metrics=tuple(metrics),
                 lines={"inputs": 5, "depends_on": 6, "outputs": 7})


def test_order_follows_files_not_spec_order():
    stages = [
        stage("eval", inputs=["m.pkl", "test.csv"], metrics=["r.json"]),
        stage("train", inputs=["train.csv"], outputs=["m.pkl"]),
        stage("prep", outputs=["raw.csv"]),
        stage("features", inputs=["raw.csv"], outputs=["train.csv", "test.csv"]),
    ]
    graph = build_graph(stages)
    assert graph.order == ("prep", "features", "train", "eval")
    assert graph.upstream["eval"] == ("train", "features")
    assert graph.closure("train") == ["prep", "features", "train"]
    assert graph.downstream("features") == {"train", "eval"}
    assert graph.downstream("eval") == set()


def test_depends_on_adds_an_edge():
    graph = build_graph([stage("b", depends_on=["a"]), stage("a")])
    assert graph.order == ("a", "b")
    assert graph.upstream["b"] == ("a",)


def test_cycle_is_reported_with_its_path():
    stages = [stage("a", inputs=["y"], outputs=["x"]), stage("b", inputs=["x"], outputs=["y"]),
              stage("c", inputs=["x"])]
    with pytest.raises(SpecError) as info:
        build_graph(stages)
    assert "dependency cycle: a -> b -> a" in str(info.value)
    assert str(info.value).startswith("env_specs/a.yaml:5:")


def test_cycle_through_depends_on():
    with pytest.raises(SpecError, match="cycle"):
        build_graph([stage("a", depends_on=["b"]), stage("b", depends_on=["a"])])


def test_unknown_dependency_suggests_closest():
    with pytest.raises(SpecError) as info:
        build_graph([stage("train"), stage("eval", depends_on=["trian"])])
    assert "did you mean 'train'" in str(info.value)
    assert info.value.key == "depends_on" and info.value.line == 6


def test_two_producers_of_one_file():
    with pytest.raises(SpecError, match="also written by stage 'a'"):
        build_graph([stage("a", outputs=["x"]), stage("b", outputs=["x"])])


def test_self_dependency():
    with pytest.raises(SpecError, match="itself"):
        build_graph([stage("a", depends_on=["a"])])
    with pytest.raises(SpecError, match="both an input and an output"):
        build_graph([stage("a", inputs=["x"], outputs=["x"])])
