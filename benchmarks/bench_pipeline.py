#!/usr/bin/env python
"""The example pipeline run three ways on the same kernels: mlops-tasks, DVC 3 and papermill.

The mlops-tasks measured is this repository's committed HEAD (`git archive HEAD` extracted
into the temporary folder and put on PYTHONPATH, ahead of an editable install), whatever
the work tree holds. Its example pipeline (env_specs/*.yaml, notebooks/*.ipynb: 4 stages,
data_prep -> feature_eng -> train -> eval, on Pythons 3.10, 3.11 and 3.12) is copied three
times into one temporary folder (pyproject.toml, dodo.py, env_specs/, notebooks/; each a
git repository on `main` with one commit and `.mlops/ .venvs/ data/ models/ reports/
.dvc/cache executed/` ignored), one copy per side, so no side ever sees another's outputs
or state. One `python -m doit` in the mlops-tasks copy (untimed) builds the stage venvs and
registers their kernels in `<copy>/.mlops/jupyter`; all three sides then run the same
notebooks on those kernels (JUPYTER_PATH=<that folder>, the kernel names from the specs:
`kernel_name`, else `mlops-<stage>`) with the specs' parameters:

- mlops-tasks: `python -m doit` with MLOPS_STAGE_CACHE=off (nothing restored from its own
  earlier runs), as shipped (sqlite3-durable backend, runs logged to the local MLflow store);
- DVC 3 (`pip install "dvc>=3"` into a venv of its own in the temporary folder), `dvc init
  --no-scm` and a generated `dvc.yaml`: one stage per spec whose cmd is `<this Python> -m
  papermill -k <kernel> <notebook> executed/<stage>.ipynb -p name value ...`, `deps` the
  notebook and the spec's inputs, `outs` its outputs and metrics files (`cache: false` for
  metrics), `dvc repro --no-run-cache` (DVC's run cache would otherwise restore a stage
  whose deps match an earlier run: the analogue of the stage cache turned off above);
- the floor: one Python process (this Python) running the stages' notebooks in order with
  `papermill.execute_notebook` (the same kernels, parameters and working folder).

Scenarios, each timed as a subprocess (wall clock, start to exit), --runs times, the sides
in a rotated order each run:

1. full: every stage, venvs present; before each run the side's outputs (data/ models/
   reports/ executed/) are deleted, and its state: `doit forget` of the execute: and log:
   tasks (the venv: and kernel: tasks stay recorded: the venvs are present), `dvc.lock` and
   `.dvc/cache`;
2. edit: feature_eng's notebook gains (or, the next run, loses again) a constant column
   `bench_edit` in both CSVs it writes, so feature_eng, train and eval rerun (the floor runs
   those three notebooks);
3. one stage: `doit forget execute:data_prep log:data_prep`, its output deleted, then `python
   -m doit run execute:data_prep log:data_prep`; `dvc repro --no-run-cache -s -f data_prep`
   (output deleted too); papermill on data_prep alone;
4. no-op: `python -m doit` and `dvc repro --no-run-cache` with everything up to date (floor:
   n/a);
5. restore: data_prep's output deleted, then restored from the side's own cache:
   `doit forget execute:data_prep log:data_prep` (untimed) and `python -m doit run
   execute:data_prep log:data_prep` with MLOPS_STAGE_CACHE=read-write (its outputs come
   from an earlier run in the copy's local MLflow store); `dvc repro -s data_prep` with its
   run cache ("Stage 'data_prep' is cached - skipping run, checking out outputs"); the floor
   executes data_prep alone with papermill, as in 3. Before the first timed run each side
   runs this once untimed (so the cache has an entry for data_prep's current key: the
   earlier runs had mlops-tasks' stage cache off). A run that did not restore (`execute:
   data_prep: restored from run`, DVC's `is cached`), or in whose process tree a kernel
   (`ipykernel_launcher`) was seen, is reported under the table.

During the full run, the command's process tree (its process group and every descendant:
jupyter_client starts each kernel in a session of its own) is sampled every 50 ms from
/proc, and the largest sum of the RSS of its processes is each side's peak memory (median
over the runs, in a second table; shared pages count once per process, so the sum is an
upper bound); under it, the processes of the peak sample of each side's median run. The
restore scenario is sampled the same way, for the processes it started. --no-boot-ahead
runs the mlops-tasks side with MLOPS_BOOT_AHEAD=0, to see what kernels booted ahead cost
in memory and gain in time.

Between scenarios each side is brought up to date untimed. Which stages each timed command
ran is read from its output (`execute:S: done in`, DVC's `Running stage 'S'`) and
reported under the table when it is not what the scenario expects. The train notebook logs
to MLflow itself: under DVC and the floor it gets a file store in the side's .mlops/mlruns
(MLFLOW_TRACKING_URI, MLFLOW_ALLOW_FILE_STORE=true: its mlflow-skinny cannot open sqlite;
mlops-tasks serves its own store to it over HTTP).

Every subprocess runs without the machine's pip, uv, MLflow, Jupyter and mlops-tasks settings
and leads a process group of its own, stopped if it fails or times out; at the end the
script reports any process of its own still running and removes the temporary folder.
POSIX only (process groups); the check of what is left reads /proc (Linux).

Usage: python benchmarks/bench_pipeline.py [--runs N] [--keep] [--json PATH]
                                           [--no-boot-ahead]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml
from _common import (
    BenchError,
    Load,
    clean_env,
    log,
    machine,
    markdown_table,
    ratio,
    rmtree,
    rotated,
    run,
    summary,
)
from _groups import GIT_ID, SAMPLE_INTERVAL, Timed, bench_env, run_in_group, temp_folder

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "dodo.py", "env_specs", "notebooks")
IGNORED = (".mlops/", ".venvs/", "data/", "models/", "reports/", ".dvc/cache", "executed/")
OUTPUT_DIRS = ("data", "models", "reports", "executed")
SIDES = ("mlops-tasks", "dvc", "floor")
SCENARIOS = {
    "full": "full run, venvs present (4 stages)",
    "edit": "edit of feature_eng's notebook (3 stages)",
    "one": "one stage, data_prep forced stale (1 stage)",
    "noop": "no-op, everything up to date",
    "restore": "data_prep restored from the local store (mlops-tasks' stage cache, DVC's "
               "run cache)",
}
MB = 1e6
MEMORY_AIM = "one kernel plus doit, about 490 MB on the example"
EDITED = "feature_eng"
EDIT_LINE = 'for part in (train, test):\n    part["bench_edit"] = 1.0\n'
DONE_RE = re.compile(r"^execute:(\S+): done in", re.M)
DVC_RAN_RE = re.compile(r"^Running stage '([^']+)'", re.M)
RESTORED_RE = re.compile(r"^execute:(\S+): restored from run", re.M)
DVC_CACHED_RE = re.compile(r"^Stage '([^']+)' is cached", re.M)

# the floor: one process, the notebooks in order (argv[1]: JSON list of stages to run)
FLOOR_CODE = """\
import json, sys
import papermill
for stage in json.loads(sys.argv[1]):
    papermill.execute_notebook(stage["notebook"], stage["out"], parameters=stage["parameters"],
                               kernel_name=stage["kernel"], cwd=".", progress_bar=False)
