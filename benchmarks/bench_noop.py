#!/usr/bin/env python
"""No-op cost: mlops-tasks against dvc and snakemake when everything is already up to date.

For pipelines of 4, 50 and 200 stages (--sizes), side by side in one run:

mlops-tasks  `doit` (nothing to do) and `doit list`
dvc          `dvc repro` (nothing to do) and `dvc status`
snakemake    `snakemake -n` (dry run) and `snakemake --cores 1` (nothing to do)

The pipelines have the same shape for the three tools: a few parallel chains (at most
four) that pass a small file from stage to stage, starting from a committed seed file.

mlops-tasks  one tiny notebook per stage (a parameters cell, a cell that copies its input
             file to its output file), a spec with its own env_dir and `packages: []`, so
             each stage venv holds only ipykernel, installed offline from a local wheelhouse
             filled once with `pip download`. Brought up to date with
             `doit -n 2 --continue` (run again while it fails; failures are reported), which
             builds one venv per stage, executes every notebook and records every run in
             MLflow: minutes at 200 stages.
dvc          a dvc.yaml with one stage per notebook, each a `cp` of its dependency to its
             output, in a git repository (`git init`, `dvc init`), brought up to date with
             `dvc repro`.
snakemake    a Snakefile with one rule per stage doing the same `cp`, and a first rule
             `all` asking for the last file of each chain, brought up to date with
             `snakemake --cores 1`.

Before timing, each project is checked to be up to date: a second `doit` executes no task
(no line starting with ".  "), `dvc repro` runs no stage, snakemake has nothing to be done;
every timed run is checked again. Each command is timed as a subprocess (wall clock) and
the best of --runs is reported (the commands are interleaved, so load on the machine hits
them alike), with seconds per stage and the ratio to mlops-tasks' `doit` at the same size.

Isolation: mlops-tasks is the committed HEAD of the repository this script lives in
(`git archive HEAD`), installed (not editable) with uv into a venv of its own; dvc and
snakemake are installed with pip into a venv each. Everything lives in one temporary
folder, removed at the end unless --keep. Every subprocess runs without the machine's pip,
uv, MLflow and Jupyter settings (PIP_*, UV_*, MLFLOW_*, JUPYTER_* dropped,
PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG=1) and without PYTHONDONTWRITEBYTECODE; dvc runs
with DVC_NO_ANALYTICS=1. The network is used for the installs and the wheel download only.

Usage: python benchmarks/bench_noop.py [--sizes 4,50,200] [--runs 5] [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from _common import WINDOWS, BenchError, clean_env, rmtree, venv_python

REPO = Path(__file__).resolve().parent.parent
MAX_CHAINS = 4
SEED = "data/seed.txt"
GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com",
          "-c", "commit.gpgsign=false"]
SETUP_TIMEOUT = 4 * 3600
RUN_TIMEOUT = 900
SETUP_ATTEMPTS = 5


# --------------------------------------------------------------------------- environment


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def run(argv: list[str | os.PathLike[str]], env: dict[str, str], cwd: Path | None = None,
        timeout: float = RUN_TIMEOUT) -> tuple[float, str]:
    """Run argv; return (wall seconds, stdout and stderr). Raise BenchError on failure."""
    args = [os.fspath(a) for a in argv]
    start = time.perf_counter()
    try:
        proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, encoding="utf-8",
                              errors="replace", timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(args)}") from err
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(output.strip().splitlines()[-40:])
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(args)} (in {cwd})\n"
                         f"{tail}")
    return seconds, output


def run_logged(argv: list[str | os.PathLike[str]], env: dict[str, str], cwd: Path,
               log_file: Path, progress: Callable[[str], str] | None = None,
               every: float = 60.0) -> float:
    """A long step: output goes to log_file, progress(output so far) is printed now and then.
    Return wall seconds; raise BenchError with the log's tail on failure."""
    args = [os.fspath(a) for a in argv]
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        while True:
            try:
                proc.wait(timeout=every)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - start > SETUP_TIMEOUT:
                    proc.kill()
                    proc.wait()
                    raise BenchError(f"timed out: {' '.join(args)}; see {log_file}") from None
                if progress:
                    text = log_file.read_text(encoding="utf-8", errors="replace")
                    log(f"  ... {time.perf_counter() - start:.0f} s, {progress(text)}")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        text = log_file.read_text(encoding="utf-8", errors="replace")
        tail = "\n".join(text.strip().splitlines()[-40:])
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(args)} (in {cwd})\n"
                         f"{tail}")
    return seconds


