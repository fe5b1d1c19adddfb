"""Stage environments with real venvs from the local wheelhouse: versions, no-cause cases,
kills, offline installs, concurrency, lock files, clean and gc."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_tasks.env.install_errors import missing_requirements
from mlops_tasks.env.interpreters import Interpreter
from mlops_tasks.env.plan import describe_change, env_problem, plan_env
from mlops_tasks.project.spec import Stage

from .helpers import (
    PYTHON,
    clean_env,
    closed_port,
    doit,
    group_alive,
    make_project,
    needs_process_groups,
    ran,
    set_config,
    wait_until,
    write_notebook,
    write_spec,
)

ENV = ".venvs/shared-make"


# -- decisions, without processes -------------------------------------------------------


def test_describe_change_names_what_changed():
    stage = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", packages=("pandas", "numpy"))
    plan = plan_env(stage, Interpreter("/py", "3.11.7", "cpython"), "uv")
    marker = {"python_version": "3.10.13", "requirements": ["dask", "numpy<2", "ipykernel"],
              "options": {"installer": "uv"}}
    text = describe_change(marker, plan)
    assert "python 3.10.13 → 3.11.7" in text
    assert "+pandas" in text and "-dask" in text and "numpy<2 → numpy" in text
    locked = plan_env(stage, Interpreter("/py", "3.11.7", "cpython"), "uv", "x==1\n")
    assert describe_change({**marker, "python_version": "3.11.7",
                            "requirements": list(plan.requirements)}, locked) == \
        "lock file added"


def test_env_problem_without_marker(tmp_path):
    stage = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k")
    plan = plan_env(stage, Interpreter("/py", "3.11.7", "cpython"), "uv")
    assert env_problem(tmp_path / "none", plan, tmp_path / "f.txt") == "not built yet"
    (tmp_path / "half").mkdir()
    assert "no valid marker" in env_problem(tmp_path / "half", plan, tmp_path / "f.txt")


def test_missing_requirement_names_from_installer_messages():
    uv = ("  × No solution found when resolving dependencies:\n  ╰─▶ Because tabulate was not "
          "found in the provided package locations and you require tabulate, we can conclude")
    pip = "ERROR: No matching distribution found for tabulate==0.9"
    assert missing_requirements(uv) == ["tabulate"]
    assert missing_requirements(pip) == ["tabulate"]


def test_only_venvs_are_discarded(tmp_path, monkeypatch):
    from mlops_tasks.base.errors import EnvBuildError
    from mlops_tasks.env.venv import claim, discard

    data = tmp_path / "data"
    data.mkdir()
    (data / "raw.csv").write_text("a,b\n")
    with pytest.raises(EnvBuildError, match="'data' is a folder this tool did not build"):
        discard(Stage("s", "env_specs/s.yaml", "n.ipynb", "data", "k"), tmp_path)
    assert (data / "raw.csv").read_text() == "a,b\n"
    # a venv of this tool's in every other respect, but the one running doit
    stage = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venv", "k")
    running = tmp_path / ".venv"
    (running / "bin").mkdir(parents=True)
    (running / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (running / ".mlops-env.json").write_text("{}")
    monkeypatch.setattr(sys, "prefix", str(running))
    with pytest.raises(EnvBuildError, match="'.venv' is the environment running doit"):
        discard(stage, tmp_path)
    assert sorted(p.name for p in running.iterdir()) == [".mlops-env.json", "bin",
                                                         "pyvenv.cfg"]
    monkeypatch.undo()  # the same folder, no longer the running environment, is ours
    discard(stage, tmp_path)
    assert not running.exists()
    half = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/half", "k")
    claim(half, tmp_path)  # a build killed before pyvenv.cfg was written
    (tmp_path / ".venvs" / "half" / "bin").mkdir(parents=True)
    discard(half, tmp_path)
    assert not (tmp_path / ".venvs" / "half").exists()


def test_a_lock_file_older_than_the_spec_is_refused():
    from mlops_tasks.base.errors import EnvBuildError
    from mlops_tasks.env.plan import check_pins_cover

    stage = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k",
                  packages=("pandas>=2", "XGBoost"))
    lock = "# header\npandas==2.2.3\n    # via -r in\nnumpy==2.1\n"
    with pytest.raises(EnvBuildError, match=r"does not pin XGBoost .* `doit lock s`"):
        check_pins_cover(stage, lock, "env_specs/s.lock")
    check_pins_cover(stage, lock + "xgboost==2.1\n", "env_specs/s.lock")


@pytest.mark.parametrize(("policy", "empty", "filled"), [
    ("online", [], ["--find-links", "{cache}"]),
    ("offline-first", [], ["--no-index", "--find-links", "{cache}"]),
    ("offline", ["--no-index", "--find-links", "{cache}"],
     ["--no-index", "--find-links", "{cache}"]),
])
def test_index_options_by_policy(tmp_path, policy, empty, filled):
    """`online` adds a filled wheel cache to the index, never `--no-index`; the other
    policies install offline from a filled cache."""
    from mlops_tasks.env.installers import wheel_sources
    from mlops_tasks.project.config import Config

    config = Config(root=tmp_path, index_policy=policy, wheels_cache="wheels")
    cache = tmp_path / "wheels"
    empty = [arg.format(cache=cache) for arg in empty]
    assert wheel_sources(config) == (empty, bool(empty))  # no cache folder
    cache.mkdir()
    (cache / "README.md").write_text("approved wheels\n")
    assert wheel_sources(config) == (empty, bool(empty))  # a cache without wheels
    (cache / "idna-3.6-py3-none-any.whl").write_bytes(b"")
    filled = [arg.format(cache=cache) for arg in filled]
    assert wheel_sources(config) == (filled, policy != "online")


def test_freeze_names_the_interpreter():
    from mlops_tasks.env.plan import freeze_header

    assert freeze_header(Interpreter("/py", "3.12.1", "cpython")) == "# python 3.12.1 (cpython)\n"


def test_uv_lookup_is_safe_from_threads():
    """`doit -n 2` builds venvs from two threads; uv's own lookup is not thread-safe."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops_tasks.env.installers import find_uv

    with ThreadPoolExecutor(8) as pool:
        found = set(pool.map(lambda _: find_uv(), range(32)))
    assert len(found) == 1 and None not in found


