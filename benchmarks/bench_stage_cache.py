#!/usr/bin/env python
"""The shared stage cache: agent B restoring what agent A ran, and the cost of the lookup.

Part 1, two agents, one tracking server. A real `mlflow server` (`--workers 1`, a sqlite
store and `--artifacts-destination` in the temporary folder, on a free port of 127.0.0.1)
serves two clones of each pipeline, each at its own absolute path, each a git repository on
`main` with one commit and `.mlops/ .venvs/ data/ models/ reports/` ignored. Two pipelines
(--pipelines): this repository's example (pyproject.toml, dodo.py, env_specs/, notebooks/,
README.md: 4 stages on Pythons 3.10, 3.11 and 3.12, installed from the package index; the
only change is the experiment's name) and a generated diamond (a source, two branches of
two stages, a join; each notebook sleeps 2.5 s for real work and writes a file; stages on
the Python running this script with only ipykernel, installed offline from a wheelhouse
filled once with `pip download`, untimed). Each repetition uses a new experiment (the same
in A and B). `python -m doit` runs in A (every stage executes and offers its run to the
cache), then in B (every stage should be restored from A's runs: no venv built, no kernel
started, as the stage key's env part is computed from the specs without building the
venv); each is timed as a subprocess, wall clock, with the 1-minute load average as it
ended. doit runs with PYTHONUNBUFFERED=1 and each line of its output is stamped when it
arrives, which splits each total by kind of task (doit's own start, venv, kernel, execute,
log, its end). B's output is checked: which stages were restored ("restored from run"),
which executed ("execute:S: done in"), which venvs it built ("venv:S: building" lines, and
the folders in its .venvs/), whether papermill ran ("Executing notebook" added to the
stages' logs in .mlops/logs), and that B's declared outputs are byte-for-byte A's.

Before the first repetition a third, throw-away clone of each pipeline runs it once against
its own local store (not the server, so A finds nothing to restore), untimed: the uv cache
(one for the whole benchmark, in the temporary folder) then holds every wheel, so neither A
nor B downloads packages. The server starts before that warm-up, so its own start-up work
is over when A runs.

Part 2, the lookup. One experiment per store, grown to each size of --store-runs (1,000
and 10,000) in turn: one FINISHED run tagged `mlops.stage`, `mlops.cache_key` (random hex)
and `mlops.cache_complete=true` is made with MlflowClient (MLflow writes the schema and the
row), and the others are copies of it written into the store's sqlite file with sqlite3
(each with its own id, name, start time, stage and key; FINISHED, active, the same
experiment): through MlflowClient 10,000 runs take many minutes. Stores: the server's
(searched over http), a local sqlite one, and (unless --no-postgres) a second `mlflow
server --workers 1` on PostgreSQL as teams run it: a throw-away cluster made with Debian's
initdb and pg_ctl (/usr/lib/postgresql/*/bin) in a temporary folder, on a free port of
127.0.0.1, trust authentication, run as the current user or, when that is root (PostgreSQL
refuses it), as the unprivileged `postgres` account through runuser; the server runs from
a venv of the benchmark's own (--system-site-packages, plus psycopg2-binary from the
package index: the project's dependencies are untouched). Its runs are copied in SQL by
the database itself (generate_series, one transaction, then ANALYZE). A machine without
the PostgreSQL programs, the account or the package skips that store with the reason in
the report. Each server is timed once it has settled (its process group, job runner and
huey consumers included, under 0.1 of a CPU over 2 s; at most 120 s after /health), as a
team's long-running server is. Then
`mlops_tasks.tracking.client.find_tagged_runs` (what `execute:S` calls once per stale
stage) is timed in this process for a key the middle run has (a hit) and for a key none
has (a miss), --lookups times each, the cases taking turns; on the local store also
`tag_absent`, the sqlite3 answer `execute:S` asks first there. One untimed call first makes
the client (a `doit` has made it before its first lookup). The table shows the median and
the p90 (nearest rank), in ms, per size, and the ratio of the largest size to the smallest.

Every subprocess runs without the machine's pip, uv, MLflow, Jupyter and mlops-tasks
settings (PIP_*, UV_*, MLFLOW_*, JUPYTER_*, MLOPS_* dropped, PIP_CONFIG_FILE=os.devnull,
UV_NO_CONFIG=1; UV_CACHE_DIR set to the benchmark's cache). Each process the script starts
leads a process group; the server's group is stopped with SIGTERM (SIGKILL after 30 s), and
the script reports any process of its own still running at the end (server, doit, kernels);
the PostgreSQL cluster is stopped with `pg_ctl stop -m fast` and its folder removed.
POSIX only (process groups); the check of what is left reads /proc (Linux).

Usage: python benchmarks/bench_stage_cache.py [--runs N] [--pipelines example,diamond]
                                              [--lookups N] [--store-runs N,M]
                                              [--no-postgres] [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml
from _common import (
    BenchError,
    Load,
    Ran,
    StageFiles,
    download_wheels,
    find_uv,
    log,
    machine,
    markdown_table,
    measured_mlops_tasks,
    notebook_json,
    package_version,
    ratio,
    rmtree,
    rotated,
    run,
    uv_version,
    venv_python,
    write_json,
    write_mlops_project,
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
BUILDING_RE = re.compile(r"^venv:(\S+): building ", re.M)
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


def start_server(folder: Path, backend: str | None = None, python: str = sys.executable
                 ) -> tuple[subprocess.Popen[bytes], str, float]:
    """`mlflow server` as the tests start it (a sqlite store in folder unless `backend` is
    another store URI); the process, its URL and seconds to /health."""
    folder.mkdir()
    url = f"http://127.0.0.1:{free_port()}"
    argv = [python, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port",
            url.rsplit(":", 1)[1], "--workers", "1", "--backend-store-uri",
            backend or f"sqlite:///{(folder / 'server.db').as_posix()}",
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


# --------------------------------------------------------------------------- PostgreSQL


class Skipped(BenchError):
    """A store this machine cannot set up: said in the report, not an error."""


PG_ROLE, PG_DB, PG_ACCOUNT = "mlflow", "mlflow", "postgres"
PSYCOPG = "psycopg2-binary"


@dataclass
class Cluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1, owned by the user running this script
    (by the `postgres` account when that is root: PostgreSQL refuses to run as root)."""
    folder: Path
    bin: Path
    port: int
    prefix: list[str]  # runs a command as the cluster's owner
    version: str = ""

    def uri(self, database: str = PG_DB) -> str:
        return f"postgresql://{PG_ROLE}@127.0.0.1:{self.port}/{database}"

    def store_uri(self) -> str:
        """For MLflow: the driver named, as SQLAlchemy's default for postgresql:// may be
        psycopg 3."""
        return self.uri().replace("postgresql://", "postgresql+psycopg2://", 1)

    def ctl(self, *args: str) -> Ran:
        return run([*self.prefix, self.bin / "pg_ctl", "-D", self.folder / "data", *args],
                   bench_env(), timeout=180)

    def psql(self, *args: str | Path, database: str = PG_DB) -> str:
        """psql on the database, stopping at the first error; what it printed (unaligned,
        rows only)."""
        psql = shutil.which("psql") or str(self.bin / "psql")
        return run([psql, self.uri(database), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
                    *args], bench_env(), timeout=900).stdout.strip()

    def script(self, text: str) -> str:
        """SQL text run in one transaction."""
        path = self.folder / "script.sql"
        path.write_text(text, encoding="utf-8")
        return self.psql("-1", "-f", path)


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL's programs folder, or the one of `initdb` on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    initdb = found[-1] if found else Path(shutil.which("initdb") or "/nonexistent")
    if not (initdb.is_file() and (initdb.parent / "pg_ctl").is_file()):
        raise Skipped("no PostgreSQL server programs (initdb, pg_ctl) in /usr/lib/postgresql/"
                      "*/bin or on PATH: install them (Debian: apt-get install postgresql)")
    return initdb.parent


