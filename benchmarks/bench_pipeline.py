#!/usr/bin/env python
"""The example pipeline run three ways on the same kernels: mlops-tasks, DVC 3 and papermill.

The repository's example pipeline (env_specs/*.yaml, notebooks/*.ipynb: 4 stages,
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
   n/a).

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
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
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
    measured_mlops_tasks,
    ratio,
    rmtree,
    rotated,
    run,
    summary,
)
from _groups import GIT_ID, bench_env, run_in_group, temp_folder

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
}
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


def copy_example(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
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
    def __init__(self, tmp: Path, specs: list[dict[str, Any]]) -> None:
        self.tmp, self.specs = tmp, specs
        self.roots = {side: copy_example(tmp / side / "example") for side in SIDES}
        self.jupyter = self.roots["mlops-tasks"] / ".mlops" / "jupyter"
        self.dvc: Path | None = None
        self.dvc_note = ""
        self.edited = {side: False for side in SIDES}

    def env(self, side: str) -> dict[str, str]:
        if side == "mlops-tasks":
            return bench_env(PYTHONUNBUFFERED="1", MLOPS_STAGE_CACHE="off")
        # the train notebook's mlflow-skinny has no sqlite store: a file store, allowed
        store = (self.roots[side] / ".mlops" / "mlruns").as_uri()
        return bench_env(JUPYTER_PATH=str(self.jupyter), MLFLOW_TRACKING_URI=store,
                         MLFLOW_ALLOW_FILE_STORE="true", PYTHONUNBUFFERED="1")

    def sides(self) -> list[str]:
        return [s for s in SIDES if s != "dvc" or self.dvc is not None]

    def command(self, side: str, argv: list[str], name: str) -> tuple[float, str]:
        root = self.roots[side]
        timed = run_in_group(argv, self.env(side), root, root.parent / f"{name}.log")
        return timed.seconds, timed.output

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

    def full(self, side: str, name: str, stages: list[dict[str, Any]] | None = None
             ) -> tuple[float, list[str]]:
        """Bring the side up to date (`doit`, `dvc repro`) or, for the floor, run stages."""
        if side == "mlops-tasks":
            seconds, out = self.command(side, [sys.executable, "-m", "doit"], name)
            return seconds, doit_ran(out)
        if side == "dvc":
            assert self.dvc is not None
            seconds, out = self.command(side, [str(self.dvc), "repro", "--no-run-cache"], name)
            return seconds, dvc_ran(out)
        return self.floor(stages if stages is not None else self.specs, name)

    def floor(self, stages: list[dict[str, Any]], name: str) -> tuple[float, list[str]]:
        plan = [{"notebook": s["notebook"], "out": f"executed/{s['name']}.ipynb",
                 "parameters": s.get("parameters") or {}, "kernel": kernel(s)} for s in stages]
        seconds, _ = self.command("floor", [sys.executable, "-c", FLOOR_CODE,
                                            json.dumps(plan)], name)
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


EXPECTED = {"full": 4, "edit": 3, "one": 1, "noop": 0}


def measure(sides: Sides, runs: int, load: Load) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {
        sc: {"order": [], **{side: {"seconds": [], "ran": []} for side in sides.sides()}}
        for sc in SCENARIOS}
    for scenario in SCENARIOS:
        if scenario in ("edit", "noop"):  # they start from an up-to-date side
            for side in sides.sides():
                if side != "floor":
                    _, ran = sides.full(side, f"{side}-{scenario}-catch-up")
                    results[scenario].setdefault("catch_up", {})[side] = ran
        for i in range(runs):
            order = [s for s in rotated(sides.sides(), i)
                     if not (scenario == "noop" and s == "floor")]
            results[scenario]["order"].append(order)
            log(f"{scenario} run {i + 1}/{runs}: {', '.join(order)} ...")
            for side in order:
                name = f"{side}-{scenario}-{i + 1}"
                if scenario == "full":
                    sides.reset(side)
                    seconds, ran = sides.full(side, name)
                elif scenario == "edit":
                    seconds, ran = sides.edit(side, name)
                elif scenario == "one":
                    seconds, ran = sides.one(side, name)
                else:
                    seconds, ran = sides.full(side, name)
                results[scenario][side]["seconds"].append(seconds)
                results[scenario][side]["ran"].append(ran)
                log(f"  {side}: {seconds:.1f} s, ran {ran or 'nothing'}")
            load.sample()
        if scenario == "edit":
            results[scenario]["reverted"] = {side: sides.revert(side) for side in sides.sides()}
    return results


# --------------------------------------------------------------------------- report


def cell(values: list[float]) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({min(values):.1f}–{max(values):.1f})"


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
                if len(stages) != EXPECTED[scenario]:
                    notes.append(f"{scenario}, run {i}: {side} ran {len(stages)} stages "
                                 f"({stages or 'none'}), expected {EXPECTED[scenario]}")
    lines = [
        f"Example pipeline, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, mlops-tasks {meta['mlops-tasks']}, "
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
    ]
    if meta.get("dvc_note"):
        lines.append(meta["dvc_note"])
    lines += notes or ["every timed command ran the stages its scenario expects"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs per scenario and side (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
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
            meta["mlops-tasks"] = measured_mlops_tasks()
            sides = Sides(tmp, load_specs(REPO))
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
    summaries = {sc: {side: summary(r[side]["seconds"]) for side in SIDES
                      if side in r and r[side]["seconds"]} for sc, r in results.items()}
    if args.json:
        args.json.write_text(json.dumps({**meta, **load.as_dict(), "medians": summaries,
                                         "results": results, "left_running": left},
                                        indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