# -- real venvs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    root = make_project(tmp_path_factory.mktemp("envs") / "proj", wheelhouse, with_use=False)
    doit(root)
    return root


def marker(root: Path) -> dict:
    return json.loads((root / ENV / ".mlops-env.json").read_text())


def building(why: str) -> str:
    """The line venv:make prints when it builds the env (on the Python running doit)."""
    return f"venv:make: building {ENV} with Python {platform.python_version()}: {why}\n"


@pytest.mark.integration
def test_spec_edits_that_do_not_touch_the_env_rebuild_nothing(project):
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text("# a comment\nparameters:\n  repeat: 2\n  greeting: hi\nnotes: owner x\n"
                    "outputs: [out/greeting.txt]\nenv_dir: .venvs/shared-make\n"
                    "notebook: notebooks/make.ipynb\nname: make\n")
    try:
        assert ran(doit(project).stdout) == set()
        spec.write_text(original.replace("repeat: 2", "repeat: 3"))
        assert ran(doit(project).stdout) == {"execute:make", "log:make"}
    finally:
        spec.write_text(original)
    assert ran(doit(project).stdout) == {"execute:make", "log:make"}


@pytest.mark.integration
def test_deleted_venv_is_rebuilt_and_an_identical_freeze_reruns_nothing(project):
    freeze = (project / ENV / "pip-freeze.txt").read_bytes()
    shutil.rmtree(project / ENV)
    assert ran(doit(project).stdout) == set()  # nothing must execute: no venv is needed
    out = doit(project, "run", "venv:make").stdout
    assert ran(out) == {"venv:make"}
    assert building("not built yet") in out
    assert (project / ENV / "pip-freeze.txt").read_bytes() == freeze
    assert ran(doit(project).stdout) == set()


@pytest.mark.integration
def test_half_built_or_edited_venv_is_discarded(project):
    (project / ENV / ".mlops-env.json").unlink()
    out = doit(project, "run", "venv:make").stdout
    assert ran(out) == {"venv:make"}
    assert building("shared-make has no valid marker (a build was interrupted or the folder "
                    "was made by hand)") in out
    freeze = project / ENV / "pip-freeze.txt"
    freeze.write_text(freeze.read_text() + "hand-edit==1.0\n")
    out = doit(project, "run", "venv:make").stdout
    assert building("pip-freeze.txt was changed by hand") in out and "venv:make" in ran(out)
    assert "hand-edit" not in freeze.read_text()


@pytest.mark.integration
def test_package_change_rebuilds_with_a_reason_and_reruns_downstream(project):
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("name: make", "name: make\npackages: [idna]"))
    try:
        out = doit(project).stdout
        assert building("packages: +idna") in out  # execute:make builds it, then runs
        assert ran(out) == {"execute:make", "log:make"}
        assert "idna==" in (project / ENV / "pip-freeze.txt").read_text()
    finally:
        spec.write_text(original)
    # back to the spec of an earlier run: its key is in the local store, restored, not run
    assert "the notebook did not run" in doit(project).stdout
    assert building("packages: -idna") in doit(project, "run", "venv:make").stdout


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(lock_text: str) -> dict[str, str]:
    """{name: version} of a pins file's `name==version` lines."""
    pins = [line.split("==") for line in lock_text.splitlines()
            if "==" in line and not line.startswith(("#", " "))]
    return {canonical(name): version.strip() for name, version in pins}