def cluster_owner(tmp: Path) -> tuple[Path, list[str]]:
    """The cluster's folder and the prefix that runs a command as its owner: this user in
    tmp, or, as root, the unprivileged `postgres` account in a folder of its own in the
    system's temporary folder (root's tmp is closed to it)."""
    if os.geteuid() != 0:
        (tmp / "postgres").mkdir()
        return tmp / "postgres", []
    import pwd

    try:
        account = pwd.getpwnam(PG_ACCOUNT)
    except KeyError:
        raise Skipped(f"running as root and there is no '{PG_ACCOUNT}' account to run the "
                      "cluster as (PostgreSQL refuses to run as root): run this script as "
                      "another user, or create the account (Debian's postgresql package "
                      "does)") from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise Skipped(f"running as root without `runuser` to start the cluster as "
                      f"'{PG_ACCOUNT}': run this script as another user")
    folder = Path(tempfile.mkdtemp(prefix="bench-stage-cache-pg-"))
    os.chown(folder, account.pw_uid, account.pw_gid)
    return folder, [runuser, "-u", PG_ACCOUNT, "--"]


def start_cluster(tmp: Path, clusters: list[Cluster]) -> Cluster:
    """initdb (trust authentication: it listens on 127.0.0.1 and a socket in its folder
    only), started on a free port, with the database created; appended to `clusters` as
    soon as it runs, for the caller to stop. Raise Skipped when this machine cannot."""
    bin_dir = postgres_bin()
    folder, prefix = cluster_owner(tmp)
    cluster = Cluster(folder, bin_dir, free_port(), prefix)
    run([*prefix, bin_dir / "initdb", "-D", folder / "data", "-U", PG_ROLE, "-A", "trust",
         "-E", "UTF8", "--locale=C"], bench_env(), cwd=folder, timeout=300)
    clusters.append(cluster)
    cluster.ctl("-l", str(folder / "server.log"), "-w", "-t", "120", "-o",
                f"-h 127.0.0.1 -p {cluster.port} -k {folder}", "start")
    cluster.version = cluster.psql("-c", "SHOW server_version", database="postgres")
    cluster.psql("-c", f"CREATE DATABASE {PG_DB}", database="postgres")
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """pg_ctl stop (fast: ends the sessions), then its folder removed; a failure is said
    (the check of what is left running reports a cluster that did not stop)."""
    try:
        cluster.ctl("-w", "-t", "60", "-m", "fast", "stop")
    except BenchError as err:
        log(f"the PostgreSQL cluster in {cluster.folder} did not stop: {err}")
    finally:
        rmtree(cluster.folder)


