#!/usr/bin/env python
"""No-op cost: mlops-tasks against dvc and snakemake when everything is already up to date.

For pipelines of 4, 50 and 200 stages (--sizes), side by side in one run:

mlops-tasks  `doit` (nothing to do) and `doit list`
dvc          `dvc repro` (nothing to do) and `dvc status`
snakemake    `snakemake -n` (dry run) and `snakemake --cores 1` (nothing to do)

The pipelines have the same shape for the three tools: a few parallel chains (at most
four) that pass a small file from stage to stage, starting from a committed seed file.

mlops-tasks  a project set up as the project ships it: [tool.doit] with the
             `sqlite3-durable` backend, one tiny notebook per stage (a parameters cell, a
             cell that copies its input file to its output file), a spec asking for
             `python: "X.Y"` (the version of the Python running this script, so interpreter
             resolution is on the measured path) with its own env_dir and `packages: []`, so
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
every timed run is checked again. Each command runs once untimed, then --runs timed rounds;
each round runs every command once, the tools in a different order each round (the first
tool of one round is the last of the next), so no tool always runs first. The table shows
the median of all runs (min and max beside it), with milliseconds per stage and the ratio
to mlops-tasks' `doit` at the same size, medians against medians. The load average is
sampled after every round and reported.

Isolation: mlops-tasks is the committed HEAD of the repository this script lives in
(`git archive HEAD`; with --uncommitted, its work tree as it is), installed (not editable)
with uv into a venv of its own; dvc and snakemake are installed with pip into a venv each.
Everything lives in one temporary folder, removed at the end unless --keep. Every
subprocess runs without the machine's pip, uv, MLflow and Jupyter settings (PIP_*, UV_*,
MLFLOW_*, JUPYTER_* dropped, PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG=1) and without
PYTHONDONTWRITEBYTECODE; dvc runs with DVC_NO_ANALYTICS=1. The network is used for the
installs and the wheel download only.

Usage: python benchmarks/bench_noop.py [--sizes 4,50,200] [--runs 5] [--uncommitted] [--keep]
                                       [--json PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from _common import (
    WINDOWS,
    BenchError,
    Load,
    StageFiles,
    clean_env,
    download_wheels,
    find_uv,
    has_pip,
    log,
    machine,
    markdown_table,
    notebook_json,
    package_version,
    ratio,
    rmtree,
    rotated,
    run,
    spec_python,
    summary,
    uv_version,
    venv_python,
    write_json,
    write_mlops_project,
)

REPO = Path(__file__).resolve().parent.parent
MAX_CHAINS = 4
SEED = "data/seed.txt"
GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com",
          "-c", "commit.gpgsign=false"]
SETUP_TIMEOUT = 4 * 3600
RUN_TIMEOUT = 900
SETUP_ATTEMPTS = 5
TOOLS = ("mlops-tasks", "dvc", "snakemake")


# --------------------------------------------------------------------------- environment


class LoggedStepFailed(BenchError):
    def __init__(self, message: str, returncode: int):
        super().__init__(message)
        self.returncode = returncode


def run_logged(argv: list[str | os.PathLike[str]], env: dict[str, str], cwd: Path,
               log_file: Path, progress: Callable[[str], str] | None = None,
               every: float = 60.0) -> float:
    """A long step: output goes to log_file, progress(output so far) is printed now and then.
    Return wall seconds; raise LoggedStepFailed with the log's tail on failure."""
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
        raise LoggedStepFailed(f"command failed ({proc.returncode}): {' '.join(args)} "
                               f"(in {cwd})\n{tail}", proc.returncode)
    return seconds


def git(root: Path, *args: str) -> None:
    run(["git", *GIT_ID, *args], clean_env(), cwd=root)


def git_commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


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


def snapshot(dest: Path, uncommitted: bool) -> str:
    """The project extracted into dest: its committed HEAD (git archive), or with
    uncommitted, the work tree's tracked and untracked, not ignored files as they are.
    Return what was taken."""
    sha = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], clean_env()).stdout.strip()
    dest.mkdir(parents=True)
    if uncommitted:
        listed = run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others",
                      "--exclude-standard"], clean_env()).stdout
        for rel in sorted(set(filter(None, listed.split("\0")))):
            src = REPO / rel
            if src.is_file():  # a deleted tracked file is still listed
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
        dirty = run(["git", "-C", REPO, "status", "--porcelain"], clean_env()).stdout.strip()
        return f"work tree of {sha}" + (" (with uncommitted changes)" if dirty else "")
    proc = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"git archive failed in {REPO}: {proc.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - old patch releases
            tar.extractall(dest)
    return f"HEAD {sha}"


def install_orchestrator(tmp: Path, uv: str, uncommitted: bool) -> tuple[Path, str]:
    source = tmp / "mlops-tasks-src"
    what = snapshot(source, uncommitted)
    venv = tmp / "venv-mlops-tasks"
    env = clean_env()
    run([uv, "venv", "--quiet", "--python", sys.executable, venv], env, timeout=SETUP_TIMEOUT)
    run([uv, "pip", "install", "--quiet", "--python", venv_python(venv), source], env,
        timeout=SETUP_TIMEOUT)
    return venv_python(venv), what