def git(root: Path, *args: str) -> None:
    run(["git", *GIT_ID, *args], clean_env(), cwd=root)


def git_commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


def package_version(python: Path, dist: str) -> str:
    _, out = run([python, "-c", f"from importlib.metadata import version; "
                  f"print(version({dist!r}))"], clean_env())
    return out.strip()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


# --------------------------------------------------------------------------- pipeline shape


@dataclass(frozen=True)
class Stage:
    name: str
    src: str
    dst: str


def pipeline(n: int) -> list[list[Stage]]:
    """n stages in min(MAX_CHAINS, n // 2) chains (at least one); each chain starts from
    the seed file and passes one small file along."""
    n_chains = max(1, min(MAX_CHAINS, n // 2))
    chains = []
    for c in range(n_chains):
        length = n // n_chains + (1 if c < n % n_chains else 0)
        stages, src = [], SEED
        for i in range(length):
            dst = f"data/c{c}/s{i:03d}.txt"
            stages.append(Stage(f"c{c}_s{i:03d}", src, dst))
            src = dst
        chains.append(stages)
    return chains


def all_stages(chains: list[list[Stage]]) -> list[Stage]:
    return [s for chain in chains for s in chain]


def write_seed(root: Path) -> None:
    (root / SEED).parent.mkdir(parents=True, exist_ok=True)
    (root / SEED).write_text("a small file passed from stage to stage\n", encoding="utf-8")


def copy_cmd(stage: Stage) -> str:
    if WINDOWS:
        return f'copy /Y "{Path(stage.src)}" "{Path(stage.dst)}"'
    return f"cp {stage.src} {stage.dst}"


# --------------------------------------------------------------------------- installs


def find_uv() -> str:
    """uv from the Python running this script (the `uv` package), next to it, or on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    beside = Path(sys.executable).parent / ("uv.exe" if WINDOWS else "uv")
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if not found:
        raise BenchError("uv not found: install it (python -m pip install uv) or run this "
                         "script with the project's venv, which has it")
    return found


def snapshot_head(dest: Path) -> str:
    """The committed project (git archive HEAD) extracted into dest; return the commit."""
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"git archive failed in {REPO}: {proc.stderr.decode(errors='replace')}")
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - old patch releases
            tar.extractall(dest)
    _, sha = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], clean_env())
    return sha.strip()


def install_orchestrator(tmp: Path, uv: str) -> tuple[Path, str]:
    snapshot = tmp / "mlops-tasks-src"
    sha = snapshot_head(snapshot)
    venv = tmp / "venv-mlops-tasks"
    env = clean_env()
    run([uv, "venv", "--quiet", "--python", sys.executable, venv], env, timeout=SETUP_TIMEOUT)
    run([uv, "pip", "install", "--quiet", "--python", venv_python(venv), snapshot], env,
        timeout=SETUP_TIMEOUT)
    return venv_python(venv), sha


def install_peer(tmp: Path, package: str) -> Path:
    venv = tmp / f"venv-{package}"
    env = clean_env()
    run([sys.executable, "-m", "venv", venv], env, timeout=SETUP_TIMEOUT)
    py = venv_python(venv)
    run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", package], env,
        timeout=SETUP_TIMEOUT)
    return py


def fill_wheels(tmp: Path, pip_python: Path) -> Path:
    wheels = tmp / "wheels"
    run([pip_python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary", ":all:", "--dest", wheels, "ipykernel"], clean_env(),
        timeout=SETUP_TIMEOUT)
    return wheels


def has_pip(python: str | Path) -> bool:
    return subprocess.run([os.fspath(python), "-m", "pip", "--version"], env=clean_env(),
                          capture_output=True, check=False).returncode == 0


# --------------------------------------------------------------------------- the projects


def notebook(stage: Stage) -> str:
    cells = [
        ("parameters", f"src = {stage.src!r}\ndst = {stage.dst!r}"),
        (None, "from pathlib import Path\n"
               "text = Path(src).read_text()\n"
               "Path(dst).parent.mkdir(parents=True, exist_ok=True)\n"
               "Path(dst).write_text(text)"),
    ]
    nb = {
        "cells": [{"cell_type": "code", "id": f"c{i}", "execution_count": None, "outputs": [],
                   "metadata": {"tags": [tag]} if tag else {}, "source": source}
                  for i, (tag, source) in enumerate(cells)],
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
    }
    return json.dumps(nb, indent=1) + "\n"


def make_mlops_project(root: Path, chains: list[list[Stage]], wheels: Path) -> None:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [tool.doit]
        dep_file = ".mlops/doit.db"
        backend = "sqlite3"
        verbosity = 2
        par_type = "thread"

        [tool.mlops_tasks]
        wheels_cache = {json.dumps(wheels.resolve().as_posix())}
        index_policy = "offline"
        experiment = "bench"
        """), encoding="utf-8")
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n", encoding="utf-8")
    (root / ".gitignore").write_text(".mlops/\n.venvs/\ndata/c*/\n", encoding="utf-8")
    (root / "env_specs").mkdir()
    (root / "notebooks").mkdir()
    write_seed(root)
    for stage in all_stages(chains):
        (root / "notebooks" / f"{stage.name}.ipynb").write_text(notebook(stage),
                                                                encoding="utf-8")
        (root / "env_specs" / f"{stage.name}.yaml").write_text(textwrap.dedent(f"""\
            name: {stage.name}
            notebook: notebooks/{stage.name}.ipynb
            env_dir: .venvs/{stage.name}
            packages: []
            parameters:
              src: {stage.src}
              dst: {stage.dst}
            inputs:
              - {stage.src}
            outputs:
              - {stage.dst}
            """), encoding="utf-8")
    git(root, "init", "-q")
    git_commit_all(root, "pipeline")