def psycopg_python(tmp: Path) -> tuple[str, str]:
    """A venv of this benchmark's own (this Python's packages, mlflow included, seen
    through --system-site-packages) with psycopg2-binary from the package index, for the
    server on PostgreSQL: the project's dependencies stay as they are. Its python and
    psycopg2's version."""
    venv = tmp / "pg-venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv],
        bench_env(), timeout=300)
    python = str(venv_python(venv))
    try:
        run([find_uv(), "pip", "install", "--python", python, "--quiet", PSYCOPG],
            bench_env(UV_CACHE_DIR=str(tmp / "uv-cache")), timeout=600)
    except BenchError as err:
        raise Skipped(f"{PSYCOPG} could not be installed from the package index into "
                      f"{venv}: {str(err).splitlines()[-1]}") from None
    return python, package_version(python, "psycopg2-binary")


def grow_postgres(cluster: Cluster, template_id: str, have: int, want: int,
                  stage_names: list[str]) -> tuple[str, float]:
    """Runs have..want-1 written in SQL by the database itself (generate_series, one
    transaction), each a copy of the template run as grow_store makes them; the key of the
    middle run of the 0..want-1 ones, and the seconds it took."""
    start = time.perf_counter()
    cols = cluster.psql("-c", "SELECT column_name FROM information_schema.columns WHERE "
                        "table_name = 'runs' ORDER BY ordinal_position").split()
    own = {"run_uuid": "s.uid", "name": "'run-' || s.g",
           "start_time": "r.start_time + s.g", "end_time": "r.end_time + s.g",
           "artifact_uri": "replace(r.artifact_uri, r.run_uuid, s.uid)"}
    stages = "ARRAY[" + ", ".join(f"'{n}'" for n in stage_names) + "]"
    key = cluster.script(f"""
CREATE TEMP TABLE seed ON COMMIT DROP AS
  SELECT g, md5(random()::text || g::text) AS uid,
         md5(random()::text) || md5(random()::text) AS cache_key
  FROM generate_series({have}, {want - 1}) AS g;
INSERT INTO runs ({', '.join(f'"{c}"' for c in cols)})
  SELECT {', '.join(own.get(c, f'r."{c}"') for c in cols)}
  FROM seed s CROSS JOIN runs r WHERE r.run_uuid = '{template_id}';
INSERT INTO tags (key, value, run_uuid)
  SELECT t.key, CASE t.key WHEN '{STAGE_TAG}' THEN ({stages})[s.g % {len(stage_names)} + 1]
                           WHEN '{KEY_TAG}' THEN s.cache_key
                           WHEN 'mlflow.runName' THEN 'run-' || s.g
                           ELSE t.value END, s.uid
  FROM seed s CROSS JOIN tags t WHERE t.run_uuid = '{template_id}';
ANALYZE runs;
ANALYZE tags;
SELECT t.value FROM tags t JOIN runs r USING (run_uuid)
  WHERE t.key = '{KEY_TAG}' AND r.name = 'run-{want // 2}';
""")
    count = cluster.psql("-c", "SELECT count(*) FROM runs WHERE experiment_id = (SELECT "
                         f"experiment_id FROM runs WHERE run_uuid = '{template_id}')")
    if int(count) != want or len(key) != 64:
        raise BenchError(f"the PostgreSQL store holds {count} runs after growing to {want} "
                         f"(middle key {key!r})")
    return key, time.perf_counter() - start



def postgres_store(tmp: Path, meta: dict[str, Any], clusters: list[Cluster],
                   servers: list[subprocess.Popen[bytes]]) -> tuple[str, Cluster] | None:
    """A throw-away cluster and an `mlflow server --workers 1` on it (from this benchmark's
    venv with psycopg2); its URL and the cluster, or None when this machine cannot (the
    reason in meta["postgresql"]). The caller stops what `clusters` and `servers` hold."""
    try:
        log("PostgreSQL: a venv with psycopg2-binary, a throw-away cluster, a server ...")
        python, meta["psycopg2"] = psycopg_python(tmp)
        cluster = start_cluster(tmp, clusters)
        server, url, seconds = start_server(tmp / "pg-server", cluster.store_uri(), python)
        servers.append(server)
        meta["pg_server_settle_s"] = round(settle(server), 1)
    except Skipped as why:
        meta["postgresql"] = f"skipped: {why}"
        log(f"  {meta['postgresql']}")
        return None
    meta["postgresql"] = (f"PostgreSQL {cluster.version} (Debian's, a throw-away cluster"
                          f"{' run as ' + PG_ACCOUNT if cluster.prefix else ''}), psycopg2 "
                          f"{meta['psycopg2']}, the server answered after {seconds:.1f} s "
                          f"and settled {meta['pg_server_settle_s']} s later")
    log(f"  {meta['postgresql']}")
    return url, cluster