def install_peer(tmp: Path, package: str) -> Path:
    venv = tmp / f"venv-{package}"
    env = clean_env()
    run([sys.executable, "-m", "venv", venv], env, timeout=SETUP_TIMEOUT)
    py = venv_python(venv)
    run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", package], env,
        timeout=SETUP_TIMEOUT)
    return py


# --------------------------------------------------------------------------- the projects


def notebook(stage: Stage) -> str:
    return notebook_json([
        ("parameters", f"src = {stage.src!r}\ndst = {stage.dst!r}"),
        (None, "from pathlib import Path\n"
               "text = Path(src).read_text()\n"
               "Path(dst).parent.mkdir(parents=True, exist_ok=True)\n"
               "Path(dst).write_text(text)"),
    ])


def make_mlops_project(root: Path, chains: list[list[Stage]], wheels: Path) -> None:
    stages = [StageFiles(s.name, notebook(s), {
        "env_dir": f".venvs/{s.name}",
        "packages": [],
        "parameters": {"src": s.src, "dst": s.dst},
        "inputs": [s.src],
        "outputs": [s.dst],
    }) for s in all_stages(chains)]
    write_mlops_project(root, wheels, stages)
    (root / ".gitignore").write_text(".mlops/\n.venvs/\ndata/c*/\n", encoding="utf-8")
    write_seed(root)
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


def failure_summary(error: str, returncode: int) -> str:
    """The failed tasks and the first error line, from a failed doit run's output; for a run
    that ended without naming a failed task, its exit status and last line."""
    lines = error.splitlines()
    tasks = sorted({ln.split("taskid:")[1].strip() for ln in lines
                    if ln.startswith(("TaskError - taskid:", "TaskFailed - taskid:"))})
    last = next((ln for ln in lines if ln and not ln.startswith((" ", ".", "$")) and
                 ("Error" in ln or "Exception" in ln) and "taskid" not in ln
                 and ln != "PythonAction Error"), lines[-1] if lines else "")
    if tasks:
        return f"{', '.join(tasks)}: {last.strip()}"
    if returncode < 0:
        try:
            status = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            status = f"killed by signal {-returncode}"
    else:
        status = f"exit code {returncode}"
    return f"{status}, no failed task reported; last line: {last.strip()[-200:]}"


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
        except LoggedStepFailed as err:
            text = log_file.read_text(encoding="utf-8", errors="replace")
            failures.append(f"{n} stages, attempt {attempt}: "
                            f"{failure_summary(text, err.returncode)}")
            log(f"  `doit -n 2 --continue` failed ({failures[-1]}); see {log_file}")
            if attempt == SETUP_ATTEMPTS:
                raise
        finally:
            setup["mlops-tasks"] += time.perf_counter() - start
    log(f"  done in {setup['mlops-tasks']:.0f} s")
    check_doit_noop(run([orch, "-m", "doit"], env, cwd=root).output)

    # dvc
    droot = base / "dvc"
    make_dvc_project(droot, chains, dvc_py)
    log(f"{n} stages: dvc repro ...")
    setup["dvc"] = run([dvc_py, "-m", "dvc", "repro", "-q"], dvc_env(), cwd=droot,
                       timeout=SETUP_TIMEOUT).seconds
    git_commit_all(droot, "dvc.lock")
    check_dvc_noop(run([dvc_py, "-m", "dvc", "repro"], dvc_env(), cwd=droot).output)

    # snakemake
    sroot = base / "snakemake"
    make_snakemake_project(sroot, chains)
    log(f"{n} stages: snakemake --cores 1 ...")
    setup["snakemake"] = run([sm_py, "-m", "snakemake", "--cores", "1"], clean_env(),
                             cwd=sroot, timeout=SETUP_TIMEOUT).seconds
    check_snakemake_noop(run([sm_py, "-m", "snakemake", "--cores", "1"], clean_env(),
                             cwd=sroot).output)

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


def round_order(commands: list[Command], i: int) -> list[Command]:
    """The commands of round i: the tools rotated (each tool first, in the middle and last
    in turn), and each tool's own commands in reverse order every other round."""
    order = []
    for tool in rotated(TOOLS, i):
        mine = [c for c in commands if c.tool == tool]
        order += mine[::-1] if i % 2 else mine
    return order


def time_commands(commands: list[Command], runs: int, load: Load
                  ) -> tuple[dict[str, list[float]], list[list[str]]]:
    """Each command once untimed (warm caches), then `runs` interleaved timed rounds; return
    the times per command and the order of each round."""
    for cmd in commands:
        cmd.check(run(cmd.argv, cmd.env, cwd=cmd.cwd).output)
    times: dict[str, list[float]] = {cmd.label: [] for cmd in commands}
    orders = []
    for i in range(runs):
        order = round_order(commands, i)
        orders.append([c.label for c in order])
        for cmd in order:
            ran = run(cmd.argv, cmd.env, cwd=cmd.cwd)
            cmd.check(ran.output)
            times[cmd.label].append(ran.seconds)
        load.sample()
    return times, orders