def frozen(freeze: Path) -> dict[str, str]:
    """{name: version} of a pip-freeze.txt, its interpreter line left out."""
    pins = [line.split("==") for line in freeze.read_text().splitlines()
            if not line.startswith("#")]
    return {canonical(name): version for name, version in pins}


@pytest.mark.integration
def test_lock_file_pins_the_env(project):
    out = doit(project, "lock", "make").stdout
    lock = project / "env_specs" / "make.lock"
    pins = pinned(lock.read_text())
    assert "ipykernel" in pins
    assert f"lock: env_specs/make.lock pins {len(pins)} packages\n" in out
    out = doit(project).stdout
    assert building("lock file added") in out and "execute:make" in ran(out)
    assert "venv:make: installing exactly the pins of env_specs/make.lock\n" in out
    assert frozen(project / ENV / "pip-freeze.txt") == pins
    lock.unlink()
    assert building("lock file removed") in doit(project, "run", "venv:make").stdout


@pytest.mark.integration
def test_pip_installs_exactly_the_pins(project):
    """With installer = "pip" the venv holds exactly the pins file's versions (pip install
    --no-deps), idna 3.6 included, which resolving the spec would not pick."""
    doit(project, "lock", "make")
    lock = project / "env_specs" / "make.lock"
    lock.write_text(lock.read_text() + "idna==3.6\n")
    set_config(project, installer="pip")
    try:
        out = doit(project, "run", "venv:make").stdout
        assert "venv:make: installing exactly the pins of env_specs/make.lock\n" in out
        assert re.search(r"^\$ \S+ -m pip install .*-r \S+ --no-deps", out, re.M), out
        pins = pinned(lock.read_text())
        assert pins["idna"] == "3.6" and "ipykernel" in pins
        assert frozen(project / ENV / "pip-freeze.txt") == pins
        assert marker(root=project)["options"]["installer"] == "pip"
    finally:
        lock.unlink()
        set_config(project, installer=None)
    assert building("lock file removed; options: {'installer': 'pip'} → {'installer': 'uv'}"
                    ) in doit(project, "run", "venv:make").stdout


@pytest.mark.integration
def test_clean_and_gc(project):
    write_spec(project, "make", (project / "env_specs" / "make.yaml").read_text()
               .replace(".venvs/shared-make", ".venvs/make2"))
    try:
        doit(project)
        assert "would remove .venvs/shared-make" in doit(project, "gc", "-n").stdout
        assert (project / ENV).exists()
        assert "removed .venvs/shared-make" in doit(project, "gc").stdout
        assert not (project / ENV).exists()
        doit(project, "clean", "venv:make", "kernel:make")
        assert not (project / ".venvs" / "make2").exists()
        assert not (project / ".mlops/jupyter/kernels/mlops-make").exists()
    finally:
        write_spec(project, "make", (project / "env_specs" / "make.yaml").read_text()
                   .replace(".venvs/make2", ".venvs/shared-make"))


@pytest.mark.integration
def test_two_stages_on_two_python_versions(tmp_path, wheelhouse, other_python):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    write_spec(root, "other", f"""
        name: other
        python: "{other_python}"
        notebook: notebooks/other.ipynb
        outputs: [out/version.txt]
    """)
    write_notebook(root / "notebooks" / "other.ipynb", [
        (None, "import platform, pathlib\npathlib.Path('out').mkdir(exist_ok=True)\n"
               "pathlib.Path('out/version.txt').write_text(platform.python_version())")])
    doit(root)
    assert (root / "out" / "version.txt").read_text().startswith(other_python + ".")
    mine = f"{sys.version_info.major}.{sys.version_info.minor}."
    assert marker(root)["python_version"].startswith(mine)
    other = json.loads((root / ".venvs/other/.mlops-env.json").read_text())
    assert other["python_version"].startswith(other_python + ".")


def closed_port_url() -> str:
    return f"http://127.0.0.1:{closed_port()}/simple"