"""


# --------------------------------------------------------------------------- the project


def load_specs(root: Path) -> list[dict[str, Any]]:
    """The stage specs in pipeline order (each after the stages whose outputs it reads)."""
    specs = [yaml.safe_load(f.read_text(encoding="utf-8"))
             for f in sorted((root / "env_specs").glob("*.yaml"))]
    ordered: list[dict[str, Any]] = []
    made: set[str] = set()
    while specs:
        ready = [s for s in specs if set(s.get("inputs") or []) <= made]
        if not ready:
            raise BenchError("the example's specs have inputs no stage writes")
        for s in ready:
            ordered.append(s)
            made.update(s.get("outputs") or [])
            made.update(s.get("metrics") or [])
            specs.remove(s)
    return ordered


def kernel(spec: dict[str, Any]) -> str:
    return str(spec.get("kernel_name") or f"mlops-{spec['name']}")


def head_snapshot(dest: Path) -> str:
    """This repository's committed HEAD extracted into dest (git archive): the mlops-tasks
    measured (on PYTHONPATH, ahead of an editable install's finder) and the example copied,
    whatever is being edited in the work tree. Return `HEAD <short sha>`."""
    env = bench_env()
    sha = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], env).stdout.strip()
    dest.mkdir(parents=True)
    archive = dest.parent / "head.tar"
    run(["git", "-C", REPO, "archive", "--format=tar", "-o", archive, "HEAD"], env)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - old patch releases
            tar.extractall(dest)
    archive.unlink()
    return f"HEAD {sha}"


def copy_example(dest: Path, src: Path) -> Path:
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = src / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    (dest / ".gitignore").write_text("\n".join(IGNORED) + "\n", encoding="utf-8")
    (dest / "executed").mkdir()
    env = bench_env()
    run(["git", "init", "-q", "-b", "main"], env, cwd=dest)
    run(["git", "add", "-A"], env, cwd=dest)
    run(["git", *GIT_ID, "commit", "-qm", "example pipeline"], env, cwd=dest)
    return dest


def papermill_args(spec: dict[str, Any]) -> list[str]:
    args = []
    for key, value in (spec.get("parameters") or {}).items():
        args += ["-p", str(key), str(value)]
    return args


def dvc_yaml(specs: list[dict[str, Any]]) -> str:
    stages = {}
    for spec in specs:
        cmd = " ".join([Path(sys.executable).as_posix(), "-m", "papermill", "-k",
                        kernel(spec), spec["notebook"], f"executed/{spec['name']}.ipynb",
                        "--no-progress-bar",
                        *(json.dumps(a) if " " in a else a for a in papermill_args(spec))])
        outs: list[Any] = list(spec.get("outputs") or [])
        outs += [{m: {"cache": False}} for m in spec.get("metrics") or []]
        stages[spec["name"]] = {"cmd": cmd, "deps": [spec["notebook"],
                                                     *(spec.get("inputs") or [])],
                                "outs": outs}
    return yaml.safe_dump({"stages": stages}, sort_keys=False)


def toggle_edit(root: Path, spec: dict[str, Any]) -> bool:
    """Add the constant column to feature_eng's writes, or take it out again; whether the
    notebook has it now."""
    path = root / spec["notebook"]
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and ".to_csv(" in source:
            edited = source.startswith(EDIT_LINE)
            cell["source"] = source[len(EDIT_LINE):] if edited else EDIT_LINE + source
            path.write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")
            return not edited
    raise BenchError(f"no cell writing CSV files in {path}")


# --------------------------------------------------------------------------- the sides


def dvc_ran(output: str) -> list[str]:
    """The stages a dvc repro ran; one restored from DVC's run cache (which --no-run-cache
    should prevent) is listed as `S (run cache)`."""
    return [*DVC_RAN_RE.findall(output),
            *(f"{s} (run cache)" for s in DVC_CACHED_RE.findall(output))]


def doit_ran(output: str) -> list[str]:
    """The stages a doit run executed on a kernel; a stage restored from the stage cache
    (which MLOPS_STAGE_CACHE=off should prevent) is listed as `S (restored)`."""
    return [*DONE_RE.findall(output), *(f"{s} (restored)" for s in RESTORED_RE.findall(output))]


class Sides:
    def __init__(self, tmp: Path, specs: list[dict[str, Any]], src: Path) -> None:
        self.tmp, self.specs, self.src = tmp, specs, src
        self.roots = {side: copy_example(tmp / side / "example", src) for side in SIDES}
        self.jupyter = self.roots["mlops-tasks"] / ".mlops" / "jupyter"
        self.dvc: Path | None = None
        self.dvc_note = ""
        self.edited = {side: False for side in SIDES}
        self.peak: int | None = None  # the peak RSS of the last command run with `sample`
        self.at_peak: tuple[tuple[str, int], ...] = ()  # its processes at that peak
        self.mlops_env: dict[str, str] = {}  # extra settings of the mlops-tasks side

    def env(self, side: str, cache: bool = False) -> dict[str, str]:
        """The side's environment; for mlops-tasks the stage cache off, unless `cache`."""
        if side == "mlops-tasks":
            return bench_env(PYTHONUNBUFFERED="1", PYTHONPATH=str(self.src),
                             MLOPS_STAGE_CACHE="read-write" if cache else "off",
                             **self.mlops_env)
        # the train notebook's mlflow-skinny has no sqlite store: a file store, allowed
        store = (self.roots[side] / ".mlops" / "mlruns").as_uri()
        return bench_env(JUPYTER_PATH=str(self.jupyter), MLFLOW_TRACKING_URI=store,
                         MLFLOW_ALLOW_FILE_STORE="true", PYTHONUNBUFFERED="1")

    def sides(self) -> list[str]:
        return [s for s in SIDES if s != "dvc" or self.dvc is not None]

    def command(self, side: str, argv: list[str], name: str, sample: bool = False
                ) -> tuple[float, str]:
        timed = self.timed(side, argv, name, sample=sample)
        self.peak, self.at_peak = timed.peak_rss, timed.at_peak
        return timed.seconds, timed.output

    def timed(self, side: str, argv: list[str], name: str, cache: bool = False,
              sample: bool = False) -> Timed:
        """argv run in the side's copy; `sample`: the peak RSS of its process tree too."""
        root = self.roots[side]
        return run_in_group(argv, self.env(side, cache), root, root.parent / f"{name}.log",
                            sample_memory=sample)

    # ---- setup

    def warm_up(self) -> float:
        root = self.roots["mlops-tasks"]
        seconds, _ = self.command("mlops-tasks", [sys.executable, "-m", "doit"], "warm-up")
        if not (self.jupyter / "kernels").is_dir():
            raise BenchError(f"no kernelspecs in {self.jupyter} after `doit` in {root}")
        missing = [kernel(s) for s in self.specs
                   if not (self.jupyter / "kernels" / kernel(s) / "kernel.json").is_file()]
        if missing:
            raise BenchError(f"kernels not registered by `doit`: {missing}")
        return seconds

    def install_dvc(self) -> str:
        venv = self.tmp / "dvc-venv"
        try:
            run([sys.executable, "-m", "venv", venv], clean_env())
            python = venv / "bin" / "python"
            run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                 "dvc>=3"], clean_env(), timeout=900)
            dvc = venv / "bin" / "dvc"
            version = run([dvc, "--version"], clean_env()).stdout.strip()
        except (BenchError, OSError) as err:
            self.dvc_note = f"DVC could not be installed, its column is empty: {err}"
            return ""
        root = self.roots["dvc"]
        run([dvc, "init", "--no-scm", "-q"], self.env("dvc"), cwd=root)
        run([dvc, "config", "core.analytics", "false"], self.env("dvc"), cwd=root)
        (root / "dvc.yaml").write_text(dvc_yaml(self.specs), encoding="utf-8")
        self.dvc = dvc
        return version

    # ---- the commands of each side

    def full(self, side: str, name: str, stages: list[dict[str, Any]] | None = None,
             sample: bool = False) -> tuple[float, list[str]]:
        """Bring the side up to date (`doit`, `dvc repro`) or, for the floor, run stages;
        `sample`: the peak RSS of the command's process tree in self.peak."""
        if side == "mlops-tasks":
            seconds, out = self.command(side, [sys.executable, "-m", "doit"], name, sample)
            return seconds, doit_ran(out)
        if side == "dvc":
            assert self.dvc is not None
            seconds, out = self.command(side, [str(self.dvc), "repro", "--no-run-cache"], name,
                                        sample)
            return seconds, dvc_ran(out)
        return self.floor(stages if stages is not None else self.specs, name, sample)

    def floor(self, stages: list[dict[str, Any]], name: str, sample: bool = False
              ) -> tuple[float, list[str]]:
        plan = [{"notebook": s["notebook"], "out": f"executed/{s['name']}.ipynb",
                 "parameters": s.get("parameters") or {}, "kernel": kernel(s)} for s in stages]
        seconds, _ = self.command("floor", [sys.executable, "-c", FLOOR_CODE,
                                            json.dumps(plan)], name, sample)
        return seconds, [s["name"] for s in stages]

    def reset(self, side: str) -> None:
        """No outputs and no record of the stages' runs (the venvs and kernels stay)."""
        root = self.roots[side]
        for folder in OUTPUT_DIRS:
            rmtree(root / folder)
        (root / "executed").mkdir()
        if side == "mlops-tasks":
            tasks = [f"{kind}:{s['name']}" for s in self.specs for kind in ("execute", "log")]
            run([sys.executable, "-m", "doit", "forget", *tasks], self.env(side), cwd=root)
        elif side == "dvc":
            (root / "dvc.lock").unlink(missing_ok=True)
            rmtree(root / ".dvc" / "cache")

    def one(self, side: str, name: str) -> tuple[float, list[str]]:
        spec = self.specs[0]
        root = self.roots[side]
        for rel in [*(spec.get("outputs") or []), *(spec.get("metrics") or [])]:
            (root / rel).unlink(missing_ok=True)
        if side == "mlops-tasks":
            tasks = [f"execute:{spec['name']}", f"log:{spec['name']}"]
            run([sys.executable, "-m", "doit", "forget", *tasks], self.env(side), cwd=root)
            seconds, out = self.command(side, [sys.executable, "-m", "doit", "run", *tasks],
                                        name)
            return seconds, doit_ran(out)
        if side == "dvc":
            assert self.dvc is not None
            seconds, out = self.command(side, [str(self.dvc), "repro", "--no-run-cache", "-s", "-f",
                                               spec["name"]], name)
            return seconds, dvc_ran(out)
        return self.floor([spec], name)

    def restore(self, side: str, name: str) -> tuple[float, list[str], int]:
        """data_prep's output deleted, then data_prep brought up to date with the side's
        cache on: mlops-tasks `doit run` with the stage cache read-write (after an untimed
        `doit forget`), `dvc repro -s` with its run cache; the floor executes it. Also how
        many kernel processes were seen in the command's process tree."""
        spec = self.specs[0]
        root = self.roots[side]
        for rel in [*(spec.get("outputs") or []), *(spec.get("metrics") or [])]:
            (root / rel).unlink(missing_ok=True)
        if side == "mlops-tasks":
            tasks = [f"execute:{spec['name']}", f"log:{spec['name']}"]
            run([sys.executable, "-m", "doit", "forget", *tasks], self.env(side), cwd=root)
            argv = [sys.executable, "-m", "doit", "run", *tasks]
        elif side == "dvc":
            argv = [str(self.dvc), "repro", "-s", spec["name"]]
        else:
            plan = [{"notebook": spec["notebook"], "out": f"executed/{spec['name']}.ipynb",
                     "parameters": spec.get("parameters") or {}, "kernel": kernel(spec)}]
            argv = [sys.executable, "-c", FLOOR_CODE, json.dumps(plan)]
        timed = self.timed(side, argv, name, cache=True, sample=True)
        kernels = sum("ipykernel_launcher" in cmd for cmd in timed.seen)
        ran = {"mlops-tasks": doit_ran, "dvc": dvc_ran}.get(side, lambda _: [spec["name"]])
        return timed.seconds, ran(timed.output), kernels

    def edit(self, side: str, name: str) -> tuple[float, list[str]]:
        index = next(i for i, s in enumerate(self.specs) if s["name"] == EDITED)
        self.edited[side] = toggle_edit(self.roots[side], self.specs[index])
        return self.full(side, name, self.specs[index:])

    def revert(self, side: str) -> list[str]:
        """Take the edit out again (untimed) and bring the side up to date."""
        if not self.edited[side]:
            return []
        index = next(i for i, s in enumerate(self.specs) if s["name"] == EDITED)
        self.edited[side] = toggle_edit(self.roots[side], self.specs[index])
        return self.full(side, f"{side}-revert", self.specs[index:])[1]


