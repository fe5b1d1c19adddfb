#!/usr/bin/env python
"""The generated Jenkins plan, simulated on two agents, against one agent running `doit`.

`doit jenkinsfile` cuts the stage graph into chains (mlops_tasks.commands.jenkinsfile.plan):
each chain runs on one agent as one `doit run a b c` of its stages, cut only after a stage
another chain waits for, and a chain starts when its first stage's upstream stages are
done; agents share no disk, only the tracking
server, whose stage cache hands a chain the outputs of the stages upstream of it. This
script plays that plan on one machine: two clones of a pipeline (two "agents", each at its
own absolute path, a git repository on main) against one `mlflow server` (`--workers 1`, a
sqlite store, artifacts in the temporary folder, as bench_stage_cache.py starts it). A
scheduler thread gives the next chain whose upstream stages are done to whichever agent is
free; that agent's thread runs `python -m doit run a b c` for each call of the chain in
its clone (subprocess, `MLFLOW_TRACKING_URI` the server), marking the call's stages done as
its command ends. Against it: the same pipeline in a third clone, one `python -m doit` with the
stage cache off (`MLOPS_STAGE_CACHE=off`) and its own local store, as a single agent would
run it without the plan. With --served, a third side: one `python -m doit` in a fourth
clone against the plan's server, the stage cache on, in an experiment of its own (nothing to
restore): what one agent pays for the tracking server, apart from what the plan pays for
its processes. Each side is timed wall clock, from the first command's start to the last
one's end.

Two pipelines: this repository's example (4 stages in one chain; Pythons 3.10, 3.11, 3.12
from the package index) and the synthetic diamond of bench_stage_cache.py (a source, two
branches of two stages, a join; each notebook sleeps 2.5 s; stages on this Python with
only ipykernel, offline from a wheelhouse filled once with `pip download`, untimed).

Fair to both: before the timed runs a throw-away clone of each pipeline runs it once
against its own local store, untimed, so the uv cache (one for the whole benchmark, in the
temporary folder) holds every wheel; every timed clone is new, so each side builds the
venvs it needs (a fresh agent: none prebuilt). Each repetition uses a new experiment, so
nothing from an earlier repetition is restored. The sides take turns going first.

Every subprocess runs without the machine's pip, uv, MLflow, Jupyter and mlops-tasks
settings (see bench_stage_cache.py); each leads a process group, and the script reports any
process of its own still running at the end. POSIX only.

Usage: python benchmarks/bench_plan.py [--runs N] [--pipelines example,diamond] [--served]
                                       [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Load,
    find_uv,
    log,
    machine,
    markdown_table,
    measured_mlops_tasks,
    ratio,
    rmtree,
    rotated,
    uv_version,
    write_json,
)
from _groups import bench_env, left_running, stop_group
from bench_stage_cache import (
    AgentRun,
    Pipeline,
    load_now,
    pipelines,
    run_counted,
    span,
    start_server,
)

Chains = list[tuple[tuple[str, ...], list[list[str]]]]


def plan_chains(root: Path) -> Chains:
    """The chains `doit jenkinsfile` writes for the project at root, each with its upstream
    stages and its `doit run` calls."""
    from mlops_tasks.commands.jenkinsfile import plan
    from mlops_tasks.project.load import load_project

    return plan(load_project(root).graph)


@dataclass
class Plan:
    """The chains played on the agents: what each `doit run` did, and the whole time."""
    agents: dict[str, Path]
    env: dict[str, str]
    done: set[str] = field(default_factory=set)
    steps: list[dict[str, Any]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    start: float = 0.0

    def run_chain(self, agent: str, calls: list[list[str]], free: list[str]) -> None:
        """One agent's thread: the chain's `doit run` calls in order, each call's stages
        marked done as it ends."""
        try:
            for stages in calls:
                began = time.perf_counter() - self.start
                got = run_counted(self.agents[agent], self.env, ("run", *stages),
                                  f"doit-run-{'+'.join(stages)}")
                self.steps.append(step_record(agent, " ".join(stages), began,
                                              time.perf_counter() - self.start, got))
                with self.cond:
                    self.done.update(stages)
                    self.cond.notify_all()
        except BaseException as err:  # reported by play(), after the other threads end
            self.failures.append(err)
        finally:
            with self.cond:
                free.append(agent)
                self.cond.notify_all()

    def play(self, chains: Chains) -> float:
        """Give the first chain whose upstream stages are done to a free agent, until every
        chain ran; the wall time from the first command's start to the last one's end."""
        pending, free, threads = list(chains), list(self.agents), []
        self.start = time.perf_counter()
        with self.cond:
            while (pending or len(free) < len(self.agents)) and not self.failures:
                ready = [c for c in pending if set(c[0]) <= self.done]
                if ready and free:
                    pending.remove(ready[0])
                    thread = threading.Thread(target=self.run_chain,
                                              args=(free.pop(0), ready[0][1], free))
                    thread.start()
                    threads.append(thread)
                elif not free or len(free) < len(self.agents):
                    self.cond.wait()
                else:
                    raise BenchError(f"no chain can start: {pending} wait for stages never "
                                     f"done (done: {sorted(self.done)})")
        for thread in threads:
            thread.join()
        if self.failures:
            raise self.failures[0]
        return time.perf_counter() - self.start


def step_record(agent: str, stage: str, began: float, ended: float, got: AgentRun
                ) -> dict[str, Any]:
    return {"agent": agent, "stage": stage, "start_s": round(began, 2),
            "end_s": round(ended, 2), "executed": sorted(got.executed),
            "restored": sorted(got.restored), "venvs_built": got.building,
            "kernels": got.papermill, "load": got.load}


def one_round(tmp: Path, pipe: Pipeline, i: int, url: str, uv_cache: Path,
              order: list[str]) -> dict[str, Any]:
    """Repetition i on one pipeline: the plan on two new agents, one agent with the cache
    off, and (side "served") one agent against the plan's server, in `order`."""
    experiment = f"bench-plan-{pipe.name}-{i + 1}"
    here = tmp / f"{pipe.name}-{i + 1}"
    agents = {f"agent-{k}": pipe.make(here / f"agent-{k}" / pipe.name, experiment)
              for k in (1, 2)}
    single_root = pipe.make(here / "single" / pipe.name, experiment)
    # its own experiment: nothing of the plan's to restore
    served_root = (pipe.make(here / "served" / pipe.name, f"{experiment}-served")
                   if "served" in order else single_root)
    chains = plan_chains(agents["agent-1"])
    out: dict[str, Any] = {"experiment": experiment, "order": order,
                           "chains": [[list(u), [n for c in calls for n in c], calls]
                                      for u, calls in chains]}
    for side in order:
        log(f"{pipe.name} run {i + 1}: {side} ...")
        if side == "plan":
            plan = Plan(agents, bench_env(MLFLOW_TRACKING_URI=url, UV_CACHE_DIR=str(uv_cache)))
            seconds = plan.play(chains)
            out["plan"] = {"seconds": round(seconds, 3), "load": load_now(),
                           "steps": sorted(plan.steps, key=lambda s: s["start_s"])}
        else:
            env = (bench_env(UV_CACHE_DIR=str(uv_cache), MLFLOW_TRACKING_URI=url)
                   if side == "served" else
                   bench_env(UV_CACHE_DIR=str(uv_cache), MLOPS_STAGE_CACHE="off"))
            got = run_counted(served_root if side == "served" else single_root, env)
            seconds = got.seconds
            out[side] = {"seconds": round(seconds, 3), "load": got.load,
                             "executed": sorted(got.executed), "restored": sorted(got.restored),
                             "venvs_built": got.building}
        log(f"  {seconds:.1f} s; load {load_now()}")
    return out