SETTLE_TIMEOUT = 120.0


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user and system) the live processes of a process group have used so far
    (Linux /proc; 0 elsewhere)."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total / ticks


def settle(server: subprocess.Popen[bytes], busy: float = 0.1, window: float = 2.0) -> float:
    """Wait until the server's process group (its workers, job runner and huey consumers,
    which start after /health answers) uses under `busy` of a CPU over `window` seconds, at
    most SETTLE_TIMEOUT: a team's server has been up for days. The seconds waited."""
    start = time.perf_counter()
    used = group_cpu_seconds(server.pid)
    while time.perf_counter() - start < SETTLE_TIMEOUT:
        time.sleep(window)
        now = group_cpu_seconds(server.pid)
        if now - used < busy * window:
            break
        used = now
    return time.perf_counter() - start


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
    return commit_clone(dest)


# the synthetic diamond: stage -> its upstream stages (one fork into two branches of two
# stages each, and a join); each notebook sleeps DIAMOND_SLEEP s for real work, reads its
# upstream stages' files and writes its own
DIAMOND = {"source": (), "left_1": ("source",), "left_2": ("left_1",),
           "right_1": ("source",), "right_2": ("right_1",), "join": ("left_2", "right_2")}
DIAMOND_SLEEP = 2.5


def diamond_stage(name: str, upstream: tuple[str, ...]) -> StageFiles:
    code = ("import time\nfrom pathlib import Path\n"
            "time.sleep(seconds)\n"
            f"text = ''.join(Path(f'data/{{u}}.txt').read_text() for u in {list(upstream)!r})\n"
            "Path('data').mkdir(exist_ok=True)\n"
            f"_ = Path('data/{name}.txt').write_text(text + '{name}\\n')\n")
    return StageFiles(name, notebook_json([("parameters", f"seconds = {DIAMOND_SLEEP}"),
                                           (None, code)]),
                      {"parameters": {"seconds": DIAMOND_SLEEP},
                       "inputs": [f"data/{u}.txt" for u in upstream],
                       "outputs": [f"data/{name}.txt"]})


def diamond_clone(dest: Path, experiment: str, wheels: Path) -> Path:
    """The synthetic diamond at dest (stages on this Python with only ipykernel, installed
    offline from wheels), in a git repository on main."""
    root = write_mlops_project(dest, wheels, [diamond_stage(n, u) for n, u in DIAMOND.items()],
                               experiment)
    return commit_clone(root)


def commit_clone(dest: Path) -> Path:
    (dest / ".gitignore").write_text("\n".join(IGNORED) + "\n", encoding="utf-8")
    env = bench_env()
    run(["git", "init", "-q", "-b", "main"], env, cwd=dest)
    run(["git", "add", "-A"], env, cwd=dest)
    run(["git", *GIT_ID, "commit", "-qm", "pipeline"], env, cwd=dest)
    return dest


@dataclass(frozen=True)
class Pipeline:
    """A pipeline the agents run: its name and how to make a clone (dest, experiment)."""
    name: str
    make: Callable[[Path, str], Path]


def pipelines(names: list[str], tmp: Path) -> list[Pipeline]:
    """The example (copied from this repository) and the diamond (generated; its wheelhouse
    filled once from the package index, untimed)."""
    found = []
    for name in names:
        if name == "example":
            found.append(Pipeline("example", clone))
        else:
            wheels = tmp / "wheels"
            log(f"diamond: pip download ipykernel into {wheels} (untimed) ...")
            log(f"  done in {download_wheels(wheels, ['ipykernel']):.0f} s")
            def make(dest: Path, experiment: str, wheels: Path = wheels) -> Path:
                return diamond_clone(dest, experiment, wheels)

            found.append(Pipeline("diamond", make))
    return found


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
    building: list[str] = field(default_factory=list)  # "venv:S: building" lines' stages
    venv_dirs: int = 0                   # folders in .venvs/ after the run
    load: float | None = None            # 1-minute load average as the run ended

    @property
    def venvs(self) -> float:
        return sum(self.venv_s.values())

    def as_dict(self) -> dict[str, object]:
        return {"seconds": round(self.seconds, 3), "venv_s": self.venv_s,
                "venvs_total_s": round(self.venvs, 2),
                "without_venvs_s": round(self.seconds - self.venvs, 3),
                "executed": self.executed, "restored": self.restored, "logged": self.logged,
                "task_spans_s": self.spans, "papermill_lines": self.papermill,
                "cache_messages": self.trouble, "venvs_built": self.building,
                "venv_dirs": self.venv_dirs, "load": self.load}


def kernel_starts(root: Path) -> int:
    """Notebooks papermill started on a kernel, from the stages' log files (.mlops/logs)."""
    return sum(log.read_text(encoding="utf-8", errors="replace").count("Executing notebook")
               for log in (root / ".mlops" / "logs").glob("*.log"))


def load_now() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def venv_dirs(root: Path) -> int:
    venvs = root / ".venvs"
    return sum(1 for p in venvs.iterdir() if p.is_dir()) if venvs.is_dir() else 0