# --------------------------------------------------------------------------- scenarios


EXPECTED = {"full": 4, "edit": 3, "one": 1, "noop": 0, "restore": 1}
# what the restore scenario must run on each side: data_prep restored, not executed
RESTORE_EXPECTED = {"mlops-tasks": ["data_prep (restored)"], "dvc": ["data_prep (run cache)"],
                    "floor": ["data_prep"]}


def timed_run(sides: Sides, scenario: str, side: str, name: str, entry: dict[str, Any]
              ) -> tuple[float, list[str]]:
    """One timed command of a scenario; the full run's peak memory and the restore's kernel
    count go into `entry` (the side's results) too."""
    if scenario == "full":
        sides.reset(side)
        seconds, ran = sides.full(side, name, sample=True)
        entry.setdefault("peak_mb", []).append(round((sides.peak or 0) / MB, 1))
        entry.setdefault("at_peak_mb", []).append(
            [[name, round(rss / MB, 1)] for name, rss in sides.at_peak])
        return seconds, ran
    if scenario == "edit":
        return sides.edit(side, name)
    if scenario == "one":
        return sides.one(side, name)
    if scenario == "restore":
        seconds, ran, kernels = sides.restore(side, name)
        entry.setdefault("kernels", []).append(kernels)
        return seconds, ran
    return sides.full(side, name)


