#!/usr/bin/env python
"""Where the wall clock of a one-stage run goes: `doit run execute:S log:S`, phase by phase,
next to papermill alone on the same kernel.

The repository's example pipeline is copied into a temporary folder as bench_pipeline.py
copies it; one `python -m doit` in the copy (untimed) builds the stage venvs and registers
their kernels in `<copy>/.mlops/jupyter`. Then, --runs times, in a rotated order:

- doit: data_prep forced stale (`python -m doit forget execute:data_prep log:data_prep`, its
  output data/raw/dataset.csv deleted, untimed), then `python -m doit run execute:data_prep
  log:data_prep` with MLOPS_STAGE_CACHE=off, run as `python -c TIMELINE`: a small program
  that takes t0 = perf_counter() first thing, wraps the functions in WRAPPED with enter and
  exit stamps as their modules are imported (an import hook, so every import stays where doit
  makes it and in the phase it belongs to), writes the stamps from an exit handler to the file
  named by BENCH_TIMELINE, and calls doit's main with argv[0] "doit" (doit then ends the
  process with os._exit, after the exit handlers);
- papermill: `python -m papermill -k mlops-data_prep notebooks/01-data-prep.ipynb <out>
  --cwd <copy> -p ...` (the spec's parameters) with JUPYTER_PATH=<copy>/.mlops/jupyter.

Each command is timed as a subprocess from outside (wall clock, start to exit). The stamps
are on perf_counter(), the system's monotonic clock, which this script shares with the
child: the child's t0 less the moment it was started is the interpreter's start. The notebook
papermill wrote (.mlops/executed/data_prep.ipynb for doit) gives papermill's start and each
cell's start and duration (UTC), put on the same time line by the time.time() taken with t0
(for papermill alone, by this script as it starts it). The phases follow one another from
the start of the process to its exit, so they add up to the whole wall clock; each is the
median of every run, with min and max.

Every subprocess runs without the machine's pip, uv, MLflow, Jupyter and mlops-tasks settings,
leading a process group of its own; at the end the script reports any process of its own
still running and removes the temporary folder. POSIX only (process groups).

Usage: python benchmarks/bench_breakdown.py [--runs N] [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Load,
    log,
    machine,
    markdown_table,
    measured_mlops_tasks,
    ratio,
    rotated,
    run,
    summary,
    write_json,
)
from _groups import bench_env, run_in_group, temp_folder
from bench_pipeline import REPO, copy_example, doit_ran, kernel, load_specs, papermill_args

STAGE = "data_prep"
TASKS = [f"execute:{STAGE}", f"log:{STAGE}"]
SIDES = ("doit", "papermill")
WRAPPED = {
    "mlops_tasks.run.execute": ["snapshot", "prepare", "run", "finish", "execute_stage"],
    "mlops_tasks.run.kernels": ["launch_kernel"],
    "mlops_tasks.run.lifecycle": ["experiment"],
    "mlops_tasks.run.stage_cache": ["lookup"],
    "mlops_tasks.run.kernel_launch": ["stop"],
    "mlops_tasks.run.log": ["log_stage"],
}
TIMELINE = """\
import time
t0, wall0 = time.perf_counter(), time.time()
import atexit, functools, json, os, sys
WRAPPED, stamps = json.loads(sys.argv[1]), []
def stamp(what):
    stamps.append([what, time.perf_counter() - t0])
def wrap(module, name):
    func = getattr(module, name)
    @functools.wraps(func)
    def timed(*args, **kwargs):
        stamp(name + " enter")
        try:
            return func(*args, **kwargs)
        finally:
            stamp(name + " exit")
    setattr(module, name, timed)
class Hook:  # a wrapped module: found by the other finders, wrapped once it has run
    def find_spec(self, name, path=None, target=None):
        if name not in WRAPPED:
            return None
        finders = [f for f in sys.meta_path if f is not self and hasattr(f, "find_spec")]
        spec = next(filter(None, (f.find_spec(name, path, target) for f in finders)), None)
        if spec is not None:
            execute = spec.loader.exec_module
            def exec_module(module):
                execute(module)
                for function in WRAPPED[name]:
                    wrap(module, function)
            spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Hook())
def write():
    stamp("end of doit")
    with open(os.environ["BENCH_TIMELINE"], "w") as out:
        json.dump({"t0": t0, "wall0": wall0, "stamps": stamps}, out)
