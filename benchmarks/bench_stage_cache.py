#!/usr/bin/env python
"""The shared stage cache: agent B restoring what agent A ran, and the cost of the lookup.

Part 1, two agents, one tracking server. A real `mlflow server` (`--workers 1`, a sqlite
store and `--artifacts-destination` in the temporary folder, on a free port of 127.0.0.1)
serves two clones of this repository's example pipeline (pyproject.toml, dodo.py,
env_specs/, notebooks/, README.md: 4 stages on Pythons 3.10, 3.11 and 3.12, installed from
the package index), each at its own absolute path, each a git repository on `main` with one
commit and `.mlops/ .venvs/ data/ models/ reports/` ignored. The only change to the copied
files is the experiment's name in pyproject.toml, one per repetition (the same in A and B),
so each repetition starts from an experiment without runs. `python -m doit` runs in A
(every stage executes and offers its run to the cache), then in B (every stage should be
restored from A's runs, no kernel started); each is timed as a subprocess, wall clock.
Both build their four stage venvs (the cache key includes the venv's freeze, so B cannot
skip them), so the venv build times ("venv:S: built in X s") are reported beside the
totals, and the totals without them. doit runs with PYTHONUNBUFFERED=1 and each line of its
output is stamped when it arrives, which splits each total by kind of task (doit's own
start, venv, kernel, execute, log, its end). B's output is checked: which stages were restored
("restored from run"), which executed ("execute:S: done in"), whether papermill ran
("Executing notebook" added to the stages' logs in .mlops/logs), and that B's declared
outputs are byte-for-byte A's. A stage B executed is reported, not hidden.

Before the first repetition a third, throw-away clone runs the whole pipeline once against
its own local store (not the server, so A finds nothing to restore), untimed: the uv cache
(one for the whole benchmark, in the temporary folder) then holds every wheel, so neither A
nor B downloads packages; uv still asks the index for what is current when it resolves.
The server starts before that warm-up, so its own start-up work is over when A runs.

Part 2, the lookup. An experiment with --store-runs (1,000) FINISHED runs, each tagged
`mlops.stage`, `mlops.cache_key` (random hex) and `mlops.cache_complete=true`, is created
with MlflowClient on the same server (http) and in a local sqlite store; then
`mlops_tasks.tracking.client.find_tagged_runs` (what `execute:S` calls once per stale
stage) is timed in this process for a key one run has (a hit) and for a key none has
(a miss), --lookups times each, the two taking turns. One untimed call per store first
makes the client (a `doit` has made it before its first lookup). The table shows the median, the p90
(nearest rank) and the slowest, in ms.

Every subprocess runs without the machine's pip, uv, MLflow, Jupyter and mlops-tasks
settings (PIP_*, UV_*, MLFLOW_*, JUPYTER_*, MLOPS_* dropped, PIP_CONFIG_FILE=os.devnull,
UV_NO_CONFIG=1; UV_CACHE_DIR set to the benchmark's cache). Each process the script starts
leads a process group; the server's group is stopped with SIGTERM (SIGKILL after 30 s), and
the script reports any process of its own still running at the end (server, doit, kernels).
POSIX only (process groups); the check of what is left reads /proc (Linux).

Usage: python benchmarks/bench_stage_cache.py [--runs N] [--lookups N] [--store-runs N]
                                              [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
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
    run,
    uv_version,
    write_json,
)
from _groups import (
    GIT_ID,
    STARTED,
    Timed,
    bench_env,
    left_running,
    run_in_group,
    stop_group,
)

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("pyproject.toml", "dodo.py", "env_specs", "notebooks", "README.md")
IGNORED = (".mlops/", ".venvs/", "data/", "models/", "reports/")
START_TIMEOUT = 180.0
KEY_TAG, COMPLETE_TAG, STAGE_TAG = "mlops.cache_key", "mlops.cache_complete", "mlops.stage"
VENV_RE = re.compile(r"^venv:(\S+): built in ([\d.]+) s", re.M)
DONE_RE = re.compile(r"^execute:(\S+): done in ([\d.]+) s", re.M)
RESTORED_RE = re.compile(r"^execute:(\S+): restored from run (\S+) .* in ([\d.]+) s", re.M)
LOGGED_RE = re.compile(r"^log:(\S+): run \S+ logged in ([\d.]+) s", re.M)
TASK_KINDS = ("start", "venv", "kernel", "execute", "log", "end")  # the rest: "other"
COLUMNS = ("start", "venv", "kernel", "execute", "log", "other", "end")
# what stage_cache says when a run with the key is found but not used, or the store fails
CACHE_TROUBLE = ("cannot be restored", "differ from the hashes", "cannot be searched")


# --------------------------------------------------------------------------- doit runs


def task_spans(timed: Timed) -> dict[str, float]:
    """Seconds per kind of task (venv, kernel, execute, log, ...), from the times doit's
    `.  task` lines arrived: a task lasts until the next one starts (the last one, until
    the last line of output). Before the first one, doit's own start (`start`: Python,
    imports, dodo.py); after the last line, until doit exits, its own end (`end`)."""
    marks = [(t, line[3:].strip().split(":")[0]) for t, line in timed.lines
             if line.startswith(".  ")]
    last = timed.lines[-1][0] if timed.lines else timed.seconds
    spans = {"start": marks[0][0] if marks else timed.seconds, "end": timed.seconds - last}
    for (t, kind), (t_next, _) in zip(marks, [*marks[1:], (last, "")], strict=True):
        spans[kind] = spans.get(kind, 0.0) + t_next - t
    return {k: round(v, 2) for k, v in spans.items()}


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    with contextlib.suppress(OSError, ValueError), \
            urllib.request.urlopen(url + "/health", timeout=5) as resp:
        return bool(resp.status == 200)
    return False


def start_server(folder: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    """`mlflow server` as the tests start it; the process, its URL and seconds to /health."""
    folder.mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
            url.rsplit(":", 1)[1], "--workers", "1",
            "--backend-store-uri", f"sqlite:///{(folder / 'server.db').as_posix()}",
            "--artifacts-destination", str(folder / "artifacts")]
    log_file = folder / "server.log"
    with log_file.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=folder, env=bench_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    STARTED.append(proc.pid)
    while not answers(url):
        if proc.poll() is not None or time.perf_counter() - start > START_TIMEOUT:
            stop_group(proc)
            tail = log_file.read_text(errors="replace")[-2000:]
            raise BenchError(f"mlflow server did not answer at {url}:\n{tail}")
        time.sleep(0.2)
    return proc, url, time.perf_counter() - start


# --------------------------------------------------------------------------- part 1: agents


def clone(dest: Path, experiment: str) -> Path:
    """The example project at dest, its experiment renamed, in a git repository on main."""
    dest.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name)
        else:
            shutil.copy2(source, dest / name)
    pyproject = dest / "pyproject.toml"
    text, n = re.subn(r'^experiment = ".*"$', f'experiment = "{experiment}"',
                      pyproject.read_text(encoding="utf-8"), flags=re.M)
    if n != 1:
        raise BenchError(f"expected one `experiment = ...` line in {REPO / 'pyproject.toml'}")
    pyproject.write_text(text, encoding="utf-8")
    (dest / ".gitignore").write_text("\n".join(IGNORED) + "\n", encoding="utf-8")
    env = bench_env()
    run(["git", "init", "-q", "-b", "main"], env, cwd=dest)
    run(["git", "add", "-A"], env, cwd=dest)
    run(["git", *GIT_ID, "commit", "-qm", "example pipeline"], env, cwd=dest)
    return dest


def declared_files(root: Path) -> dict[str, list[str]]:
    """stage -> its declared outputs and metrics files, from the specs."""
    found = {}
    for spec_file in sorted((root / "env_specs").glob("*.yaml")):
        spec = yaml.safe_load(spec_file.read_text(encoding="utf-8"))
        found[spec["name"]] = [*(spec.get("outputs") or []), *(spec.get("metrics") or [])]
    return found


@dataclass
class AgentRun:
    seconds: float
    venv_s: dict[str, float]
    executed: dict[str, float]           # stage -> "done in" seconds
    restored: dict[str, float]           # stage -> "restored ... in" seconds
    logged: dict[str, float]             # stage -> "logged in" seconds
    papermill: int                       # "Executing notebook" lines
    spans: dict[str, float]              # kind of task -> seconds (task_spans)
    trouble: list[str] = field(default_factory=list)

    @property
    def venvs(self) -> float:
        return sum(self.venv_s.values())

    def as_dict(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 3), "venv_s": self.venv_s,
                "venvs_total_s": round(self.venvs, 2),
                "without_venvs_s": round(self.seconds - self.venvs, 3),
                "executed": self.executed, "restored": self.restored, "logged": self.logged,
                "task_spans_s": self.spans, "papermill_lines": self.papermill,
                "cache_messages": self.trouble}


def kernel_starts(root: Path) -> int:
    """Notebooks papermill started on a kernel, from the stages' log files (.mlops/logs)."""
    return sum(log.read_text(encoding="utf-8", errors="replace").count("Executing notebook")
               for log in (root / ".mlops" / "logs").glob("*.log"))


