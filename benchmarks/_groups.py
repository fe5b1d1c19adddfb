"""Process groups a benchmark starts: each timed with its output line by line, stopped as a
whole, and what is still running at the end (Linux: /proc)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import BenchError, clean_env, log, rmtree

GIT_ID = ["-c", "user.name=bench", "-c", "user.email=bench@example.com",
          "-c", "commit.gpgsign=false"]
DOIT_TIMEOUT, STOP_TIMEOUT = 1800.0, 30.0
SAMPLE_INTERVAL = 0.05  # seconds between two samples of a tree's memory
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
STARTED: list[int] = []  # the process groups started by this benchmark


def bench_env(**extra: str) -> dict[str, str]:
    """clean_env without this tool's own MLOPS_* settings either (as the tests' clean_env);
    the extras, MLOPS_* ones included, are set after that."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("MLOPS_")}
    env.update(extra)
    return env


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (process group, command line) of every live (not zombie) process."""
    table = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace").strip()
                table[int(entry.name)] = (int(fields[2]), cmd)
    return table


def left_running(tmp: Path) -> list[str]:
    """Processes of this benchmark still running: in a process group it started, or with
    its temporary folder on their command line (a kernel of a stage venv, uv, doit)."""
    if not Path("/proc").is_dir():
        return []
    return [f"{pid} {cmd[:120]}" for pid, (group, cmd) in processes().items()
            if pid != os.getpid() and (group in STARTED or str(tmp) in cmd)]


def stop_group(proc: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM to proc's process group, SIGKILL after timeout; whether SIGKILL was needed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            proc.poll()
            return False
        proc.poll()  # reap the leader, so it does not keep the group alive as a zombie
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout)
    return True


@dataclass(frozen=True)
class Timed:
    seconds: float
    output: str
    lines: list[tuple[float, str]]  # each output line with the second it arrived
    peak_rss: int | None = None  # bytes: the largest sum of the tree's RSS sampled (or None)
    seen: tuple[str, ...] = ()  # the command lines of every process the samples saw in the tree
    at_peak: tuple[tuple[str, int], ...] = ()  # (process label, RSS bytes) in the peak sample


def proc_stats() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, process group, resident set in bytes) of every live process."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                if fields[0] != b"Z":
                    table[int(entry.name)] = (int(fields[1]), int(fields[2]),
                                              int(fields[21]) * PAGE)
    return table


def tree(leader: int, table: dict[int, tuple[int, int, int]]) -> set[int]:
    """The leader's process group and every descendant of the leader: a kernel starts a
    session (so a group) of its own, but stays a child of the process that started it."""
    members = {pid for pid, (_, group, _) in table.items() if group == leader}
    members.add(leader)
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in members:
                members.add(child)
                todo.append(child)
    return {pid for pid in members if pid in table}


def label(command: str) -> str:
    """A short name for a process of a benchmarked tree: a kernel by its venv's folder (its
    interpreter lives in <venv>/bin or <venv>/Scripts), anything else by its program and
    first arguments."""
    words = command.split()
    if not words:
        return "?"
    if "ipykernel_launcher" in command:
        parts = Path(words[0]).parts
        return f"kernel ({parts[-3]})" if len(parts) >= 3 else "kernel"
    return " ".join([Path(words[0]).name, *words[1:3]])[:60]


class MemorySampler(threading.Thread):
    """Every `interval` seconds, the sum of the RSS of a process tree (see tree); keeps the
    peak and the command line of every process seen in the tree (Linux: /proc)."""

    def __init__(self, leader: int, interval: float = SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.leader, self.interval = leader, interval
        self.peak = 0
        self.commands: dict[int, str] = {}
        self.at_peak: tuple[tuple[str, int], ...] = ()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            table = proc_stats()
            pids = tree(self.leader, table)
            for pid in pids - self.commands.keys():
                with contextlib.suppress(OSError):
                    self.commands[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes()
                                          .replace(b"\0", b" ").decode(errors="replace").strip())
            total = sum(table[pid][2] for pid in pids)
            if total > self.peak:
                self.peak = total
                self.at_peak = tuple(sorted(
                    ((label(self.commands.get(pid, "")), table[pid][2]) for pid in pids),
                    key=lambda part: -part[1]))
            self.done.wait(self.interval)

    def stop(self) -> tuple[int, tuple[str, ...], tuple[tuple[str, int], ...]]:
        self.done.set()
        self.join(STOP_TIMEOUT)
        return self.peak, tuple(self.commands.values()), self.at_peak


def run_in_group(argv: Sequence[str | os.PathLike[str]], env: dict[str, str], cwd: Path,
                 log_file: Path,
                 timeout: float = DOIT_TIMEOUT, sample_memory: bool = False) -> Timed:
    """Run argv as the leader of a new process group, output to log_file; its wall time (to
    its exit) and output, each line with when it arrived; with sample_memory, also the peak
    RSS of its process tree (MemorySampler). On failure, timeout or interruption, the whole
    group is stopped."""
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    STARTED.append(proc.pid)
    sampler = MemorySampler(proc.pid) if sample_memory else None
    if sampler:
        sampler.start()

    def read() -> None:
        assert proc.stdout is not None
        with log_file.open("wb") as out:
            for raw in proc.stdout:
                lines.append((time.perf_counter() - start,
                              raw.decode("utf-8", errors="replace").rstrip("\r\n")))
                out.write(raw)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout)
        seconds = time.perf_counter() - start
    except subprocess.TimeoutExpired as err:
        raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(map(str, argv))} in {cwd}"
                         ) from err
    finally:
        if proc.poll() is None:
            stop_group(proc)
        peak, seen, at_peak = sampler.stop() if sampler else (None, (), ())
        reader.join(STOP_TIMEOUT)
        if proc.stdout:
            proc.stdout.close()
    text = "\n".join(line for _, line in lines)
    if code != 0:
        tail = "\n".join(text.strip().splitlines()[-40:])
        raise BenchError(f"command failed ({code}): {' '.join(map(str, argv))} (in {cwd})\n"
                         f"{tail}")
    return Timed(seconds, text, lines, peak, seen, at_peak)


@contextlib.contextmanager
def temp_folder(prefix: str, keep: bool) -> Iterator[tuple[Path, list[str]]]:
    """A benchmark's temporary folder; as it ends, `left` gets the benchmark's processes still
    running (see left_running) and the folder is removed, unless `keep`."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    log(f"working in {tmp}")
    left: list[str] = []
    try:
        yield tmp, left
    finally:
        left.extend(left_running(tmp))
        if keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
