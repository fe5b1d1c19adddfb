#!/usr/bin/env python
"""Serving the local MLflow store to stage kernels: in-process against `mlflow server`.

Each run measures both sides (taking turns going first), each on a fresh sqlite store:
A `serve_store` in a fresh Python that created the store with MlflowClient(uri), as the
orchestrator does: seconds from the call until GET /health answers 200, and the VmRSS it
added; B `python -m mlflow server --workers 1` on a store created the same way (untimed):
seconds from its start until /health answers, and the VmRSS of its process tree then. For
both, this process (the client, as a kernel is) times 50 log_metric calls on a run it
creates through the URL. Each process started leads a process group, stopped with SIGTERM
(SIGKILL after 15 s); the script checks none is left. Linux only (/proc).

Usage: python benchmarks/bench_served_store.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

from _common import (
    BenchError,
    Load,
    clean_env,
    log,
    machine,
    markdown_table,
    measured_mlops_tasks,
    ratio,
    rotated,
    run,
    write_json,
)

CALLS, START_TIMEOUT, STOP_TIMEOUT = 50, 120.0, 15.0
SIDES = ("serve-store", "mlflow-server")
STARTED: list[int] = []  # the process groups this script started
# Side A: create the store; with "serve", serve it, print one JSON line, serve until stdin ends.
CHILD = r"""
import json, sys, time, urllib.request
from pathlib import Path
def rss(): return next(int(ln.split()[1]) / 1024 for ln in open("/proc/self/status")
                       if ln.startswith("VmRSS:"))
uri, root, mode = sys.argv[1:4]
from mlflow.tracking import MlflowClient
MlflowClient(uri).create_experiment("bench", artifact_location=Path(root).as_uri())
if mode == "serve":
    from mlops_tasks.tracking.client import serve_store
    before, start = rss(), time.perf_counter()
    url = serve_store(uri, Path(root))
    while urllib.request.urlopen(url + "/health", timeout=5).status != 200:
        time.sleep(0.01)
    start_s = time.perf_counter() - start
    print(json.dumps({"url": url, "start_s": start_s, "rss_before": before}), flush=True)
    sys.stdin.read()
"""


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live (not zombie) process."""
    table = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def tree_rss(pid: int) -> tuple[float, int]:
    """VmRSS (MB) summed over pid, its descendants and its process group (descendants that
    were reparented stay in it), and how many processes they are."""
    table, kb = processes(), 0
    tree = {p for p, (_, g) in table.items() if g == pid} | {pid}
    while more := {c for c, (ppid, _) in table.items() if ppid in tree} - tree:
        tree |= more
    for p in tree:
        with contextlib.suppress(OSError):
            kb += sum(int(ln.split()[1]) for ln in Path(f"/proc/{p}/status").read_text()
                      .splitlines() if ln.startswith("VmRSS:"))
    return kb / 1024, len(tree)


def stop(proc: subprocess.Popen[str]) -> tuple[float, bool]:
    """Stop proc's process group; return the seconds it took and whether it needed SIGKILL."""
    start, deadline = time.perf_counter(), time.monotonic() + STOP_TIMEOUT
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    while proc.poll() is None or proc.pid in {g for _, g in processes().values()}:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
            return time.perf_counter() - start, True
        time.sleep(0.05)
    return time.perf_counter() - start, False


def answers(url: str) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return bool(urllib.request.urlopen(url + "/health", timeout=5).status == 200)
    return False