def run_counted(root: Path, env: dict[str, str]) -> AgentRun:
    """doit in root, and how many notebooks it ran on a kernel (the logs are appended)."""
    before = kernel_starts(root)
    timed = doit(root, env, "doit")
    return agent_run(timed, kernel_starts(root) - before)


def agent_run(timed: Timed, papermill: int) -> AgentRun:
    out = timed.output
    return AgentRun(
        seconds=timed.seconds,
        venv_s={s: float(t) for s, t in VENV_RE.findall(out)},
        executed={s: float(t) for s, t in DONE_RE.findall(out)},
        restored={s: float(t) for s, _, t in RESTORED_RE.findall(out)},
        logged={s: float(t) for s, t in LOGGED_RE.findall(out)},
        papermill=papermill,
        spans=task_spans(timed),
        trouble=[ln.strip() for ln in out.splitlines() if any(m in ln for m in CACHE_TROUBLE)])


def doit(root: Path, env: dict[str, str], name: str) -> Timed:
    """`python -m doit` in root, its output unbuffered so each line's time is when doit
    wrote it (the log in root's parent folder)."""
    return run_in_group([sys.executable, "-m", "doit"], {**env, "PYTHONUNBUFFERED": "1"},
                        root, root.parent / f"{name}.log")


def compare_outputs(a: Path, b: Path, files: dict[str, list[str]]) -> list[str]:
    """Declared files of B that are not byte-for-byte A's (folders compared file by file)."""
    differ = []
    for rels in files.values():
        for rel in rels:
            pa, pb = a / rel, b / rel
            pairs = ([(f, pb / f.relative_to(pa)) for f in pa.rglob("*") if f.is_file()]
                     if pa.is_dir() else [(pa, pb)])
            if not pairs or any(not y.is_file() or x.read_bytes() != y.read_bytes()
                                for x, y in pairs):
                differ.append(rel)
    return differ