def make_dvc_project(root: Path, chains: list[list[Stage]], dvc_py: Path) -> None:
    root.mkdir(parents=True)
    write_seed(root)
    lines = ["stages:"]
    for stage in all_stages(chains):
        (root / stage.dst).parent.mkdir(parents=True, exist_ok=True)
        lines += [f"  {stage.name}:", f"    cmd: {json.dumps(copy_cmd(stage))}",
                  "    deps:", f"      - {stage.src}", "    outs:", f"      - {stage.dst}"]
    (root / "dvc.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    git(root, "init", "-q")
    run([dvc_py, "-m", "dvc", "init", "-q"], dvc_env(), cwd=root)
    git_commit_all(root, "pipeline")


def make_snakemake_project(root: Path, chains: list[list[Stage]]) -> None:
    root.mkdir(parents=True)
    write_seed(root)
    finals = ", ".join(json.dumps(chain[-1].dst) for chain in chains if chain)
    parts = [f"rule all:\n    input: {finals}\n"]
    for stage in all_stages(chains):
        parts.append(f"rule {stage.name}:\n"
                     f"    input: {json.dumps(stage.src)}\n"
                     f"    output: {json.dumps(stage.dst)}\n"
                     f"    shell: {json.dumps(copy_cmd(stage))}\n")
    (root / "Snakefile").write_text("\n".join(parts), encoding="utf-8")


def dvc_env() -> dict[str, str]:
    return clean_env(DVC_NO_ANALYTICS="1")


# --------------------------------------------------------------------------- checks


def doit_ran(output: str) -> list[str]:
    """Tasks doit executed: its '.  name' lines (verbosity 2)."""
    return [line[3:].strip() for line in output.splitlines() if line.startswith(".  ")]


def check_doit_noop(output: str) -> None:
    ran = doit_ran(output)
    if ran:
        raise BenchError(f"`doit` was expected to do nothing but ran {len(ran)} tasks: "
                         f"{', '.join(ran[:10])}")


def check_doit_list(stages: list[Stage]) -> Callable[[str], None]:
    def check(output: str) -> None:
        listed = {line.split()[0] for line in output.splitlines() if line.strip()}
        missing = [s.name for s in stages if s.name not in listed]
        if missing:
            raise BenchError(f"`doit list` misses {len(missing)} stages: {missing[:5]}")
    return check


def check_dvc_noop(output: str) -> None:
    if "Running stage" in output:
        ran = [line for line in output.splitlines() if "Running stage" in line]
        raise BenchError(f"`dvc repro` was expected to do nothing but ran: {ran[:5]}")


def check_dvc_status(output: str) -> None:
    if "up to date" not in output:
        raise BenchError(f"`dvc status` does not say up to date:\n{output[-2000:]}")


def check_snakemake_noop(output: str) -> None:
    if "Nothing to be done" not in output:
        raise BenchError(f"snakemake was expected to have nothing to do:\n{output[-2000:]}")


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Command:
    tool: str
    label: str
    argv: list[str | os.PathLike[str]]
    cwd: Path
    env: dict[str, str]
    check: Callable[[str], None]


def failure_summary(error: str) -> str:
    """The failed tasks and the first error line, from a failed doit run's output."""
    lines = error.splitlines()
    tasks = sorted({ln.split("taskid:")[1].strip() for ln in lines
                    if ln.startswith(("TaskError - taskid:", "TaskFailed - taskid:"))})
    last = next((ln for ln in lines if ln and not ln.startswith((" ", ".", "$")) and
                 ("Error" in ln or "Exception" in ln) and "taskid" not in ln
                 and ln != "PythonAction Error"), lines[-1] if lines else "")
    return f"{', '.join(tasks) or '?'}: {last.strip()}"


def setup_size(tmp: Path, n: int, pythons: dict[str, Path], wheels: Path,
               failures: list[str]) -> tuple[list[Command], dict[str, float], int]:
    chains = pipeline(n)
    stages = all_stages(chains)
    base = tmp / f"n{n}"
    base.mkdir()
    setup: dict[str, float] = {}
    orch, dvc_py, sm_py = pythons["mlops-tasks"], pythons["dvc"], pythons["snakemake"]

    # mlops-tasks: one venv, one kernel, one execution, one MLflow run per stage.
    root = base / "mlops-tasks"
    make_mlops_project(root, chains, wheels)
    log(f"{n} stages, {len(chains)} chains: mlops-tasks `doit -n 2` (builds {n} venvs, "
        f"executes {n} notebooks; log in {root / 'setup.log'}) ...")

    def progress(text: str) -> str:
        ran = doit_ran(text)
        counts = {p: sum(1 for t in ran if t.startswith(p + ":"))
                  for p in ("venv", "execute", "log")}
        return ", ".join(f"{p} {c}/{n}" for p, c in counts.items())

    env = clean_env()
    setup["mlops-tasks"] = 0.0
    for attempt in range(1, SETUP_ATTEMPTS + 1):
        # A setup failure must not cost the whole benchmark: --continue lets the other tasks
        # go on, a failed run is run again and doit resumes with what is still stale, and
        # every failure is reported with the results. (Older snapshots failed here on
        # Python < 3.12 when two venv builds looked up uv at once; mlops-tasks now looks it
        # up once per process, under a lock.)
        log_file = root / ("setup.log" if attempt == 1 else f"setup-{attempt}.log")
        start = time.perf_counter()
        try:
            run_logged([orch, "-m", "doit", "-n", "2", "--continue"], env, root, log_file,
                       progress)
            break
        except BenchError:
            text = log_file.read_text(encoding="utf-8", errors="replace")
            failures.append(f"{n} stages, attempt {attempt}: {failure_summary(text)}")
            log(f"  `doit -n 2 --continue` failed ({failures[-1]}); see {log_file}")
            if attempt == SETUP_ATTEMPTS:
                raise
        finally:
            setup["mlops-tasks"] += time.perf_counter() - start
    log(f"  done in {setup['mlops-tasks']:.0f} s")
    _, out = run([orch, "-m", "doit"], env, cwd=root)
    check_doit_noop(out)

    # dvc
    droot = base / "dvc"
    make_dvc_project(droot, chains, dvc_py)
    log(f"{n} stages: dvc repro ...")
    setup["dvc"], _ = run([dvc_py, "-m", "dvc", "repro", "-q"], dvc_env(), cwd=droot,
                          timeout=SETUP_TIMEOUT)
    git_commit_all(droot, "dvc.lock")
    _, out = run([dvc_py, "-m", "dvc", "repro"], dvc_env(), cwd=droot)
    check_dvc_noop(out)

    # snakemake
    sroot = base / "snakemake"
    make_snakemake_project(sroot, chains)
    log(f"{n} stages: snakemake --cores 1 ...")
    setup["snakemake"], _ = run([sm_py, "-m", "snakemake", "--cores", "1"], clean_env(),
                                cwd=sroot, timeout=SETUP_TIMEOUT)
    _, out = run([sm_py, "-m", "snakemake", "--cores", "1"], clean_env(), cwd=sroot)
    check_snakemake_noop(out)

    commands = [
        Command("mlops-tasks", "doit", [orch, "-m", "doit"], root, env, check_doit_noop),
        Command("mlops-tasks", "doit list", [orch, "-m", "doit", "list"], root, env,
                check_doit_list(stages)),
        Command("dvc", "dvc repro", [dvc_py, "-m", "dvc", "repro"], droot, dvc_env(),
                check_dvc_noop),
        Command("dvc", "dvc status", [dvc_py, "-m", "dvc", "status"], droot, dvc_env(),
                check_dvc_status),
        Command("snakemake", "snakemake -n", [sm_py, "-m", "snakemake", "-n"], sroot,
                clean_env(), check_snakemake_noop),
        Command("snakemake", "snakemake --cores 1", [sm_py, "-m", "snakemake", "--cores", "1"],
                sroot, clean_env(), check_snakemake_noop),
    ]
    return commands, setup, len(chains)


def time_commands(commands: list[Command], runs: int) -> dict[str, list[float]]:
    """Each command once untimed (warm caches), then `runs` interleaved timed rounds."""
    for cmd in commands:
        _, out = run(cmd.argv, cmd.env, cwd=cmd.cwd)
        cmd.check(out)
    times: dict[str, list[float]] = {cmd.label: [] for cmd in commands}
    for _ in range(runs):
        for cmd in commands:
            seconds, out = run(cmd.argv, cmd.env, cwd=cmd.cwd)
            cmd.check(out)
            times[cmd.label].append(seconds)
    return times


def benchmark(tmp: Path, sizes: list[int], runs: int, keep: bool
              ) -> tuple[dict[str, object], list[dict[str, object]], dict[str, object],
                         list[str]]:
    uv = find_uv()
    log("installing mlops-tasks (git archive HEAD) with uv ...")
    orch, sha = install_orchestrator(tmp, uv)
    log("installing dvc with pip ...")
    dvc_py = install_peer(tmp, "dvc")
    log("installing snakemake with pip ...")
    sm_py = install_peer(tmp, "snakemake")
    log("downloading ipykernel wheels for the stage venvs ...")
    wheels = fill_wheels(tmp, Path(sys.executable) if has_pip(sys.executable) else dvc_py)
    _, uv_out = run([uv, "--version"], clean_env())
    versions = {
        "mlops-tasks": f"HEAD {sha}",
        "doit": package_version(orch, "doit"),
        "uv": uv_out.strip(),
        "dvc": package_version(dvc_py, "dvc"),
        "snakemake": package_version(sm_py, "snakemake"),
        "wheels": len(list(wheels.glob("*.whl"))),
    }
    log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    pythons = {"mlops-tasks": orch, "dvc": dvc_py, "snakemake": sm_py}

    rows: list[dict[str, object]] = []
    setups: dict[str, object] = {}
    failures: list[str] = []
    for n in sizes:
        commands, setup, n_chains = setup_size(tmp, n, pythons, wheels, failures)
        setups[str(n)] = {k: round(v, 1) for k, v in setup.items()}
        log(f"{n} stages: timing, best of {runs} ...")
        times = time_commands(commands, runs)
        doit_best = min(times["doit"])
        for cmd in commands:
            best = min(times[cmd.label])
            rows.append({
                "tool": cmd.tool, "command": cmd.label, "stages": n, "chains": n_chains,
                "best_s": round(best, 3), "median_s": round(statistics.median(times[cmd.label]),
                                                            3),
                "per_stage_ms": round(1000 * best / n, 2),
                "ratio_to_doit": round(best / doit_best, 2),
                "runs_s": [round(t, 3) for t in times[cmd.label]],
            })
            log(f"  {cmd.label:<20} best {best:.2f} s")
        if not keep:
            rmtree(tmp / f"n{n}")
    return versions, rows, setups, failures


def report(meta: dict[str, object], rows: list[dict[str, object]],
           setups: dict[str, object], failures: list[str]) -> str:
    v = meta["versions"]
    lines = [
        f"No-op cost, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, load average {meta['load_start']} -> {meta['load_end']}",
        f"mlops-tasks {v['mlops-tasks']} (doit {v['doit']}, {v['uv']}), dvc {v['dvc']}, "
        f"snakemake {v['snakemake']}; best of {meta['runs']} runs, wall clock of the "
        "whole command",
        "",
        "| tool | command | stages | best (s) | median (s) | per stage (ms) | / doit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['tool']} | `{r['command']}` | {r['stages']} | {r['best_s']:.2f} "
                     f"| {r['median_s']:.2f} | {r['per_stage_ms']:.1f} "
                     f"| {r['ratio_to_doit']:.2f} |")
    lines += ["", "setup (bringing each project up to date once, s):"]
    for n, setup in setups.items():
        lines.append(f"  {n} stages: " + ", ".join(f"{k} {s:.0f}" for k, s in setup.items()))
    if failures:
        lines += ["", f"`doit -n 2 --continue` failed {len(failures)} time(s) during setup and "
                  "was run again:"]
        lines += [f"  {f}" for f in failures]
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}"
                                         ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive stage counts")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=[4, 50, 200],
                        help="stage counts, comma-separated (default 4,50,200)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (best of)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    meta: dict[str, object] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "sizes": args.sizes,
        "load_start": load_average(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    log(f"working in {tmp}")
    try:
        meta["versions"], rows, setups, failures = benchmark(tmp, args.sizes, args.runs,
                                                             args.keep)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    meta["load_end"] = load_average()
    print()
    print(report(meta, rows, setups, failures))
    if args.json:
        args.json.write_text(json.dumps({**meta, "results": rows, "setup_s": setups,
                                         "setup_failures": failures}, indent=2) + "\n",
                             encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