def log_metric_ms(url: str) -> float:
    """Median ms of CALLS log_metric calls on a run created through url."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("bench")
    assert experiment is not None
    run_id = client.create_run(experiment.experiment_id).info.run_id
    times = []
    for i in range(CALLS):
        start = time.perf_counter()
        client.log_metric(run_id, "m", i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def measure(side: str, folder: Path) -> dict[str, float]:
    """One side on a fresh store in folder: start, RSS, log_metric latency, stop."""
    folder.mkdir()
    uri, art, log_file = f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", folder / "log"
    child, out, a_side = [sys.executable, "-c", CHILD, uri, str(art)], {}, side == SIDES[0]
    with socket.socket() as sock:  # a free port for B
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if not a_side:
        run([*child, "create"], clean_env(), cwd=folder)
    argv = [*child, "serve"] if a_side else [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
        url.rsplit(":", 1)[1], "--workers", "1", "--backend-store-uri", uri,
        "--default-artifact-root", str(art)]
    with log_file.open("w") as err:
        start = time.perf_counter()
        deadline = start + START_TIMEOUT
        proc = subprocess.Popen(argv, cwd=folder, env=clean_env(), text=True,
                                stdin=subprocess.PIPE if a_side else subprocess.DEVNULL,
                                stdout=subprocess.PIPE if a_side else err, stderr=err,
                                start_new_session=True)
        STARTED.append(proc.pid)
        try:
            if proc.stdout:  # A: its start is timed in the process, its RSS before is noted
                out = json.loads(proc.stdout.readline() or "{}")
                url, base = out.pop("url", ""), out.pop("rss_before", 0.0)
            else:
                while not answers(url) and proc.poll() is None and time.perf_counter() < deadline:
                    time.sleep(0.01)
                out["start_s"], base = time.perf_counter() - start, 0.0
            if not answers(url):
                raise BenchError(f"{side} did not answer:\n{log_file.read_text()[-2000:]}")
            rss, out["processes"] = tree_rss(proc.pid)
            out["rss_mb"] = rss - base
            out["log_metric_ms"] = log_metric_ms(url)
            rss, out["processes_after"] = tree_rss(proc.pid)
            out["rss_after_mb"] = rss - base
        finally:
            out["stop_s"], out["sigkill"] = stop(proc)
    return out


def report(meta: dict[str, object], res: dict[str, list[dict[str, float]]]) -> str:
    keys = ("start_s", "rss_mb", "log_metric_ms", "rss_after_mb", "stop_s", "processes")
    med = {s: {k: statistics.median(r[k] for r in res[s]) for k in keys} for s in SIDES}
    a, b = med[SIDES[0]], med[SIDES[1]]
    row = "{start_s:.2f} {rss_mb:.0f} {log_metric_ms:.2f} {rss_after_mb:.0f}".format
    return "\n".join([
        f"Serving the local store, {meta['date']}: Python {meta['python']}, {meta['platform']},"
        f" {meta['cpus']} CPUs, mlflow {meta['mlflow']}, mlops-tasks {meta['mlops-tasks']}; "
        f"{meta['load']}; median of {meta['runs']} runs (log_metric: of {CALLS} calls each)",
        "",
        markdown_table(
            ["method", "start (s)", "RSS (MB)", "log_metric (ms)",
             f"RSS after {CALLS} calls (MB)"],
            [["A `serve_store` in-process (RSS added)", *row(**a).split()],
             [f"B `mlflow server --workers 1` ({b['processes']:.0f} processes)", *row(**b).split()],
             ["B / A", *(f"{ratio(b[k], a[k])}x" for k in keys[:4])]]),
        "",
        f"stopping (median): A {a['stop_s']:.2f} s, B {b['stop_s']:.2f} s; SIGKILL needed "
        f"{sum(r['sigkill'] for s in SIDES for r in res[s]):.0f} time(s)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5,
                        help="runs of both sides (the table shows medians; default 5)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or not Path("/proc/self/status").is_file():
        parser.error("--runs must be at least 1, and /proc is needed (Linux)")
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        del os.environ[key]  # this process is the client: no machine configuration either
    meta: dict[str, object] = {**machine(args.runs), "mlflow": version("mlflow")}
    load = Load()
    res: dict[str, list[dict[str, float]]] = {s: [] for s in SIDES}
    try:
        meta["mlops-tasks"] = measured_mlops_tasks()
        with tempfile.TemporaryDirectory(prefix="bench-served-") as tmp:
            for i in range(args.runs):
                for side in rotated(SIDES, i):
                    r = measure(side, Path(tmp) / f"{i}-{side}")
                    res[side].append(r)
                    log(f"run {i + 1}/{args.runs} {side}: start {r['start_s']:.2f} s, RSS "
                        f"{r['rss_mb']:.0f} MB, log_metric {r['log_metric_ms']:.2f} ms")
                load.sample()
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    left = [p for p, (_, g) in processes().items() if g in STARTED]
    meta["load"] = load.describe()
    print("\n" + report(meta, res))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    write_json(args.json, {**meta, **load.as_dict(), "results": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
