"""What the tests share besides fixtures: tiny real projects, running doit, a real MLflow
server, waiting with a deadline, and the platform checks tests skip on."""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pytest

PYTHON = sys.executable
# What a notebook needs to log to MLflow itself, with the local store as with a server (the
# local store is served to kernels over HTTP).
MLFLOW_IN_KERNEL = [f"mlflow-skinny=={metadata.version('mlflow')}"]

# -- platform --------------------------------------------------------------------------------

HAS_PROC = Path("/proc").is_dir()
HAS_PROCESS_GROUPS = hasattr(os, "killpg")
needs_proc = pytest.mark.skipif(
    not HAS_PROC, reason="lists live processes through /proc, which only Linux has")
needs_process_groups = pytest.mark.skipif(
    not HAS_PROCESS_GROUPS, reason="signals whole process groups (os.killpg): POSIX only")


def command_lines() -> list[str]:
    """The command line of every live process (Linux: read from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                         .decode(errors="replace"))
        except OSError:
            continue
    return found


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


# -- waiting ---------------------------------------------------------------------------------

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str,
               poll: float = 0.05) -> T:
    """Poll `condition` until it returns something true; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- environment and wheels ------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment a user's machine has: no pip config, no tracking server, none of
    this tool's own settings (MLOPS_*) from the environment running the tests."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "MLFLOW_", "JUPYTER_", "VIRTUAL_ENV", "MLOPS_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["UV_NO_CONFIG"] = "1"
    env.update(extra)
    return env


def fill_wheelhouse(folder: Path) -> None:
    if not any(folder.glob("mlflow_skinny-*.whl")) or not any(folder.glob("idna-3.6-*")):
        # two idna versions, so a test can change a pinned version and see drift
        for reqs in (["ipykernel", "idna>3.6", *MLFLOW_IN_KERNEL], ["idna==3.6"]):
            subprocess.run(
                [PYTHON, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                 "--dest", str(folder), *reqs],
                check=True, env=clean_env(),
            )


def fill_for_version(wheelhouse: Path, marker: Path, version: str) -> None:
    if not marker.exists():
        subprocess.run(
            [PYTHON, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
             "--python-version", version, "--dest", str(wheelhouse), "ipykernel"],
            check=True, env=clean_env(),
        )
        marker.write_text("ok")


# -- projects --------------------------------------------------------------------------------

NOTEBOOK_CELLS = {
    "make": [
        ("parameters", 'greeting = "hello"\nrepeat = 1'),
        (None, 'from pathlib import Path\ntext = " ".join([greeting] * repeat)\n'
               'Path("out/greeting.txt").write_text(text)\nprint(text)'),
    ],
    "use": [
        ("parameters", "scale = 1"),
        (None, 'import json\nfrom pathlib import Path\n'
               'text = Path("out/greeting.txt").read_text()\n'
               'Path("out/metrics.json").write_text(json.dumps({"length": len(text) * scale}))'),
        (None, 'import mlflow\nmlflow.log_metric("logged_by_notebook", 42)'),
    ],
}


def notebook_json(cells: list[tuple[str | None, str]]) -> dict:
    out = []
    for i, (tag, source) in enumerate(cells):
        out.append({
            "cell_type": "code", "id": f"c{i}", "execution_count": None, "outputs": [],
            "metadata": {"tags": [tag]} if tag else {}, "source": source,
        })
    return {
        "cells": out, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
    }


def write_notebook(path: Path, cells: list[tuple[str | None, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook_json(cells), indent=1), encoding="utf-8")


def git_commit_all(root: Path) -> None:
    """A git repository on branch `main` (whatever the machine's default branch is), with
    one commit of everything in root."""
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
                    "-qm", "init"], cwd=root, check=True)


def make_project(root: Path, wheelhouse: Path, with_use: bool = True) -> Path:
    """A two-stage project (make -> use) that installs offline from the wheelhouse;
    `with_use=False` leaves only `make`, whose venv holds just ipykernel."""
    root.mkdir(parents=True, exist_ok=True)
    scaffolded(root, "test-pipeline", wheelhouse)
    specs = root / "env_specs"
    specs.mkdir(exist_ok=True)
    (specs / "make.yaml").write_text(textwrap.dedent("""
        name: make
        notebook: notebooks/make.ipynb
        env_dir: .venvs/shared-make
        parameters:
          greeting: hi
          repeat: 2
        outputs:
          - out/greeting.txt
    """), encoding="utf-8")
    if with_use:
        write_spec(root, "use", f"""
        name: use
        notebook: notebooks/use.ipynb
        packages: {json.dumps(MLFLOW_IN_KERNEL)}
        parameters:
          scale: 3
        inputs:
          - out/greeting.txt
        metrics:
          - out/metrics.json
        """)
    for name, cells in NOTEBOOK_CELLS.items():
        write_notebook(root / "notebooks" / f"{name}.ipynb", cells)
    # as in a real project: the tool's state and the stages' products are not versioned
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n", encoding="utf-8")
    git_commit_all(root)
    return root