def warm_up(tmp: Path, pipe: Pipeline, uv_cache: Path) -> float:
    root = pipe.make(tmp / f"warm-up-{pipe.name}" / pipe.name, f"bench-plan-warm-{pipe.name}")
    log(f"{pipe.name}: warm-up `doit` in a throw-away clone, own local store (untimed) ...")
    got = run_counted(root, bench_env(UV_CACHE_DIR=str(uv_cache)))
    log(f"  done in {got.seconds:.0f} s")
    return got.seconds


# --------------------------------------------------------------------------- report


def summary_table(results: dict[str, list[dict[str, Any]]]) -> str:
    med = statistics.median
    rows = []
    for pipe, rounds in results.items():
        single = [r["single"]["seconds"] for r in rounds]
        plan = [r["plan"]["seconds"] for r in rounds]
        chains = rounds[0]["chains"]
        executed = "/".join(str(sum(len(s["executed"]) for s in r["plan"]["steps"]))
                            for r in rounds)
        restored = "/".join(str(sum(len(s["restored"]) for s in r["plan"]["steps"]))
                            for r in rounds)
        built = "; ".join(f"{len(r['single']['venvs_built'])} / "
                          f"{sum(len(s['venvs_built']) for s in r['plan']['steps'])}"
                          for r in rounds)
        calls = sum(len(c[2]) for c in chains)
        rows.append([f"{pipe} ({len(chains)} chain{'s' * (len(chains) > 1)}, {calls} `doit run`"
                     f"{'s' * (calls > 1)})", span(single),
                     span(plan), f"{ratio(med(single), med(plan), 2)}x", executed, restored,
                     built, "; ".join(f"{r['single']['load']} / {r['plan']['load']}"
                                      for r in rounds)])
    table = markdown_table(
        ["pipeline", "one agent, `doit`, cache off (s)", "the plan on two agents (s)",
         "one agent / plan", "stages the plan executed", "stages the plan restored",
         "venvs built: one agent / plan", "load after one agent / after the plan"], rows)
    served = []
    for pipe, rounds in results.items():
        if "served" in rounds[0]:
            one = [r["served"]["seconds"] for r in rounds]
            plan = [r["plan"]["seconds"] for r in rounds]
            served.append([pipe, span(one), span(plan), f"{ratio(med(one), med(plan), 2)}x",
                           "; ".join(str(r["served"]["load"]) for r in rounds)])
    return table + ("\n\n" + markdown_table(
        ["pipeline", "one agent, `doit` on the plan's server, cache on (s)",
         "the plan on two agents (s)", "served one agent / plan", "load after it"], served)
        if served else "")


