"""The stage graph: who produces what, upstream stages, order, cycles. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.spec import Stage


@dataclass(frozen=True)
class Graph:
    """Stages in a valid execution order with their direct upstream stages."""

    order: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]
    producer: dict[str, str]

    def downstream(self, name: str) -> set[str]:
        """Every stage that transitively reads what `name` makes."""
        found: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for stage, ups in self.upstream.items():
                if current in ups and stage not in found:
                    found.add(stage)
                    frontier.append(stage)
        return found

    def waves(self) -> list[list[str]]:
        """Stages grouped by depth: each wave needs only the waves before it, so the stages
        of one wave can run side by side (on separate machines)."""
        depth: dict[str, int] = {}
        for name in self.order:  # upstream stages come first in the order
            depth[name] = 1 + max((depth[u] for u in self.upstream.get(name, ())), default=-1)
        found: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for name in self.order:
            found[depth[name]].append(name)
        return found

    def closure(self, name: str) -> list[str]:
        """`name` and everything upstream of it, in execution order."""
        needed = {name}
        frontier = [name]
        while frontier:
            for up in self.upstream[frontier.pop()]:
                if up not in needed:
                    needed.add(up)
                    frontier.append(up)
        return [s for s in self.order if s in needed]


def producer_of(path: str, producer: dict[str, str]) -> str | None:
    """The stage that writes path: as an output itself, or inside a folder output."""
    found = producer.get(path)
    parts = path.split("/")
    for end in range(len(parts) - 1, 0, -1):
        if found is not None:
            break
        found = producer.get("/".join(parts[:end]))
    return found


def build_graph(stages: Sequence[Stage]) -> Graph:
    by_name = {s.name: s for s in stages}
    producer: dict[str, str] = {}
    for stage in stages:
        for key, paths in (("outputs", stage.outputs), ("metrics", stage.metrics)):
            for path in paths:
                other = producer.get(path)
                if other is not None and other != stage.name:
                    raise SpecError(stage.spec_path, f"{path!r} is also written by stage "
                                    f"'{other}' ({by_name[other].spec_path}); one file has one "
                                    "producer", line=stage.line_of(key), key=key)
                producer[path] = stage.name

    upstream: dict[str, tuple[str, ...]] = {}
    for stage in stages:
        ups: list[str] = []
        for path in stage.inputs:
            maker = producer_of(path, producer)
            if maker == stage.name:
                raise SpecError(stage.spec_path, f"{path!r} is both an input and an output of "
                                "this stage", line=stage.line_of("inputs"), key="inputs")
            if maker and maker not in ups:
                ups.append(maker)
        for dep in stage.depends_on:
            if dep not in by_name:
                match = difflib.get_close_matches(dep, list(by_name), n=1)
                hint = f" (did you mean '{match[0]}'?)" if match else ""
                raise SpecError(stage.spec_path, f"'depends_on' names unknown stage '{dep}'"
                                f"{hint}; known stages: {', '.join(sorted(by_name))}",
                                line=stage.line_of("depends_on"), key="depends_on")
            if dep == stage.name:
                raise SpecError(stage.spec_path, "a stage cannot depend on itself",
                                line=stage.line_of("depends_on"), key="depends_on")
            if dep not in ups:
                ups.append(dep)
        upstream[stage.name] = tuple(ups)

    order = _topological(stages, upstream)
    return Graph(order=order, upstream=upstream, producer=producer)


def _topological(stages: Sequence[Stage], upstream: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Kahn's algorithm, level by level, each level in spec order (linear in the edges); a
    cycle is reported with its path."""
    index = {s.name: i for i, s in enumerate(stages)}
    waiting = {s.name: set(upstream[s.name]) for s in stages}
    downstream: dict[str, list[str]] = {s.name: [] for s in stages}
    for name, ups in waiting.items():
        for up in ups:
            downstream.setdefault(up, []).append(name)
    order: list[str] = []
    ready = [s.name for s in stages if not waiting[s.name]]
    while ready:  # level by level, each level in spec order
        order += ready
        freed = []
        for name in ready:
            for down in downstream[name]:
                waiting[down].discard(name)
                if not waiting[down]:
                    freed.append(down)
        ready = sorted(freed, key=index.__getitem__)
    if len(order) < len(stages):
        placed = set(order)
        cycle = _find_cycle({n: deps for n, deps in waiting.items() if n not in placed})
        first = next(s for s in stages if s.name == cycle[0])
        raise SpecError(first.spec_path, "dependency cycle: " + " -> ".join(cycle) +
                        "; break it by removing an input or a 'depends_on' entry",
                        line=first.line_of("inputs") or first.line_of("depends_on"))
    return tuple(order)


def _find_cycle(remaining: dict[str, set[str]]) -> list[str]:
    start = sorted(remaining)[0]
    path = [start]
    seen = {start: 0}
    current = start
    while True:
        current = sorted(remaining[current])[0]
        if current in seen:
            return path[seen[current]:] + [current]
        seen[current] = len(path)
        path.append(current)