def offline_pipeline(root: Path, wheelhouse: Path, experiment: str) -> Path:
    """An empty pipeline (dodo.py, pyproject.toml, env_specs/) that installs offline from
    the wheelhouse; the test adds its stages."""
    (root / "env_specs").mkdir(parents=True)
    scaffolded(root, experiment, wheelhouse)
    return root


def scaffolded(root: Path, experiment: str, wheelhouse: Path | None = None) -> None:
    """dodo.py and pyproject.toml as `mlops-tasks init` writes them (scaffold's own text),
    with only the wheel cache and the index policy of the tests: offline, from the session's
    wheelhouse."""
    from mlops_tasks.project import scaffold

    settings = scaffold.MLOPS_SECTION.format(experiment=json.dumps(experiment), orchestrator="")
    if wheelhouse is not None:
        settings = settings.replace(
            'index_policy = "offline-first"',
            f'index_policy = "offline"\nwheels_cache = {json.dumps(str(wheelhouse))}')
        assert "wheels_cache =" in settings, "scaffold's settings changed: update this helper"
    (root / "pyproject.toml").write_text(f"{scaffold.DOIT_SECTION}\n{settings}",
                                         encoding="utf-8")
    (root / "dodo.py").write_text(scaffold.DODO, encoding="utf-8")


def write_spec(root: Path, name: str, text: str) -> None:
    (root / "env_specs" / f"{name}.yaml").write_text(textwrap.dedent(text), encoding="utf-8")


def set_config(root: Path, **values: Any) -> None:
    """Replace keys of [tool.mlops_tasks] in the project's pyproject.toml (values as TOML);
    a value of None removes the key."""
    lines = (root / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    for key, value in values.items():
        lines = [line for line in lines if not line.startswith(f"{key} =")]
        if value is not None:
            index = lines.index("[tool.mlops_tasks]") + 1
            lines.insert(index, f"{key} = {json.dumps(value)}")
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- running doit ----------------------------------------------------------------------------


def doit(root: Path, *args: str, check: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PYTHON, "-m", "doit", *args], cwd=root, env=env or clean_env(),
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


class _DoitForks:
    """One tests/doit_forks.py process per test process, started at first use and ended at
    exit (or when this process ends: it stops at the end of its input)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [PYTHON, str(Path(__file__).with_name("doit_forks.py"))], env=clean_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            assert "ready" in self.reply(self.proc, 300), "tests/doit_forks.py did not start"
        return self.proc

    @staticmethod
    def reply(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
        import selectors

        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise subprocess.TimeoutExpired("doit (forked)", timeout)
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("tests/doit_forks.py ended")
        return dict(json.loads(line))

    def run(self, root: Path, args: tuple[str, ...], env: dict[str, str],
            folder: Path) -> subprocess.CompletedProcess[str]:
        proc = self.start()
        assert proc.stdin is not None
        out, err = folder / "stdout", folder / "stderr"
        proc.stdin.write(json.dumps({"cwd": str(root), "args": list(args), "env": env,
                                     "out": str(out), "err": str(err)}) + "\n")
        proc.stdin.flush()
        pid = self.reply(proc, 60)["pid"]
        try:
            code = self.reply(proc, 600)["code"]
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            self.reply(proc, 60)
            raise
        return subprocess.CompletedProcess(
            ["doit", *args], code, out.read_text(encoding="utf-8", errors="replace"),
            err.read_text(encoding="utf-8", errors="replace"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


_forks = _DoitForks()
atexit.register(_forks.stop)


def forked_doit(root: Path, *args: str, check: bool = True,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`doit(...)`, as a fresh process forked from one that imported doit, mlops-tasks and
    MLflow already: the same pid-per-command, environment, working folder, exit code and
    output, without the seconds of imports. Not for tests of `doit`'s own imports (`doit list`
    loading no MLflow) or its startup; where there is no fork (Windows), the plain `doit`."""
    if not hasattr(os, "fork"):
        return doit(root, *args, check=check, env=env)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="doit-fork-") as folder:
        proc = _forks.run(root, args, env or clean_env(), Path(folder))
    if check and proc.returncode != 0:
        raise AssertionError(f"doit {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def ran(output: str) -> set[str]:
    """Task names doit executed ('.  name'), from its own output."""
    return {line[3:].strip() for line in output.splitlines() if line.startswith(".  ")}


# -- MLflow ----------------------------------------------------------------------------------


def local_client(root: Path) -> Any:
    """An MlflowClient on the project's local store (.mlops/mlflow.db)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{(root / '.mlops' / 'mlflow.db').as_posix()}")


def all_artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, by its path in the run."""
    found = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= all_artifacts(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1, started and stopped by the tests."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = closed_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri",
             f"sqlite:///{(self.folder / 'server.db').as_posix()}",
             "--artifacts-destination", str(self.folder / "artifacts")],
            # no background-job workers: a tracking server for tests, not for jobs
            env=clean_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def _signal(self, signum: int) -> None:
        assert self.proc is not None
        if HAS_PROCESS_GROUPS:  # the server and its workers
            os.killpg(self.proc.pid, signum)
        elif signum == signal.SIGTERM:
            self.proc.terminate()
        else:
            self.proc.kill()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
                self.proc.wait()
        self.proc = None