def timelines(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for pipe, rounds in results.items():
        for i, r in enumerate(rounds, 1):
            chains = "; ".join(" > ".join(c) + (f" (after {', '.join(u)})" if u else "")
                               + f" ({len(calls)} doit run{'s' * (len(calls) > 1)})"
                               for u, c, calls in r["chains"])
            steps = "; ".join(
                f"{s['agent']} `doit run {s['stage']}` {s['start_s']:.1f}–{s['end_s']:.1f} s"
                f" (executed {','.join(s['executed']) or '-'}, restored "
                f"{','.join(s['restored']) or '-'}, venvs {len(s['venvs_built'])})"
                for s in r["plan"]["steps"])
            lines.append(f"{pipe} run {i} ({' then '.join(r['order'])}): chains {chains}; "
                         f"{steps}")
    return lines


def report(meta: dict[str, Any], results: dict[str, list[dict[str, Any]]]) -> str:
    return "\n".join([
        f"Jenkins plan, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, mlflow {meta['mlflow']}, {meta['uv']}, mlops-tasks "
        f"{meta['mlops-tasks']}; {meta['load']}",
        f"median of {meta['runs']} run(s), min–max in brackets; wall clock; warm uv cache, "
        "venvs not prebuilt", "", summary_table(results), "", *timelines(results)])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repetitions (default 1)")
    parser.add_argument("--pipelines", default="example,diamond",
                        help="of example,diamond (default both)")
    parser.add_argument("--served", action="store_true",
                        help="a third side: one agent `doit` against the plan's server, the "
                        "stage cache on, an experiment of its own")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    names = [n for n in args.pipelines.split(",") if n]
    if args.runs < 1 or not names or set(names) - {"example", "diamond"}:
        parser.error("--runs at least 1; --pipelines of example,diamond")
    if not hasattr(os, "killpg"):
        parser.error("process groups are needed (POSIX)")
    meta: dict[str, Any] = {**machine(args.runs), "mlflow": version("mlflow")}
    load = Load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    log(f"working in {tmp}")
    server: subprocess.Popen[bytes] | None = None
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        meta["mlops-tasks"] = measured_mlops_tasks()
        meta["uv"] = uv_version(find_uv())
        server, url, _ = start_server(tmp / "server")
        uv_cache = tmp / "uv-cache"
        sides = ["single", "plan", *(["served"] * args.served)]
        for pipe in pipelines(names, tmp):
            warm_up(tmp, pipe, uv_cache)
            load.sample()
            results[pipe.name] = []
            for i in range(args.runs):
                results[pipe.name].append(one_round(tmp, pipe, i, url, uv_cache,
                                                    rotated(sides, i)))
                load.sample()
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if server is not None:
            stop_group(server)
        left = left_running(tmp)
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    load.sample()
    meta["load"] = load.describe()
    print("\n" + report(meta, results))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    write_json(args.json, {**meta, **load.as_dict(), "results": results, "left_running": left})
    return 0


if __name__ == "__main__":
    sys.exit(main())