atexit.register(write)
sys.argv = ["doit", "run"] + sys.argv[2:]
from doit.__main__ import main
main()
"""
# (label, start point, end point) on the time line of a doit run, start of the process = 0
PHASES = [
    ("1. process start, doit, dodo, up-to-date checks", "start", "execute_stage enter"),
    ("2. snapshot + kernel launch", "execute_stage enter", "launch_kernel exit"),
    ("3. store, experiment, run created (no MLflow import on the local store)",
     "launch_kernel exit",
     "prepare exit"),
    ("4. papermill import and start, until the first cell starts", "prepare exit",
     "first cell"),
    ("5. the notebook's cells", "first cell", "last cell end"),
    ("6. papermill after the last cell (notebook written)", "last cell end", "stop enter"),
    ("7. kernel stop", "stop enter", "stop exit"),
    ("8. finish (record)", "stop exit", "execute_stage exit"),
    (f"9. doit between execute:{STAGE} and log:{STAGE}", "execute_stage exit", "log_stage enter"),
    (f"10. log:{STAGE}", "log_stage enter", "log_stage exit"),
    ("11. log end to process exit", "log_stage exit", "exit"),
]
DETAILS = [  # parts of the phases above, not added to the total
    ("of 1: interpreter start, to the child's t0", "start", "t0"),
    ("of 3: first experiment(): the store opened (the kernel boots meanwhile)",
     "experiment enter", "experiment exit"),
    ("of 3: stage-cache lookup", "lookup enter", "lookup exit"),
    ("of 3: prepare(): run created (experiment cached)", "prepare enter", "prepare exit"),
    ("of 4: to papermill's start_time (import, notebook read)", "prepare exit",
     "papermill start"),
    ("of 4: papermill's start_time to the first cell (kernel ready)", "papermill start",
     "first cell"),
]
PM_PHASES = [
    ("process start to papermill's start_time", "start", "papermill start"),
    ("papermill's start_time to the first cell (kernel start)", "papermill start",
     "first cell"),
    ("the notebook's cells", "first cell", "last cell end"),
    ("last cell end to process exit", "last cell end", "exit"),
]


def notebook_points(path: Path, wall0: float, offset: float) -> dict[str, float]:
    """papermill's start and the first cell's start and last cell's end, in seconds after
    the start of the process (wall0: time.time() at `offset` seconds after that start)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c["metadata"]["papermill"] for c in nb["cells"]
             if (c.get("metadata", {}).get("papermill") or {}).get("start_time")]
    if not cells:
        raise BenchError(f"no cell timings in {path}")

    def at(iso: str) -> float:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - wall0 + offset

    pm = nb["metadata"]["papermill"]
    return {"papermill start": at(pm["start_time"]), "papermill end": at(pm["end_time"]),
            "first cell": min(at(c["start_time"]) for c in cells),
            "last cell end": max(at(c["start_time"]) + float(c["duration"] or 0)
                                 for c in cells)}


OPTIONAL = {"lookup enter", "lookup exit"}  # not called where the stage cache is off


def spans(points: dict[str, float], phases: list[tuple[str, str, str]]) -> dict[str, float]:
    if not OPTIONAL & points.keys():
        points = {**points, **dict.fromkeys(OPTIONAL, 0.0)}
    missing = {p for _, a, b in phases for p in (a, b)} - points.keys()
    if missing:
        raise BenchError(f"no time stamp for {sorted(missing)}: {points}")
    return {label: round(points[b] - points[a], 4) for label, a, b in phases}


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = copy_example(tmp / "example", REPO)
        self.spec = next(s for s in load_specs(self.root) if s["name"] == STAGE)
        self.kernel = kernel(self.spec)
        self.jupyter = self.root / ".mlops" / "jupyter"
        self.timeline = tmp / "timeline.json"
        self.doit_env = bench_env(PYTHONUNBUFFERED="1", MLOPS_STAGE_CACHE="off",
                                  BENCH_TIMELINE=str(self.timeline))
        self.pm_env = bench_env(PYTHONUNBUFFERED="1", JUPYTER_PATH=str(self.jupyter))

    def warm_up(self) -> float:
        seconds = run_in_group([sys.executable, "-m", "doit"], self.doit_env, self.root,
                               self.tmp / "warm-up.log").seconds
        if not (self.jupyter / "kernels" / self.kernel / "kernel.json").is_file():
            raise BenchError(f"kernel {self.kernel} not registered by `doit` in {self.root}")
        return seconds

    def stale(self) -> None:
        run([sys.executable, "-m", "doit", "forget", *TASKS], self.doit_env, cwd=self.root)
        for rel in self.spec.get("outputs") or []:
            (self.root / rel).unlink(missing_ok=True)

    def doit(self, name: str) -> dict[str, Any]:
        self.stale()
        self.timeline.unlink(missing_ok=True)
        start = time.perf_counter()
        timed = run_in_group([sys.executable, "-c", TIMELINE, json.dumps(WRAPPED), *TASKS],
                             self.doit_env, self.root, self.tmp / f"{name}.log")
        if doit_ran(timed.output) != [STAGE]:
            raise BenchError(f"{name}: ran {doit_ran(timed.output)}, expected [{STAGE!r}]")
        child = json.loads(self.timeline.read_text(encoding="utf-8"))
        offset = child["t0"] - start  # the interpreter's start
        points: dict[str, float] = {"start": 0.0, "t0": offset, "exit": timed.seconds}
        for what, at in child["stamps"]:
            points.setdefault(what, at + offset)  # the first call of each (experiment: 2)
        executed = self.root / ".mlops" / "executed" / f"{STAGE}.ipynb"
        points.update(notebook_points(executed, child["wall0"], offset))
        return {"seconds": timed.seconds, "phases": spans(points, PHASES),
                "details": spans(points, DETAILS), "points": points}

    def papermill(self, name: str) -> dict[str, Any]:
        out = self.tmp / f"{name}.ipynb"
        wall0 = time.time()
        timed = run_in_group([sys.executable, "-m", "papermill", "-k", self.kernel,
                              self.spec["notebook"], out, "--cwd", self.root,
                              "--no-progress-bar", *papermill_args(self.spec)],
                             self.pm_env, self.root, self.tmp / f"{name}.log")
        points = {"start": 0.0, "exit": timed.seconds, **notebook_points(out, wall0, 0.0)}
        return {"seconds": timed.seconds, "phases": spans(points, PM_PHASES), "points": points}