def run_counted(root: Path, env: dict[str, str],
                argv: tuple[str, ...] = (), name: str = "doit") -> AgentRun:
    """doit (with argv) in root, and how many notebooks it ran on a kernel (the logs are
    appended), the venvs it built, the venv folders after it, the load as it ended."""
    before = kernel_starts(root)
    timed = doit(root, env, name, argv)
    got = agent_run(timed, kernel_starts(root) - before)
    got.venv_dirs, got.load = venv_dirs(root), load_now()
    return got


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
        trouble=[ln.strip() for ln in out.splitlines() if any(m in ln for m in CACHE_TROUBLE)],
        building=BUILDING_RE.findall(out))


def doit(root: Path, env: dict[str, str], name: str, argv: tuple[str, ...] = ()) -> Timed:
    """`python -m doit` in root, its output unbuffered so each line's time is when doit
    wrote it (the log in root's parent folder)."""
    return run_in_group([sys.executable, "-m", "doit", *argv], {**env, "PYTHONUNBUFFERED": "1"},
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


def two_agents(tmp: Path, url: str, runs: int, uv_cache: Path, load: Load, pipe: Pipeline
               ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Part 1 on one pipeline: an untimed warm-up, then A and B `runs` times."""
    log(f"{pipe.name}: warm-up `doit` in a throw-away clone against its own local store, "
        f"filling the uv cache (log in {tmp / f'warm-up-{pipe.name}' / 'doit.log'}) ...")
    warm_root = pipe.make(tmp / f"warm-up-{pipe.name}" / pipe.name,
                          f"bench-stage-cache-warm-up-{pipe.name}")
    files = declared_files(warm_root)
    stages = sorted(files)
    warm = run_counted(warm_root, bench_env(UV_CACHE_DIR=str(uv_cache)))
    log(f"  done in {warm.seconds:.0f} s (venvs {warm.venvs:.0f} s, executed "
        f"{len(warm.executed)} stages)")
    load.sample()
    env = bench_env(MLFLOW_TRACKING_URI=url, UV_CACHE_DIR=str(uv_cache))
    results = []
    for i in range(runs):
        experiment = f"bench-stage-cache-{pipe.name}-{i + 1}"
        a = pipe.make(tmp / f"{pipe.name}-agent-a-{i + 1}" / pipe.name, experiment)
        b = pipe.make(tmp / "elsewhere" / f"{pipe.name}-agent-b-{i + 1}" / "clone" / pipe.name,
                      experiment)
        log(f"{pipe.name} run {i + 1}/{runs}: agent A `doit` (log in {a.parent / 'doit.log'}) "
            "...")
        ra = run_counted(a, env)
        load.sample()
        log(f"  A {ra.seconds:.1f} s (venvs {ra.venvs:.1f} s), executed "
            f"{sorted(ra.executed)}, restored {sorted(ra.restored)}; load {ra.load}")
        log(f"{pipe.name} run {i + 1}/{runs}: agent B `doit` (log in {b.parent / 'doit.log'}) "
            "...")
        rb = run_counted(b, env)
        load.sample()
        log(f"  B {rb.seconds:.1f} s, venvs built {rb.building}, {rb.venv_dirs} venv folders, "
            f"restored {sorted(rb.restored)}, executed {sorted(rb.executed)}, papermill lines "
            f"{rb.papermill}; load {rb.load}")
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


def template_run(uri: str, n_max: int, stage_name: str) -> tuple[str, str]:
    """An experiment with one FINISHED run tagged like the cache's, made with MlflowClient
    (so MLflow writes the schema and the row the other runs copy); ids of both."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(f"bench-lookup-{n_max}")
    if uri.startswith("sqlite:"):  # as a doit's first contact with its local store does
        from mlops_tasks.tracking import sqlite_store

        db = sqlite_store.usable(uri)
        if db is not None:
            sqlite_store.index_tags(db)
    with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints the run's URL
        run_id = client.create_run(experiment_id, run_name="run-0", tags={
            STAGE_TAG: stage_name, KEY_TAG: secrets.token_hex(32),
            COMPLETE_TAG: "true"}).info.run_id
        client.set_terminated(run_id, "FINISHED")
    return experiment_id, run_id


def grow_store(db: Path, template_id: str, have: int, want: int, stage_names: list[str]
               ) -> tuple[str, float]:
    """Runs have..want-1 written into the store's sqlite file directly, each a copy of the
    template run (status FINISHED, lifecycle_stage active, its experiment) with its own id,
    name, start time (1 ms apart, after the template's), stage and random cache key; the key
    of the middle run of the 0..want-1 ones, and the seconds it took."""
    import sqlite3
    import uuid

    start = time.perf_counter()
    con = sqlite3.connect(db, timeout=60)
    try:
        cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
        row = dict(zip(cols, con.execute("SELECT * FROM runs WHERE run_uuid = ?",
                                         (template_id,)).fetchone(), strict=True))
        if (row["status"], row["lifecycle_stage"]) != ("FINISHED", "active"):
            raise BenchError(f"the template run {template_id} in {db} is {row['status']}, "
                             f"{row['lifecycle_stage']}: expected FINISHED, active")
        tags = dict(con.execute("SELECT key, value FROM tags WHERE run_uuid = ?",
                                (template_id,)).fetchall())
        keys, runs, tag_rows = {}, [], []
        for k in range(have, want):
            uid = uuid.uuid4().hex
            keys[k] = secrets.token_hex(32)
            runs.append({**row, "run_uuid": uid, "name": f"run-{k}",
                         "start_time": row["start_time"] + k, "end_time": row["end_time"] + k,
                         "artifact_uri": row["artifact_uri"].replace(template_id, uid)})
            own = {**tags, STAGE_TAG: stage_names[k % len(stage_names)], KEY_TAG: keys[k],
                   "mlflow.runName": f"run-{k}"}
            tag_rows += [(key, value, uid) for key, value in own.items()]
        with con:
            con.executemany(f"INSERT INTO runs ({', '.join(cols)}) VALUES "
                            f"({', '.join('?' * len(cols))})",
                            [tuple(r[c] for c in cols) for r in runs])
            con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                            tag_rows)
        middle = want // 2
        key = keys.get(middle) or con.execute(
            "SELECT value FROM tags JOIN runs USING (run_uuid) WHERE key = ? AND "
            "runs.name = ?", (KEY_TAG, f"run-{middle}")).fetchone()[0]
    finally:
        con.close()
    return key, time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def time_lookups(uri: str, experiment_id: str, key: str, lookups: int
                 ) -> dict[str, Any]:
    """find_tagged_runs for a hit and a miss, taking turns; on a local sqlite store also the
    quick answer of a miss from the file (tag_absent, what execute:S asks first there)."""
    from mlops_tasks.run.stage_cache import CANDIDATES
    from mlops_tasks.tracking.client import find_tagged_runs, tag_absent

    def call(wanted: str) -> Callable[[], object]:
        return lambda: find_tagged_runs(uri, experiment_id, {KEY_TAG: wanted,
                                                             COMPLETE_TAG: "true"}, CANDIDATES)

    missing = secrets.token_hex(32)
    cases: dict[str, Callable[[], object]] = {"hit": call(key), "miss": call(missing)}
    if uri.startswith("sqlite:"):
        cases["quick_miss"] = lambda: tag_absent(uri, KEY_TAG, missing)
    start = time.perf_counter()
    found = find_tagged_runs(uri, experiment_id, {KEY_TAG: key, COMPLETE_TAG: "true"},
                             CANDIDATES)  # untimed for the table: makes the client
    first_s = time.perf_counter() - start
    if not found or found[0]["tags"].get(KEY_TAG) != key:
        raise BenchError(f"find_tagged_runs at {uri} did not find the run with key {key}")
    if cases["miss"]():
        raise BenchError(f"find_tagged_runs at {uri} found a run for a key no run has")
    if "quick_miss" in cases and not (cases["quick_miss"]() and not tag_absent(uri, KEY_TAG,
                                                                               key)):
        raise BenchError(f"tag_absent at {uri} does not tell a missing key from a present one")
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


def lookup_part(tmp: Path, url: str, sizes: list[int], lookups: int, stage_names: list[str],
                load: Load, postgres: tuple[str, Cluster] | None = None
                ) -> dict[str, dict[int, dict[str, Any]]]:
    """Per store (the server's, through http; a local sqlite one; with `postgres`, a server
    on PostgreSQL through http), the lookups in one experiment grown to each size in turn."""
    from mlflow.tracking import MlflowClient

    local = tmp / "local-store"
    local.mkdir()
    sqlite_db = local / "mlflow.db"
    sqlite_uri = f"sqlite:///{sqlite_db.as_posix()}"
    MlflowClient(sqlite_uri).search_experiments()  # creates and migrates the store
    stores: list[tuple[str, str, Callable[..., tuple[str, float]]]] = [
        ("http", url, functools.partial(grow_store, tmp / "server" / "server.db")),
        ("sqlite", sqlite_uri, functools.partial(grow_store, sqlite_db))]
    if postgres is not None:
        stores.append(("postgresql", postgres[0], functools.partial(grow_postgres,
                                                                    postgres[1])))
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for name, uri, grow in stores:
        experiment_id, template = template_run(uri, max(sizes), stage_names[0])
        have, results[name] = 1, {}
        for n in sorted(sizes):
            log(f"lookups: {name} store, growing the experiment to {n} runs ...")
            key, fill_s = grow(template, have, n, stage_names)
            have = max(have, n)
            log(f"  written in {fill_s:.1f} s; timing {lookups} of each case ...")
            got = time_lookups(uri, experiment_id, key, lookups)
            load.sample()
            results[name][n] = {"runs": n, "fill_s": round(fill_s, 2), "load": load_now(),
                                **got}
            log(f"  hit median {got['hit']['median_ms']:.1f} ms, miss median "
                f"{got['miss']['median_ms']:.1f} ms; load {load_now()}")
    return results


# --------------------------------------------------------------------------- report


def span(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:.1f}" if len(values) == 1 else f"{med:.1f} ({min(values):.1f}–{max(values):.1f})"


def times(a: float, b: float) -> str:
    """a / b as `N.Nx`; a dash when either is under 0.05 s (nothing to compare)."""
    return f"{ratio(a, b)}x" if min(a, b) >= 0.05 else "–"


def agents_table(parts: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]) -> str:
    """Part 1's headline: per pipeline A's and B's wall time, A / B, what B built and ran."""
    med = statistics.median
    rows = []
    for pipe, (agents, extra) in parts.items():
        a_s = [float(r["a"]["seconds"]) for r in agents]
        b_s = [float(r["b"]["seconds"]) for r in agents]
        joined = lambda f, runs=agents: "/".join(str(f(r["b"])) for r in runs)  # noqa: E731
        rows.append([f"{pipe} ({len(extra['stages'])} stages)", span(a_s), span(b_s),
                     f"{ratio(med(a_s), med(b_s))}x", joined(lambda b: len(b["venvs_built"])),
                     joined(lambda b: b["venv_dirs"]), joined(lambda b: b["papermill_lines"]),
                     joined(lambda b: len(b["restored"])),
                     "; ".join(f"{r['a']['load']} / {r['b']['load']}" for r in agents)])
    return markdown_table(
        ["pipeline", "A `doit` (s)", "B `doit` (s)", "A / B", "venvs B built",
         "`.venvs/*` in B", "kernels B started", "stages B restored",
         "load after A / after B"], rows)