@pytest.mark.integration
def test_offline_install_needs_no_index_and_a_missing_wheel_is_named(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    set_config(root, index_policy="offline-first")
    url = closed_port_url()
    env = clean_env(UV_INDEX_URL=url, UV_DEFAULT_INDEX=url, PIP_INDEX_URL=url,
                    UV_HTTP_RETRIES="0")  # a closed port fails at once, not after retries
    assert "venv:make" in ran(doit(root, "run", "venv:make", env=env).stdout)
    write_spec(root, "make", (root / "env_specs" / "make.yaml").read_text()
               .replace("name: make", "name: make\npackages: [tabulate]"))
    set_config(root, index_policy="offline")
    proc = doit(root, "run", "venv:make", env=env, check=False)
    assert proc.returncode != 0
    assert (f"venv:make: tabulate is not in {wheelhouse}/ and the index policy is offline; "
            "fill the cache with `doit wheels` (or `doit wheels make`) on a machine with "
            "network access.") in proc.stdout + proc.stderr
    set_config(root, index_policy="offline-first")
    proc = doit(root, "run", "venv:make", env=env, check=False)
    assert proc.returncode != 0
    assert (f"venv:make: tabulate not in {wheelhouse}/; trying the package index "
            "(index_policy = offline-first)\n") in proc.stdout
    # online: the index is asked even when every wheel is in the cache
    write_spec(root, "make", (root / "env_specs" / "make.yaml").read_text()
               .replace("packages: [tabulate]\n", ""))
    set_config(root, index_policy="online")
    shutil.rmtree(root / ENV, ignore_errors=True)
    proc = doit(root, "run", "venv:make", env=env, check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert building("not built yet") in proc.stdout
    assert f"--find-links {wheelhouse}" in text and "--no-index" not in text
    assert f"Failed to fetch: {url}/ipykernel/" in text


@pytest.mark.integration
def test_an_unreachable_index_is_named_as_the_cause(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    set_config(root, index_policy="online")
    url = closed_port_url()
    proc = doit(root, "run", "venv:make", check=False,
                env=clean_env(UV_INDEX_URL=url, UV_DEFAULT_INDEX=url, UV_HTTP_RETRIES="0"))
    assert proc.returncode != 0
    lines = proc.stdout.splitlines()
    summary = lines[lines.index("TaskFailed - taskid:venv:make") + 1]
    assert summary.startswith("venv:make: ") and url in summary, summary
    assert "check the requirement's name" not in summary


@pytest.mark.integration
@needs_process_groups
def test_killed_build_is_detected_and_rebuilt(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    set_config(root, installer="pip")  # pip is slow enough to be killed mid-install
    proc = subprocess.Popen([PYTHON, "-m", "doit", "run", "venv:make"], cwd=root,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    site = root / ENV / "lib"
    wait_until(lambda: any(site.glob("python*/site-packages/tornado")), 120,
               "the pip install never started", poll=0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_until(lambda: not group_alive(proc.pid), 10, "the killed doit's installer lives on")
    assert not (root / ENV / ".mlops-env.json").exists()
    out = doit(root, "run", "venv:make").stdout
    assert "no valid marker" in out
    assert marker(root)["options"] == {"installer": "pip"}


# One build of stage `make`, straight through the venv task's action (so no workspace
# mutex is involved), started when the test says go; prints when it ran and any failure.
BUILD_WHEN_TOLD = """
import json, sys, time
from pathlib import Path
from mlops_tasks.pipeline.actions import build_venv
from mlops_tasks.project.load import load_project

root, flags, me = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
project = load_project(root)
(flags / f"ready-{me}").write_text("")
while not (flags / "go").exists():
    time.sleep(0.005)
start = time.monotonic()
failed = build_venv(project.config, project.stage("make"))
print(json.dumps({"start": start, "end": time.monotonic(), "failed": failed and str(failed)}))
"""


@pytest.mark.integration
def test_concurrent_builds_of_one_stage_build_once(tmp_path, wheelhouse):
    """Two processes build one stage's venv at the same moment: the venv mutex lets one
    build while the other waits, then finds the env valid and reuses it."""
    from mlops_tasks.env.plan import env_problem, plan_for
    from mlops_tasks.project.load import load_project

    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    flags = tmp_path / "flags"
    flags.mkdir()
    procs = [subprocess.Popen([PYTHON, "-c", BUILD_WHEN_TOLD, str(root), str(flags), str(i)],
                              cwd=root, env=clean_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    wait_until(lambda: len(list(flags.glob("ready-*"))) == 2
               or any(p.poll() is not None for p in procs), 120, "the builders never started")
    (flags / "go").write_text("")
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    reports = [json.loads(out.splitlines()[-1]) for out, _ in results]
    assert [r["failed"] for r in reports] == [None, None], results
    builds = [out.count(building("not built yet")) for out, _ in results]
    assert sorted(builds) == [0, 1], results
    builder, waiter = reports[builds.index(1)], reports[builds.index(0)]
    assert waiter["start"] < builder["end"] <= waiter["end"]  # it waited out the build
    project = load_project(root)
    stage = project.stage("make")
    assert env_problem(root / ENV, plan_for(project.config, stage),
                       root / ENV / "pip-freeze.txt") is None
    assert marker(root)["freeze_sha256"]