def measure(bench: Bench, runs: int, load: Load) -> dict[str, Any]:
    results: dict[str, Any] = {"order": [], **{side: [] for side in SIDES}}
    for i in range(runs):
        order = rotated(SIDES, i)
        results["order"].append(order)
        log(f"run {i + 1}/{runs}: {', '.join(order)} ...")
        for side in order:
            got = getattr(bench, side)(f"{side}-{i + 1}")
            results[side].append(got)
            log(f"  {side}: {got['seconds']:.2f} s")
        load.sample()
    return results


def rows(per_run: list[dict[str, float]], total: float) -> list[list[str]]:
    out = []
    for label in per_run[0]:
        values = [r[label] for r in per_run]
        med = statistics.median(values)
        out.append([label, f"{med:.2f}", f"{min(values):.2f}–{max(values):.2f}",
                    f"{100 * med / total:.0f} %"])
    return out


def report(meta: dict[str, Any], results: dict[str, Any]) -> str:
    med = statistics.median
    doit_s = [r["seconds"] for r in results["doit"]]
    pm_s = [r["seconds"] for r in results["papermill"]]
    total = med(doit_s)
    table = rows([r["phases"] for r in results["doit"]], total)
    added = sum(med([r["phases"][label] for r in results["doit"]]) for label, _, _ in PHASES)
    table.append(["**whole command (wall clock)**", f"{total:.2f}",
                  f"{min(doit_s):.2f}–{max(doit_s):.2f}", "100 %"])
    headers = ["phase", "median s", "min–max s", "share of the median total"]
    lines = [
        f"One-stage run breakdown, {meta['date']}: Python {meta['python']}, "
        f"{meta['platform']}, {meta['cpus']} CPUs, mlops-tasks {meta['mlops-tasks']}, "
        f"papermill {meta['papermill']}; {meta['load']}",
        f"`doit run execute:{STAGE} log:{STAGE}` ({STAGE} forced stale, "
        f"MLOPS_STAGE_CACHE=off), median of {meta['runs']} run(s); the phases follow one "
        f"another, adding up to each run's wall clock (their medians add up to {added:.2f} s)",
        "",
        markdown_table(headers, table),
        "",
        "Parts of the phases above (median s, min–max):",
        "",
        markdown_table(headers, rows([r["details"] for r in results["doit"]], total)),
        "",
        f"papermill alone (`python -m papermill -k {meta['kernel']}` on the same kernel): "
        f"median {med(pm_s):.2f} s ({min(pm_s):.2f}–{max(pm_s):.2f}); one-stage doit / "
        f"papermill alone: {ratio(total, med(pm_s), 2)}x (+{total - med(pm_s):.2f} s)",
        "",
        markdown_table(["papermill alone", "median s", "min–max s", "share"],
                       rows([r["phases"] for r in results["papermill"]], med(pm_s))),
        "",
        f"warm-up `doit` (builds the venvs and kernels, untimed): {meta['warm_up_s']:.0f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each side (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not hasattr(os, "killpg"):
        parser.error("process groups are needed (POSIX)")
    from importlib.metadata import version
    meta: dict[str, Any] = {**machine(args.runs), "papermill": version("papermill")}
    load = Load()
    with temp_folder("bench-breakdown-", args.keep) as (tmp, left):
        try:
            meta["mlops-tasks"] = measured_mlops_tasks()
            bench = Bench(tmp)
            meta["kernel"] = bench.kernel
            log("warm-up: `doit` in the copy of the example (venvs, kernels) ...")
            meta["warm_up_s"] = bench.warm_up()
            log(f"  done in {meta['warm_up_s']:.0f} s")
            load.sample()
            results = measure(bench, args.runs, load)
        except BenchError as err:
            sys.stderr.write(f"\nERROR: {err}\n")
            return 1
    load.sample()
    meta["load"] = load.describe()
    print("\n" + report(meta, results))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    medians = {side: summary([r["seconds"] for r in results[side]]) for side in SIDES}
    phases = {label: summary([r["phases"][label] for r in results["doit"]])
              for label, _, _ in PHASES}
    write_json(args.json, {**meta, **load.as_dict(), "medians": medians, "phases": phases,
                           "results": results, "left_running": left})
    return 0


if __name__ == "__main__":
    sys.exit(main())
