"""Stage -> doit task dictionaries. Pure: no files touched, nothing started."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mlops_tasks.pipeline import actions, checks
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.environments import task_name
from mlops_tasks.project.graph import Graph
from mlops_tasks.project.spec import Stage

PREFIX_DOCS = {
    "venv": "build stage venvs (uv or pip, offline from wheels_cache/ when filled)",
    "kernel": "register stage kernels in .mlops/jupyter",
    "execute": "execute stage notebooks with papermill",
    "log": "record stage runs in MLflow",
}


def _python_label(stage: Stage) -> str:
    if stage.python:
        return f"Python {stage.python}"
    if stage.python_exe:
        return stage.python_exe
    return "the orchestrator's Python"


def venv_task(config: Config, stage: Stage) -> dict[str, Any]:
    shared = f"environment '{stage.environment}': " if stage.environment else ""
    return {
        "basename": "venv",
        "name": task_name(stage),
        "doc": f"build {shared}{stage.env_dir} ({_python_label(stage)}, "
               f"{len(stage.packages)} packages + ipykernel)",
        "actions": [(actions.build_venv, [config, stage])],
        "targets": [layout.freeze_file(stage)],
        "uptodate": [checks.EnvUpToDate(config, stage)],
        "clean": [(actions.remove_env, [config, stage])],
    }


def kernel_task(config: Config, stage: Stage) -> dict[str, Any]:
    kernel_json = layout.kernel_json(stage)
    return {
        "basename": "kernel",
        "name": task_name(stage),
        "doc": f"register kernel '{stage.kernel_name}' for {stage.env_dir}",
        "actions": [(actions.write_kernel, [config, stage])],
        # by content, not doit's saved state: execute:S writes the same file when it runs
        "task_dep": [f"venv:{task_name(stage)}"],
        "targets": [kernel_json],
        "uptodate": [checks.KernelspecCurrent(config, stage)],
        "clean": [(actions.remove_kernel, [config, stage, (config.root / kernel_json).parent])],
    }


def execute_task(config: Config, stage: Stage, graph: Graph,
                 by_name: Mapping[str, Stage]) -> dict[str, Any]:
    """Runs after every direct upstream stage is logged (a notebook that reads its upstream's
    MLflow runs finds them complete)."""
    checks_: list[Any] = [
        checks.NotebookCodeUnchanged(config.root, stage.notebook),
        checks.ParametersUnchanged(config.root, stage),
        checks.InputsUnchanged(config.root, stage),
        checks.OutputsUnchanged(config.root, stage),
    ]
    if stage.depends_on:
        checks_.append(checks.UpstreamRunsUnchanged(config.root, stage, by_name))
    checks_.append(checks.EnvVarsUnchanged(stage))  # in the key: added, changed or removed
    env = checks.EnvAsBuilt(config, stage, list(checks_))  # last: see only_env
    return {
        "basename": "execute",
        "name": stage.name,
        "doc": f"run {stage.notebook} on kernel '{stage.kernel_name}'",
        # the venv and kernelspec are made by the action, after its cache lookup missed:
        # no task_dep on venv:S or kernel:S, no file_dep on the freeze
        "actions": [(actions.run_execute, [config, stage, env])],
        "task_dep": [f"log:{up}" for up in graph.upstream[stage.name]],
        "targets": [layout.executed_notebook(stage), layout.execute_record(stage),
                    *stage.written],
        "uptodate": [*checks_, env],
        "params": [{"name": "param", "long": "param", "type": list, "default": [],
                    "help": "override a parameter for this run: --param=name=value"}],
        "clean": [(actions.clean_outputs, [config, stage])],
    }


def log_task(config: Config, stage: Stage) -> dict[str, Any]:
    return {
        "basename": "log",
        "name": stage.name,
        "doc": f"record the run of {stage.name} in MLflow",
        "actions": [(actions.run_log, [config, stage])],
        "file_dep": [layout.executed_notebook(stage), layout.execute_record(stage),
                     *stage.metrics],
        "targets": [layout.log_record(stage)],
        "clean": True,
    }


def group_task(stage: Stage, graph: Graph) -> dict[str, Any]:
    upstream = graph.upstream[stage.name]
    return {
        "basename": stage.name,
        "doc": f"bring stage '{stage.name}' and its upstream up to date, logged"
               + (f" (after {', '.join(upstream)})" if upstream else ""),
        "actions": None,
        "task_dep": [*upstream, f"log:{stage.name}"],
    }


def stage_tasks(config: Config, stage: Stage, graph: Graph,
                by_name: Mapping[str, Stage]) -> list[dict[str, Any]]:
    """The four tasks of one stage plus its group task (a matrix member or a stage on a
    shared environment whose venv another stage builds has no venv and kernel task of its
    own; the builder's are named after the environment: venv:<environment>)."""
    env = [venv_task(config, stage), kernel_task(config, stage)] \
        if stage.env_of in (None, stage.name) else []
    return [*env, execute_task(config, stage, graph, by_name), log_task(config, stage),
            group_task(stage, graph)]


def all_tasks(config: Config, stages: list[Stage], graph: Graph) -> Iterator[dict[str, Any]]:
    for prefix, doc in PREFIX_DOCS.items():
        yield {"basename": prefix, "name": None, "doc": doc}
    by_name = {s.name: s for s in stages}
    for name in graph.order:
        yield from stage_tasks(config, by_name[name], graph, by_name)
    groups: dict[str, list[str]] = {}
    for name in graph.order:
        if by_name[name].group:
            groups.setdefault(str(by_name[name].group), []).append(name)
    for group, members in groups.items():
        yield {"basename": group, "doc": f"bring every stage of the matrix '{group}' up to "
               f"date ({', '.join(members)})", "actions": None, "task_dep": members}