def catch_up(sides: Sides, scenario: str) -> dict[str, list[str]]:
    """Untimed, before a scenario: edit and no-op start from an up-to-date side; restore from
    a cache with an entry for data_prep's current key (data_prep run once with the cache on:
    restored, or executed and offered)."""
    done = {}
    for side in sides.sides():
        if side == "floor":
            continue
        if scenario in ("edit", "noop"):
            done[side] = sides.full(side, f"{side}-{scenario}-catch-up")[1]
        elif scenario == "restore":
            done[side] = sides.restore(side, f"{side}-{scenario}-prime")[1]
    return done


def measure(sides: Sides, runs: int, load: Load) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        sc: {"order": [], **{side: {"seconds": [], "ran": []} for side in sides.sides()}}
        for sc in SCENARIOS}
    for scenario in SCENARIOS:
        results[scenario]["catch_up"] = catch_up(sides, scenario)
        for i in range(runs):
            order = [s for s in rotated(sides.sides(), i)
                     if not (scenario == "noop" and s == "floor")]
            results[scenario]["order"].append(order)
            log(f"{scenario} run {i + 1}/{runs}: {', '.join(order)} ...")
            for side in order:
                entry = results[scenario][side]
                seconds, ran = timed_run(sides, scenario, side, f"{side}-{scenario}-{i + 1}",
                                         entry)
                entry["seconds"].append(seconds)
                entry["ran"].append(ran)
                log(f"  {side}: {seconds:.1f} s, ran {ran or 'nothing'}"
                    + (f", peak {entry['peak_mb'][-1]:.0f} MB" if scenario == "full" else ""))
            load.sample()
        if scenario == "edit":
            results[scenario]["reverted"] = {side: sides.revert(side) for side in sides.sides()}
    return results


