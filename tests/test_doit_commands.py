"""doit's own commands for a newcomer: `list --status` and `info` cost the same per stage at
any size, `info` on a stage name says what its tasks would do, `--param` after a stage name
says where it belongs, and a reader that stops early (`| head`) gets no traceback."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import PYTHON, clean_env, doit, make_project, write_notebook, write_spec
from .test_workspace import tiny_project


def chain_project(root: Path, stages: int) -> Path:
    """A pipeline of `stages` stages in one chain (each reads the previous one's output),
    never run: every task is stale."""
    (root / "env_specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.mlops_tasks]\nexperiment = "t"\n')
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n")
    src = "data/seed.txt"
    (root / "data").mkdir()
    (root / src).write_text("seed")
    for i in range(stages):
        name, dst = f"s{i:03d}", f"data/s{i:03d}.txt"
        write_spec(root, name, f"""
            name: {name}
            notebook: nb/{name}.ipynb
            env_dir: .venvs/{name}
            inputs: [{src}]
            outputs: [{dst}]
        """)
        write_notebook(root / "nb" / f"{name}.ipynb", [(None, "x = 1")])
        src = dst
    return root


class CountingList(list):  # type: ignore[type-arg]
    """A task's targets, counting how often they are read in full."""

    reads = 0

    def __iter__(self) -> Any:
        CountingList.reads += 1
        return super().__iter__()


def targets_read_by_list(root: Path, capsys: pytest.CaptureFixture[str]) -> int:
    """How often `doit list --all --status` reads a task's targets (in this process)."""
    from doit.cmd_list import List as DoitList
    from doit.doit_cmd import DoitMain

    original = DoitList._execute

    @functools.wraps(original)  # doit reads its signature for the options
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        for task in self.task_list:
            task.targets = CountingList(task.targets)
        CountingList.reads = 0
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setattr(DoitList, "_execute", counted)
        assert DoitMain().run(["list", "--all", "--status"]) == 0
    out = capsys.readouterr().out
    assert "R s000 " in out and "R execute:s000" in out, out
    return CountingList.reads


def test_list_status_costs_the_same_per_stage_at_any_size(tmp_path, capsys):
    """Twice the stages, about twice the work (a structure rebuilt for every group made it
    four times: 168 s at 3,000 stages)."""
    small = targets_read_by_list(chain_project(tmp_path / "a", 15), capsys)
    large = targets_read_by_list(chain_project(tmp_path / "b", 30), capsys)
    assert large < 2.6 * small, (small, large)


def test_run_status_finds_producers_once_and_walks_a_long_chain_without_recursion(
        monkeypatch):
    """A chain deeper than Python's recursion limit is decided; the producers' index is
    built once for all the tasks asked about."""
    from mlops_tasks.commands import doit as cmd_doit

    class Task:
        def __init__(self, name: str, file_dep: list[str], targets: list[str]):
            self.name, self.file_dep, self.targets = name, set(file_dep), targets
            self.task_dep: list[str] = []
            self.actions = ["x"]

    class Status:
        status = "up-to-date"

    class Deps:
        calls = 0

        def status_is_ignore(self, task: Any) -> bool:
            return False

        def get_status(self, task: Any, tasks: Any, get_log: bool = False) -> Any:
            Deps.calls += 1
            return Status()

    n = 3000
    tasks = {f"t{i}": Task(f"t{i}", [f"f{i - 1}"] if i else [], [f"f{i}"]) for i in range(n)}
    built = []
    original = cmd_doit.producer_index
    monkeypatch.setattr(cmd_doit, "producer_index", lambda t: built.append(1) or original(t))
    book = cmd_doit.RunStatus(Deps(), tasks)
    assert all(book.status(f"t{i}") == "up-to-date" for i in reversed(range(n)))
    assert Deps.calls == n and built == [1]


def test_a_task_up_to_date_itself_waits_on_a_stale_upstream():
    """execute:b is up to date on its own, but log:a before it would run: W, naming a."""
    from mlops_tasks.commands.doit import RunStatus, wait_lines

    class Task:
        def __init__(self, name: str, task_dep: list[str]):
            self.name, self.task_dep, self.file_dep, self.targets = name, task_dep, set(), []
            self.actions = ["x"]

    stale = {"execute:a"}

    class Deps:
        def status_is_ignore(self, task: Any) -> bool:
            return False

        def get_status(self, task: Any, tasks: Any, get_log: bool = False) -> Any:
            return type("S", (), {"status": "run" if task.name in stale else "up-to-date"})

    tasks = {t.name: t for t in [Task("execute:a", []), Task("log:a", ["execute:a"]),
                                 Task("kernel:b", []),
                                 Task("execute:b", ["kernel:b", "log:a"]),
                                 Task("log:b", ["execute:b"])]}
    run = RunStatus(Deps(), tasks)
    assert [run.shown(n) for n in tasks] == ["run", "wait", "up-to-date", "wait", "wait"]
    assert wait_lines(run, "execute:b") == [
        "waits on upstream stage 'a' (execute:a would run): execute:b reruns if a's outputs "
        "change"]
    stale.clear()
    assert RunStatus(Deps(), tasks).shown("execute:b") == "up-to-date"


# -- doit info on a group --------------------------------------------------------------------


def test_info_on_a_stage_lists_its_tasks_with_status_and_reasons(tmp_path):
    root = tiny_project(tmp_path / "p")
    info = doit(root, "info", "s", check=False)
    assert info.returncode == 1, info
    out = info.stdout
    assert "The task has no dependencies" not in out
    assert "\nstatus     : run\n" in out and "\ntasks      : \n" in out, out
    for task in ("execute:s", "log:s"):  # the venv is built by execute:s when it runs
        assert f" {task}\n" in out, out
    assert " - R execute:s\n     uptodate false: <code of nb/s.ipynb: never executed>" in out, out
    assert "<env: never executed>" in out, out
    assert "<parameters: never executed>" in out and "(args=" not in out, out
    execute = doit(root, "info", "execute", check=False)
    assert execute.returncode == 1 and "execute:s" in execute.stdout, execute
    quiet = doit(root, "info", "--no-status", "s")  # no status asked: nothing is stale
    assert " - execute:s\n" in quiet.stdout and "status" not in quiet.stdout, quiet.stdout


def test_brief_reasons_take_one_line_each():
    from mlops_tasks.commands.doit import brief_reasons

    reasons = {"uptodate_false": [("<parameters: n: 1 → 2>", [], {})],
               "missing_target": ["a", "b", "c", "d", "e"], "has_no_dependencies": False}
    assert brief_reasons(reasons) == ["uptodate false: <parameters: n: 1 → 2>",
                                      "targets missing: a, b, c, ... (2 more)"]


@pytest.fixture(scope="module")
def done(tmp_path_factory, wheelhouse):
    """A one-stage pipeline run once, whose notebook's cells have no ids (nbformat 4.5 wants
    them; notebooks written by hand or by old tools have none)."""
    root = make_project(tmp_path_factory.mktemp("cmds") / "p", wheelhouse, with_use=False)
    notebook = root / "notebooks" / "make.ipynb"
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        del cell["id"]
    notebook.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    source = notebook.read_bytes()
    ran = doit(root)
    return root, ran.stdout + ran.stderr, source


@pytest.mark.integration
def test_a_notebook_without_cell_ids_runs_without_a_warning_and_is_not_rewritten(done):
    root, output, source = done
    assert "MissingIDFieldWarning" not in output and "missing an id" not in output, output
    assert (root / "notebooks" / "make.ipynb").read_bytes() == source
    executed = json.loads((root / ".mlops" / "executed" / "make.ipynb").read_text())
    assert all(cell.get("id") for cell in executed["cells"])  # normalised in memory


@pytest.mark.integration
def test_info_on_an_up_to_date_stage_or_group_exits_0(done):
    root, _, _ = done
    for group in ("make", "execute", "venv"):
        info = doit(root, "info", group, check=False)
        assert info.returncode == 0, info
        assert "\nstatus     : up-to-date\n" in info.stdout, info.stdout
    info = doit(root, "info", "make").stdout
    assert " - U execute:make\n - U log:make\n" in info, info  # execute:make built its venv
    spec = root / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 3"))
    try:
        stale = doit(root, "info", "make", check=False)
    finally:
        spec.write_text(original)
    assert stale.returncode == 1 and "\nstatus     : run\n" in stale.stdout, stale
    assert " - R execute:make\n     uptodate false: <parameters: repeat: 2 → 3>" in stale.stdout


# -- --param after a stage's name ------------------------------------------------------------


def test_param_after_a_stage_name_says_where_it_belongs(tmp_path):
    root = tiny_project(tmp_path / "p")
    for args in (["run", "s", "--param=n=5"], ["s", "--param=n=5"]):
        proc = doit(root, *args, check=False)
        assert proc.returncode == 3, proc
        assert "not recognized" not in proc.stderr, proc.stderr
        assert "doit run execute:s --param=n=5" in proc.stderr, proc.stderr
        assert not (root / ".mlops").exists()  # refused before anything was prepared


def test_misplaced_param_names_the_stage_and_keeps_the_overrides():
    from mlops_tasks.commands.doit import misplaced_param

    class Task:
        def __init__(self, takes: bool):
            self.params = [{"name": "param"}] if takes else []

    tasks = {"s": Task(False), "venv:s": Task(False), "execute:s": Task(True),
             "execute": Task(False)}
    assert misplaced_param(["execute:s", "--param=n=5"], tasks) is None
    assert misplaced_param(["s"], tasks) is None
    assert "doit run execute:s --param=n=5 --param=m=1" in str(
        misplaced_param(["venv:s", "--param=n=5", "--param=m=1"], tasks))
    assert "not 'execute'" in str(misplaced_param(["execute", "--param=n=5"], tasks))
    assert "execute:<stage> --param=n=5" in str(misplaced_param(["execute", "--param=n=5"],
                                                                tasks))


# -- a reader that stops early ---------------------------------------------------------------


@pytest.mark.parametrize("args", [["list", "--all", "--status"], ["list", "--all"],
                                  ["info", "s002"], ["info", "execute:s002"]])
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path, args):
    """As `doit ... | head`: the reader is gone before doit writes (or after a few lines)."""
    root = chain_project(tmp_path / "p", 40)
    proc = subprocess.Popen([PYTHON, "-m", "doit", *args], cwd=root, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