def benchmark(tmp: Path, sizes: list[int], runs: int, keep: bool, uncommitted: bool,
              load: Load) -> tuple[dict[str, object], list[dict[str, object]],
                                   dict[str, object], list[str], dict[str, object]]:
    uv = find_uv()
    log("installing mlops-tasks (" + ("its work tree" if uncommitted else "git archive HEAD")
        + ") with uv ...")
    orch, what = install_orchestrator(tmp, uv, uncommitted)
    log("installing dvc with pip ...")
    dvc_py = install_peer(tmp, "dvc")
    log("installing snakemake with pip ...")
    sm_py = install_peer(tmp, "snakemake")
    log("downloading ipykernel wheels for the stage venvs ...")
    wheels = tmp / "wheels"
    download_wheels(wheels, ["ipykernel"], sys.executable if has_pip(sys.executable)
                    else dvc_py, timeout=SETUP_TIMEOUT)
    versions = {
        "mlops-tasks": what,
        "doit": package_version(orch, "doit"),
        "uv": uv_version(uv),
        "dvc": package_version(dvc_py, "dvc"),
        "snakemake": package_version(sm_py, "snakemake"),
        "wheels": len(list(wheels.glob("*.whl"))),
        "stage python": spec_python(),
    }
    log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    pythons = {"mlops-tasks": orch, "dvc": dvc_py, "snakemake": sm_py}

    rows: list[dict[str, object]] = []
    setups: dict[str, object] = {}
    orders: dict[str, object] = {}
    failures: list[str] = []
    for n in sizes:
        commands, setup, n_chains = setup_size(tmp, n, pythons, wheels, failures)
        setups[str(n)] = {k: round(v, 1) for k, v in setup.items()}
        log(f"{n} stages: timing, {runs} rounds, medians ...")
        times, orders[str(n)] = time_commands(commands, runs, load)
        doit_median = statistics.median(times["doit"])
        for cmd in commands:
            median = statistics.median(times[cmd.label])
            rows.append({
                "tool": cmd.tool, "command": cmd.label, "stages": n, "chains": n_chains,
                **summary(times[cmd.label]),
                "per_stage_ms": round(1000 * median / n, 2),
                "ratio_to_doit": ratio(median, doit_median, 2),
            })
            log(f"  {cmd.label:<20} median {median:.2f} s")
        if not keep:
            rmtree(tmp / f"n{n}")
    return versions, rows, setups, failures, orders


def report(meta: dict[str, object], rows: list[dict[str, object]],
           setups: dict[str, object], failures: list[str]) -> str:
    v = meta["versions"]
    labels = list(dict.fromkeys(str(r["command"]) for r in rows))
    by = {(r["stages"], r["command"]): r for r in rows}
    summary_rows = []
    for n in dict.fromkeys(r["stages"] for r in rows):
        cells: list[object] = [n]
        for label in labels:
            r = by[(n, label)]
            cells.append(f"{r['median_s']:.2f} s" if label == "doit" else
                         f"{r['median_s']:.2f} s ({r['ratio_to_doit']:.1f}x)")
        summary_rows.append(cells)
    lines = [
        f"No-op cost, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs; {meta['load']}",
        f"mlops-tasks {v['mlops-tasks']} (doit {v['doit']}, {v['uv']}, backend "
        f"sqlite3-durable, specs with python: \"{v['stage python']}\"), dvc {v['dvc']}, "
        f"snakemake {v['snakemake']}; median of {meta['runs']} runs, wall clock of the whole "
        "command, tools in a rotating order",
        "",
        markdown_table(["stages", *(f"`{label}`" for label in labels)], summary_rows),
        "",
        "(In brackets: the command's median over mlops-tasks' `doit` median at the same size.)",
        "",
        markdown_table(
            ["tool", "command", "stages", "median (s)", "min (s)", "max (s)",
             "per stage (ms, median)", "/ doit (medians)"],
            [[r["tool"], f"`{r['command']}`", r["stages"], f"{r['median_s']:.2f}",
              f"{r['min_s']:.2f}", f"{r['max_s']:.2f}", f"{r['per_stage_ms']:.1f}",
              f"{r['ratio_to_doit']:.2f}"] for r in rows],
            [False, False] + [True] * 6),
        "",
        "setup (bringing each project up to date once, s):",
    ]
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
    parser.add_argument("--runs", type=int, default=5,
                        help="timed rounds per size (the table shows medians; default 5)")
    parser.add_argument("--uncommitted", action="store_true",
                        help="measure the work tree as it is instead of the committed HEAD")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    meta: dict[str, object] = {**machine(args.runs), "sizes": args.sizes}
    load = Load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-noop-"))
    log(f"working in {tmp}")
    try:
        meta["versions"], rows, setups, failures, orders = benchmark(
            tmp, args.sizes, args.runs, args.keep, args.uncommitted, load)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    load.sample()
    meta["load"] = load.describe()
    print()
    print(report(meta, rows, setups, failures))
    write_json(args.json, {**meta, **load.as_dict(), "results": rows, "setup_s": setups,
                           "setup_failures": failures, "round_orders": orders})
    return 0


if __name__ == "__main__":
    sys.exit(main())