def spans_table(pipe: str, agents: list[dict[str, Any]]) -> str:
    med = statistics.median

    def spans(side: str, kind: str) -> list[float]:
        out = []
        for r in agents:
            got = r[side]["task_spans_s"]
            out.append(sum(v for k, v in got.items() if k not in TASK_KINDS)
                       if kind == "other" else got.get(kind, 0.0))
        return out

    return markdown_table(
        ["agent", *(f"`{k}`" if k != "other" else "other tasks" for k in COLUMNS)],
        [[f"{pipe} {label}", *(span(spans(side, k)) for k in COLUMNS)]
         for label, side in (("A", "a"), ("B", "b"))]
        + [[f"{pipe} A / B", *(times(med(spans("a", k)), med(spans("b", k)))
                                for k in COLUMNS)]])


def run_notes(pipe: str, agents: list[dict[str, Any]], n_stages: int) -> list[str]:
    lines = []
    for i, r in enumerate(agents, 1):
        b = r["b"]
        notes = []
        if not r["b_all_restored"]:
            notes.append(f"B did not restore every stage: executed {sorted(b['executed'])}, "
                         f"restored {sorted(b['restored'])}, {b['papermill_lines']} "
                         "'Executing notebook' lines")
        if b["venvs_built"]:
            notes.append(f"B built venvs: {b['venvs_built']}")
        if b["cache_messages"]:
            notes.append("B's cache messages: " + " | ".join(b["cache_messages"]))
        if r["b_outputs_differ"]:
            notes.append(f"B's outputs differ from A's: {r['b_outputs_differ']}")
        if not r["a_all_executed"]:
            notes.append(f"A did not execute every stage: executed "
                         f"{sorted(r['a']['executed'])}, restored {sorted(r['a']['restored'])}")
        lines.append(f"{pipe} run {i}: " + ("; ".join(notes) if notes else
                                            f"B restored all {n_stages} stages, built no venv, "
                                            "started no kernel, its outputs byte-for-byte A's"))
    return lines