# --------------------------------------------------------------------------- report


def cell(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "n/a"
    med, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return med if len(values) == 1 else f"{med} ({lo}–{hi})"


def restore_notes(side: str, i: int, stages: list[str], kernels: int) -> list[str]:
    """What a run of the restore scenario did that it should not: data_prep executed, or a
    kernel started, where it should have been restored (the floor executes it, on a kernel)."""
    notes = []
    if stages != RESTORE_EXPECTED[side]:
        notes.append(f"restore, run {i}: {side} ran {stages or 'nothing'}, expected "
                     f"{RESTORE_EXPECTED[side]}")
    if kernels != (1 if side == "floor" else 0):
        notes.append(f"restore, run {i}: {kernels} kernel process(es) in {side}'s process tree")
    return notes


def memory_table(full: dict[str, Any]) -> str:
    """The second table: each side's peak memory over the full run."""
    rows = [[side, cell(full[side].get("peak_mb", []), "{:.0f}")] for side in SIDES
            if side in full]
    return "\n".join([
        f"peak memory of the full run: the largest sum of RSS over the command's process tree "
        f"(its process group and every descendant: the kernels lead groups of their own), "
        f"sampled every {SAMPLE_INTERVAL * 1000:.0f} ms from /proc; median of the runs, MB "
        f"(10^6 bytes), min–max in brackets; aim: {MEMORY_AIM}",
        "",
        markdown_table(["side", "peak RSS of the process tree, MB"], rows),
        "",
        "the processes at the peak of each side's median run (MB):",
        *(f"- {side}: " + ", ".join(f"{name} {mb:.0f}" for name, mb in parts)
          for side, parts in median_peaks(full))])


def median_peaks(full: dict[str, Any]) -> list[tuple[str, list[list[Any]]]]:
    """Per side, the processes of the run whose peak is the median one."""
    out = []
    for side in SIDES:
        peaks, parts = full.get(side, {}).get("peak_mb", []), full.get(side, {}).get(
            "at_peak_mb", [])
        if peaks and len(parts) == len(peaks):
            order = sorted(range(len(peaks)), key=peaks.__getitem__)
            out.append((side, parts[order[len(order) // 2]]))
    return out


def report(meta: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    med = statistics.median
    rows = []
    notes = []
    for scenario, label in SCENARIOS.items():
        r = results[scenario]
        t = {side: r[side]["seconds"] if side in r else [] for side in SIDES}
        if scenario == "noop":
            t["floor"] = []
        m = t["mlops-tasks"]

        def vs(other: list[float], m: list[float] = m) -> str:
            return f"{ratio(med(m), med(other))}x" if m and other else "n/a"

        ran = {side: r[side]["ran"] for side in SIDES if side in r and r[side]["ran"]}
        counts = " / ".join(",".join(str(len(x)) for x in ran.get(side, [])) or "n/a"
                            for side in SIDES)
        rows.append([label, cell(t["mlops-tasks"]), cell(t["dvc"]), cell(t["floor"]),
                     vs(t["dvc"]), vs(t["floor"]), counts])
        for side, per_run in ran.items():
            for i, stages in enumerate(per_run, 1):
                if scenario == "restore":
                    notes += restore_notes(side, i, stages, r[side]["kernels"][i - 1])
                elif len(stages) != EXPECTED[scenario]:
                    notes.append(f"{scenario}, run {i}: {side} ran {len(stages)} stages "
                                 f"({stages or 'none'}), expected {EXPECTED[scenario]}")
    lines = [
        f"Example pipeline, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, mlops-tasks {meta['mlops-tasks']}"
        f"{'' if meta.get('boot_ahead', True) else ' (MLOPS_BOOT_AHEAD=0)'}, "
        f"{meta['dvc'] or 'DVC not installed'}, papermill {meta['papermill']}; "
        f"{meta['load']}",
        f"median of {meta['runs']} run(s) in seconds, min–max in brackets; wall clock of the "
        "whole command; the same notebooks on the same kernels",
        "",
        markdown_table(["scenario", "mlops-tasks `doit`", "DVC `dvc repro`",
                        "floor (papermill, one process)", "mlops-tasks / DVC",
                        "mlops-tasks / floor",
                        "stages run in each run (mlops-tasks / DVC / floor)"],
                       rows),
        "",
        f"warm-up `doit` (builds the venvs and kernels, untimed for the table): "
        f"{meta['warm_up_s']:.0f} s",
        "",
        memory_table(results["full"]),
        "",
    ]
    if meta.get("dvc_note"):
        lines.append(meta["dvc_note"])
    lines += notes or ["every timed command ran the stages its scenario expects (restore: "
                       "data_prep restored by mlops-tasks and DVC, no kernel in their process "
                       "trees)"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs per scenario and side (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    parser.add_argument("--no-boot-ahead", action="store_true",
                        help="mlops-tasks with MLOPS_BOOT_AHEAD=0 (no kernel booted ahead)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not hasattr(os, "killpg"):
        parser.error("process groups are needed (POSIX)")
    from importlib.metadata import version
    meta: dict[str, Any] = {**machine(args.runs), "papermill": version("papermill"),
                            "dvc": "", "dvc_note": ""}
    load = Load()
    with temp_folder("bench-pipeline-", args.keep) as (tmp, left):
        try:
            src = tmp / "mlops-tasks-src"
            meta["mlops-tasks"] = head_snapshot(src)
            sides = Sides(tmp, load_specs(src), src)
            if args.no_boot_ahead:
                sides.mlops_env["MLOPS_BOOT_AHEAD"] = "0"
            meta["boot_ahead"] = not args.no_boot_ahead
            log("warm-up: `doit` in the mlops-tasks copy (venvs, kernels, every stage) ...")
            meta["warm_up_s"] = sides.warm_up()
            log(f"  done in {meta['warm_up_s']:.0f} s")
            log('installing "dvc>=3" into its own venv ...')
            dvc_version = sides.install_dvc()
            meta["dvc"] = f"dvc {dvc_version}" if dvc_version else ""
            meta["dvc_note"] = sides.dvc_note
            log(f"  {meta['dvc'] or sides.dvc_note}")
            load.sample()
            results = measure(sides, args.runs, load)
        except BenchError as err:
            sys.stderr.write(f"\nERROR: {err}\n")
            return 1
    load.sample()
    meta["load"] = load.describe()
    print("\n" + report(meta, results))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    summaries: dict[str, Any] = {
        sc: {side: summary(r[side]["seconds"]) for side in SIDES
             if side in r and r[side]["seconds"]} for sc, r in results.items()}
    summaries["full_peak_mb"] = {side: statistics.median(results["full"][side]["peak_mb"])
                                 for side in SIDES if results["full"].get(side, {}).get("peak_mb")}
    if args.json:
        args.json.write_text(json.dumps({**meta, **load.as_dict(), "medians": summaries,
                                         "results": results, "left_running": left},
                                        indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