def two_agents(tmp: Path, url: str, runs: int, uv_cache: Path, load: Load
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    files = declared_files(REPO)
    stages = sorted(files)
    log(f"warm-up: `doit` in a throw-away clone against its own local store, filling the uv "
        f"cache (log in {tmp / 'warm-up' / 'doit.log'}) ...")
    warm_root = clone(tmp / "warm-up" / "example", "bench-stage-cache-warm-up")
    warm = run_counted(warm_root, bench_env(UV_CACHE_DIR=str(uv_cache)))
    log(f"  done in {warm.seconds:.0f} s (venvs {warm.venvs:.0f} s, executed "
        f"{len(warm.executed)} stages)")
    load.sample()
    env = bench_env(MLFLOW_TRACKING_URI=url, UV_CACHE_DIR=str(uv_cache))
    results = []
    for i in range(runs):
        experiment = f"bench-stage-cache-{i + 1}"
        a = clone(tmp / f"agent-a-{i + 1}" / "example", experiment)
        b = clone(tmp / "elsewhere" / f"agent-b-{i + 1}" / "clone" / "example", experiment)
        log(f"run {i + 1}/{runs}: agent A `doit` (log in {a.parent / 'doit.log'}) ...")
        ra = run_counted(a, env)
        load.sample()
        log(f"  A {ra.seconds:.1f} s (venvs {ra.venvs:.1f} s), executed "
            f"{sorted(ra.executed)}, restored {sorted(ra.restored)}")
        log(f"run {i + 1}/{runs}: agent B `doit` (log in {b.parent / 'doit.log'}) ...")
        rb = run_counted(b, env)
        load.sample()
        log(f"  B {rb.seconds:.1f} s (venvs {rb.venvs:.1f} s), restored "
            f"{sorted(rb.restored)}, executed {sorted(rb.executed)}, papermill lines "
            f"{rb.papermill}")
        differ = compare_outputs(a, b, files)
        if differ:
            log(f"  B's outputs differ from A's: {differ}")
        results.append({"experiment": experiment, "a": ra.as_dict(), "b": rb.as_dict(),
                        "b_outputs_differ": differ,
                        "b_all_restored": sorted(rb.restored) == stages and not rb.executed
                        and rb.papermill == 0,
                        "a_all_executed": sorted(ra.executed) == stages and not ra.restored})
    return results, {"warm_up": warm.as_dict(), "stages": stages}


# --------------------------------------------------------------------------- part 2: lookups


def fill_store(uri: str, n: int, stage_names: list[str], workers: int
               ) -> tuple[str, str, float]:
    """An experiment with n FINISHED runs tagged like the cache's; its id, one run's key
    and the seconds it took."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    start = time.perf_counter()
    experiment_id = client.create_experiment(f"bench-lookup-{n}")
    keys = [secrets.token_hex(32) for _ in range(n)]

    def one(k: int) -> None:
        run_id = client.create_run(experiment_id, run_name=f"run-{k}", tags={
            STAGE_TAG: stage_names[k % len(stage_names)], KEY_TAG: keys[k],
            COMPLETE_TAG: "true"}).info.run_id
        client.set_terminated(run_id, "FINISHED")

    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints each run's URL
        if workers > 1:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(n)))
        else:
            for k in range(n):
                one(k)
    return experiment_id, keys[n // 2], time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def time_lookups(uri: str, experiment_id: str, key: str, lookups: int
                 ) -> dict[str, Any]:
    from mlops_tasks.run.stage_cache import CANDIDATES
    from mlops_tasks.tracking.client import find_tagged_runs

    def call(wanted: str) -> Callable[[], list[dict[str, Any]]]:
        return lambda: find_tagged_runs(uri, experiment_id, {KEY_TAG: wanted,
                                                             COMPLETE_TAG: "true"}, CANDIDATES)

    cases = {"hit": call(key), "miss": call(secrets.token_hex(32))}
    start = time.perf_counter()
    found = cases["hit"]()  # untimed for the table: makes the client, as a doit has
    first_s = time.perf_counter() - start
    if not found or found[0]["tags"].get(KEY_TAG) != key:
        raise BenchError(f"find_tagged_runs at {uri} did not find the run with key {key}")
    if cases["miss"]():
        raise BenchError(f"find_tagged_runs at {uri} found a run for a key no run has")
    times: dict[str, list[float]] = {c: [] for c in cases}
    for j in range(lookups):
        for case in rotated(list(cases), j):
            start = time.perf_counter()
            cases[case]()
            times[case].append(time.perf_counter() - start)
    out: dict[str, Any] = {"first_call_ms": round(1000 * first_s, 2)}
    for case, values in times.items():
        ms = [1000 * v for v in values]
        out[case] = {"median_ms": round(statistics.median(ms), 2),
                     "p90_ms": round(percentile(ms, 90), 2), "max_ms": round(max(ms), 2),
                     "runs_ms": [round(v, 2) for v in ms]}
    return out


def lookup_part(tmp: Path, url: str, n: int, lookups: int, stage_names: list[str],
                load: Load) -> dict[str, dict[str, Any]]:
    from mlflow.tracking import MlflowClient

    local = tmp / "local-store"
    local.mkdir()
    sqlite_uri = f"sqlite:///{(local / 'mlflow.db').as_posix()}"
    MlflowClient(sqlite_uri).search_experiments()  # creates and migrates the store
    results = {}
    for name, uri, workers in (("http", url, 8), ("sqlite", sqlite_uri, 1)):
        log(f"lookups: {n} runs into the {name} store ...")
        experiment_id, key, fill_s = fill_store(uri, n, stage_names, workers)
        log(f"  created in {fill_s:.0f} s; timing {lookups} hits and {lookups} misses ...")
        results[name] = {"uri": uri if name == "sqlite" else "http://127.0.0.1:<port>",
                         "runs": n, "fill_s": round(fill_s, 1),
                         **time_lookups(uri, experiment_id, key, lookups)}
        load.sample()
        log(f"  hit median {results[name]['hit']['median_ms']:.1f} ms, miss median "
            f"{results[name]['miss']['median_ms']:.1f} ms")
    return results


# --------------------------------------------------------------------------- report


def span(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({min(values):.1f}–{max(values):.1f})"


def times(a: float, b: float) -> str:
    """a / b as `N.Nx`; a dash when either is under 0.05 s (nothing to compare)."""
    return f"{ratio(a, b)}x" if min(a, b) >= 0.05 else "–"


def report(meta: dict[str, Any], agents: list[dict[str, Any]],
           extra: dict[str, Any], lookups: dict[str, dict[str, Any]]) -> str:
    def col(side: str, key: str) -> list[float]:
        return [float(r[side][key]) for r in agents]

    a_s, b_s = col("a", "seconds"), col("b", "seconds")
    a_v, b_v = col("a", "venvs_total_s"), col("b", "venvs_total_s")
    a_r, b_r = col("a", "without_venvs_s"), col("b", "without_venvs_s")
    med = statistics.median
    n_stages = len(extra["stages"])

    def spans(side: str, kind: str) -> list[float]:
        out = []
        for r in agents:
            got = r[side]["task_spans_s"]
            out.append(sum(v for k, v in got.items() if k not in TASK_KINDS)
                       if kind == "other" else got.get(kind, 0.0))
        return out

    def counts(side: str, key: str) -> str:
        return "/".join(str(len(r[side][key])) for r in agents)

    lines = [
        f"Stage cache, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, mlflow {meta['mlflow']}, {meta['uv']}, mlops-tasks "
        f"{meta['mlops-tasks']}; {meta['load']}",
        f"Part 1: the example pipeline ({n_stages} stages), `python -m doit` in agent A, "
        f"then in agent B, one `mlflow server --workers 1`, warm uv cache; median of "
        f"{meta['runs']} run(s), min–max in brackets; wall clock of the whole command",
        "",
        markdown_table(
            ["agent", "`doit` (s)", "venv builds (s)", "`doit` without venv builds (s)",
             f"stages executed (of {n_stages})", "stages restored"],
            [["A (executes, offers its runs)", span(a_s), span(a_v), span(a_r),
              counts("a", "executed"), counts("a", "restored")],
             ["B (restores from A's runs)", span(b_s), span(b_v), span(b_r),
              counts("b", "executed"), counts("b", "restored")],
             ["A / B", f"{ratio(med(a_s), med(b_s))}x", f"{ratio(med(a_v), med(b_v))}x",
              f"{ratio(med(a_r), med(b_r))}x", "", ""]]),
        "",
        "Where the time goes (s, median; a task lasts from its `.  task` line until the next "
        "one's, `start` is doit's own start before the first task, `end` from its last line "
        "of output until it exits):",
        "",
        markdown_table(
            ["agent", *(f"`{k}`" if k != "other" else "other tasks" for k in COLUMNS)],
            [[label, *(span(spans(side, k)) for k in COLUMNS)]
             for label, side in (("A", "a"), ("B", "b"))]
            + [["A / B", *(times(med(spans("a", k)), med(spans("b", k))) for k in COLUMNS)]]),
        "",
    ]
    for i, r in enumerate(agents, 1):
        b = r["b"]
        notes = []
        if not r["b_all_restored"]:
            notes.append(f"B did not restore every stage: executed {sorted(b['executed'])}, "
                         f"restored {sorted(b['restored'])}, {b['papermill_lines']} "
                         "'Executing notebook' lines")
        if b["cache_messages"]:
            notes.append("B's cache messages: " + " | ".join(b["cache_messages"]))
        if r["b_outputs_differ"]:
            notes.append(f"B's outputs differ from A's: {r['b_outputs_differ']}")
        if not r["a_all_executed"]:
            notes.append(f"A did not execute every stage: executed "
                         f"{sorted(r['a']['executed'])}, restored {sorted(r['a']['restored'])}")
        lines.append(f"run {i}: " + ("; ".join(notes) if notes else
                                     f"B restored all {n_stages} stages, no kernel started, "
                                     "its outputs byte-for-byte A's"))
    a1, b1, nan = agents[0]["a"], agents[0]["b"], float("nan")
    lines += [
        "run 1 per stage, as mlops-tasks reports it (s; B's restore excludes the lookup and "
        "the download): " + "; ".join(
            f"{s}: venv A {a1['venv_s'].get(s, nan):.1f} / B {b1['venv_s'].get(s, nan):.1f}, "
            f"execute A {a1['executed'].get(s, nan):.1f} / B restore "
            f"{b1['restored'].get(s, nan):.1f}, log A {a1['logged'].get(s, nan):.1f} / B "
            f"{b1['logged'].get(s, nan):.1f}"
            for s in extra["stages"]),
        f"warm-up (untimed for the table, own local store, uv cache filled from the index): "
        f"{extra['warm_up']['seconds']:.0f} s, venvs "
        f"{extra['warm_up']['venvs_total_s']:.0f} s",
        "",
        f"Part 2: `find_tagged_runs` (one search per stale stage) in an experiment of "
        f"{lookups['http']['runs']} FINISHED runs tagged like the cache's; {meta['lookups']} "
        "hits and misses each, taking turns; ms",
        "",
    ]
    h, s = lookups["http"], lookups["sqlite"]

    def row(label: str, d: dict[str, Any]) -> list[object]:
        return [label, *(f"{d[c][k]:.1f}" for c in ("hit", "miss")
                         for k in ("median_ms", "p90_ms", "max_ms")),
                f"{d['first_call_ms']:.0f}", f"{d['fill_s']:.0f}"]

    lines.append(markdown_table(
        ["store", "hit median", "hit p90", "hit max", "miss median", "miss p90", "miss max",
         "first call (makes the client)", f"creating the {h['runs']} runs (s)"],
        [row("`mlflow server --workers 1` (http)", h), row("local sqlite", s),
         ["http / sqlite", *(f"{ratio(h[c][k], s[c][k])}x" for c in ("hit", "miss")
                             for k in ("median_ms", "p90_ms", "max_ms")),
          f"{ratio(h['first_call_ms'], s['first_call_ms'])}x", ""]]))
    kill = "needed" if meta["sigkill"] else "not needed"
    lines += ["", f"server: answered /health after {meta['server_start_s']:.1f} s; stopped in "
              f"{meta['server_stop_s']:.1f} s, SIGKILL {kill}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1,
                        help="repetitions of part 1, A then B (default 1)")
    parser.add_argument("--lookups", type=int, default=20,
                        help="timed lookups per case and store in part 2 (default 20)")
    parser.add_argument("--store-runs", type=int, default=1000,
                        help="runs in the experiment searched in part 2 (default 1000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if min(args.runs, args.lookups, args.store_runs) < 1:
        parser.error("--runs, --lookups and --store-runs must be at least 1")
    if not hasattr(os, "killpg"):
        parser.error("process groups are needed (POSIX)")
    for key in [k for k in os.environ if k.startswith(("MLFLOW_", "MLOPS_"))]:
        del os.environ[key]  # this process looks up runs itself: no machine configuration

    meta: dict[str, Any] = {**machine(args.runs), "mlflow": version("mlflow"),
                               "lookups": args.lookups}
    load = Load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stage-cache-"))
    log(f"working in {tmp}")
    server: subprocess.Popen[bytes] | None = None
    try:
        meta["mlops-tasks"] = measured_mlops_tasks()
        meta["uv"] = uv_version(find_uv())
        log("starting mlflow server ...")
        server, url, meta["server_start_s"] = start_server(tmp / "server")
        log(f"  {url} answered after {meta['server_start_s']:.1f} s")
        agents, extra = two_agents(tmp, url, args.runs, tmp / "uv-cache", load)
        lookups = lookup_part(tmp, url, args.store_runs, args.lookups,
                              extra["stages"], load)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if server is not None:
            start = time.perf_counter()
            meta["sigkill"] = stop_group(server)
            meta["server_stop_s"] = time.perf_counter() - start
        left = left_running(tmp)
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    load.sample()
    meta["load"] = load.describe()
    print("\n" + report(meta, agents, extra, lookups))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    write_json(args.json, {**meta, **load.as_dict(), "part1": agents, **extra,
                           "part2": lookups, "left_running": left})
    return 0


if __name__ == "__main__":
    sys.exit(main())