def lookup_table(lookups: dict[str, dict[int, dict[str, Any]]]) -> str:
    sizes = sorted(lookups["http"])
    labels = {"http": "`mlflow server --workers 1` (http)", "sqlite": "local sqlite",
              "postgresql": "`mlflow server --workers 1` on PostgreSQL (http)"}
    cases = [("hit", "hit"), ("miss", "miss"), ("quick_miss", "miss, sqlite3 quick answer")]
    rows = []
    for store, by_size in lookups.items():
        for case, label in cases:
            if case not in by_size[sizes[0]]:
                continue
            cells = [f"{by_size[n][case]['median_ms']:.1f} / {by_size[n][case]['p90_ms']:.1f}"
                     for n in sizes]
            flat = [f"{ratio(by_size[sizes[-1]][case][k], by_size[sizes[0]][case][k], 2)}x"
                    for k in ("median_ms", "p90_ms")]
            rows.append([f"{labels[store]}, {label}", *cells, " / ".join(flat)])
    return markdown_table(
        ["store, case", *(f"{n:,} runs: median / p90 (ms)" for n in sizes),
         f"{sizes[-1]:,} / {sizes[0]:,}: median / p90"], rows)


def report(meta: dict[str, Any], parts: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]],
           lookups: dict[str, dict[int, dict[str, Any]]]) -> str:
    lines = [
        f"Stage cache, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, mlflow {meta['mlflow']}, {meta['uv']}, mlops-tasks "
        f"{meta['mlops-tasks']}; {meta['load']}",
        f"Part 1: `python -m doit` in agent A, then in agent B, one `mlflow server --workers 1`,"
        f" warm uv cache; median of {meta['runs']} run(s), min–max in brackets; wall clock",
        "", agents_table(parts), "",
        "Where the time goes (s, median; a task lasts from its `.  task` line until the next "
        "one's, `start` is doit's own start before the first task, `end` from its last line "
        "of output until it exits):", ""]
    for pipe, (agents, _) in parts.items():
        lines += [spans_table(pipe, agents), ""]
    for pipe, (agents, extra) in parts.items():
        lines += run_notes(pipe, agents, len(extra["stages"]))
        lines.append(f"{pipe} warm-up (untimed, own local store, caches filled): "
                     f"{extra['warm_up']['seconds']:.0f} s, venvs "
                     f"{extra['warm_up']['venvs_total_s']:.0f} s")
    if lookups:
        some = next(iter(lookups["http"].values()))
        lines += ["", f"Part 2: `find_tagged_runs` (one search per stale stage) in one "
                  f"experiment of FINISHED runs tagged like the cache's, grown to each size; "
                  f"{meta['lookups']} of each case, taking turns; ms; load after each size: "
                  + ", ".join(f"{st} {n:,}: {d['load']}" for st, by in lookups.items()
                              for n, d in by.items()),
                  f"(first call, which makes the client: {some['first_call_ms']:.0f} ms)", "",
                  lookup_table(lookups), "",
                  "runs written in: " + ", ".join(f"{st} {n:,}: {d['fill_s']:.1f} s"
                                                  for st, by in lookups.items()
                                                  for n, d in by.items()),
                  f"PostgreSQL: {meta.get('postgresql', 'not asked for (--no-postgres)')}"]
    kill = "needed" if meta["sigkill"] else "not needed"
    lines += ["", f"server: answered /health after {meta['server_start_s']:.1f} s; stopped in "
              f"{meta['server_stop_s']:.1f} s, SIGKILL {kill}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes such as 1000,10000, got {text!r}"
                                         ) from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"sizes must be at least 1, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1,
                        help="repetitions of part 1, A then B (default 1)")
    parser.add_argument("--pipelines", default="example,diamond",
                        help="part 1's pipelines, of example,diamond (default both; none: "
                        "an empty string)")
    parser.add_argument("--lookups", type=int, default=20,
                        help="timed lookups per case and store in part 2 (default 20)")
    parser.add_argument("--store-runs", type=sizes_arg, default=[1000, 10000],
                        help="sizes of the experiment searched in part 2 (default 1000,10000)")
    parser.add_argument("--no-postgres", action="store_true",
                        help="part 2 without the server on a throw-away PostgreSQL cluster")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    names = [n for n in args.pipelines.split(",") if n]
    if min(args.runs, args.lookups) < 1:
        parser.error("--runs and --lookups must be at least 1")
    if set(names) - {"example", "diamond"}:
        parser.error(f"--pipelines: example and/or diamond, got {args.pipelines!r}")
    if not hasattr(os, "killpg"):
        parser.error("process groups are needed (POSIX)")
    for key in [k for k in os.environ if k.startswith(("MLFLOW_", "MLOPS_"))]:
        del os.environ[key]  # this process looks up runs itself: no machine configuration
    # a SIGTERM ends the script through its `finally`: servers and the cluster stopped
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    meta: dict[str, Any] = {**machine(args.runs), "mlflow": version("mlflow"),
                               "lookups": args.lookups}
    load = Load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stage-cache-"))
    log(f"working in {tmp}")
    server: subprocess.Popen[bytes] | None = None
    clusters: list[Cluster] = []
    servers: list[subprocess.Popen[bytes]] = []
    parts: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    try:
        meta["mlops-tasks"] = measured_mlops_tasks()
        meta["uv"] = uv_version(find_uv())
        log("starting mlflow server ...")
        server, url, meta["server_start_s"] = start_server(tmp / "server")
        meta["server_settle_s"] = round(settle(server), 1)
        log(f"  {url} answered after {meta['server_start_s']:.1f} s, settled "
            f"{meta['server_settle_s']} s later")
        # started now, as the first server: its start-up work is over before it is timed
        postgres = None if args.no_postgres else postgres_store(tmp, meta, clusters, servers)
        for pipe in pipelines(names, tmp):
            parts[pipe.name] = two_agents(tmp, url, args.runs, tmp / "uv-cache", load, pipe)
        lookups = lookup_part(tmp, url, args.store_runs, args.lookups,
                              sorted(DIAMOND), load, postgres)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if server is not None:
            start = time.perf_counter()
            meta["sigkill"] = stop_group(server)
            meta["server_stop_s"] = time.perf_counter() - start
        for other in servers:
            stop_group(other)
        for cluster in clusters:
            stop_cluster(cluster)
        left = left_running(tmp) + [p for c in clusters for p in left_running(c.folder)]
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    load.sample()
    meta["load"] = load.describe()
    print("\n" + report(meta, parts, lookups))
    print(f"processes this benchmark started that are still running: {left or 'none'}")
    write_json(args.json, {**meta, **load.as_dict(),
                           "part1": {p: {"runs": a, **e} for p, (a, e) in parts.items()},
                           "part2": lookups, "left_running": left})
    return 0


if __name__ == "__main__":
    sys.exit(main())
