"""Every CI file the tool writes works on the project it was written for: its Linux `sh`
steps run for real, in order, on a fresh `mlops-tasks init` project and on a copy of the
example, offline. The orchestrator is installed from the one source `orchestrator` names in
pyproject.toml (a committed wheel, or the tool's own tree), never from a bare name on an
index. Only the long `doit` run itself is left out."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import PYTHON, clean_env

pytestmark = pytest.mark.skipif(os.name == "nt", reason="runs the Linux agent's sh steps")

REPO = Path(__file__).resolve().parents[1]
SH_STEP = re.compile(r"""^\s*sh (?:'''(.*)'''|'(.*)'|"(.*)")\s*$""")
DEPS_PTH = "_orchestrator_dependencies.pth"


def sh_steps(jenkinsfile: str) -> list[str]:
    """The `sh` steps (the Linux branch: Windows has `bat`), as the shell receives them."""
    steps = []
    for line in jenkinsfile.splitlines():
        match = SH_STEP.match(line)
        if match:
            single = match.group(1) or match.group(2)
            text = single if single is not None else match.group(3)
            steps.append(text.replace("\\'", "'").replace("\\\\", "\\"))
    return steps


@pytest.fixture(scope="session")
def dependencies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder showing the orchestrator's dependencies as installed for the tests, without
    mlops-tasks itself (nor pip or setuptools): an agent's venv sees them through a .pth
    file, so its install step finds every dependency satisfied, offline, and mlops-tasks only
    where the CI file says."""
    view = tmp_path_factory.mktemp("dependencies")
    site = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    hidden = re.compile(r"(?i)(mlops[_-]tasks|__editable__|pip|setuptools|_distutils_hack|"
                        r"distutils-precedence)([-.].*)?$")
    for folder in site:
        for entry in folder.iterdir():
            if not hidden.match(entry.name) and not entry.name.endswith(".pth") and \
                    not (view / entry.name).exists():
                (view / entry.name).symlink_to(entry)
    return view


@pytest.fixture(scope="session")
def build_backend(registry: str, request: pytest.FixtureRequest) -> Path:
    """setuptools' wheel: what `pip install -e .` of the tool's tree builds with, offline;
    downloaded once per machine, under pytest's cache."""
    folder = Path(request.config.cache.mkdir("build-backend"))
    with FileLock(str(folder) + ".lock"):
        if not any(folder.glob("setuptools-*.whl")):
            subprocess.run([PYTHON, "-m", "pip", "download", "--quiet", "--no-deps",
                            "--only-binary", ":all:", "--index-url", registry, "--dest",
                            str(folder), "setuptools>=68"], check=True, env=clean_env())
    return folder


def fill_cache(root: Path, *folders: Path) -> None:
    """wheels_cache/ as `doit wheels` leaves it: links to the wheels of `folders`."""
    cache = root / "wheels_cache"
    cache.mkdir(exist_ok=True)
    for folder in folders:
        for wheel in folder.glob("*.whl"):
            if not (cache / wheel.name).exists():
                (cache / wheel.name).symlink_to(wheel)


def see_dependencies(root: Path, dependencies: Path) -> None:
    venv = root / ".venv"
    if not venv.is_dir():
        return
    (site,) = venv.glob("lib/python3*/site-packages")
    if not (site / DEPS_PTH).exists():
        (site / DEPS_PTH).write_text(f"{dependencies}\n", encoding="utf-8")


def run_steps(root: Path, jenkinsfile: str, dependencies: Path) -> list[str]:
    """Run the CI file's sh steps in root, in order, as an agent would; the steps that run
    the pipeline (`doit`, `doit run`) are left out, `doit list` runs. The steps run."""
    ran = []
    for step in sh_steps(jenkinsfile):
        if "/doit" in step and "doit list" not in step:
            continue
        step = step.replace(".venv/bin/doit ", ".venv/bin/python -m doit ")
        # as Jenkins binds it from the credentials; the steps that run here never contact it
        agent = clean_env(MLFLOW_TRACKING_URI="http://127.0.0.1:9/")
        proc = subprocess.run(["sh", "-e", "-c", step], cwd=root, env=agent,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{step}\nexited {proc.returncode}\n{proc.stdout[-3000:]}" \
                                     f"\n{proc.stderr[-3000:]}"
        see_dependencies(root, dependencies)
        ran.append(step)
    return ran


def installed_from(root: Path) -> Path:
    """Where the agent's venv imports mlops_tasks from, and its `doit list` works."""
    python = root / ".venv" / "bin" / "python"
    where = subprocess.run([python, "-c", "import mlops_tasks; print(mlops_tasks.__file__)"],
                           cwd=root, env=clean_env(), capture_output=True, text=True,
                           check=True).stdout.strip()
    listed = subprocess.run([python, "-m", "doit", "list"], cwd=root, env=clean_env(),
                            capture_output=True, text=True)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return Path(where).resolve()


def uninstall(root: Path) -> None:
    subprocess.run([root / ".venv" / "bin" / "python", "-m", "pip", "uninstall", "--yes",
                    "--quiet", "mlops-tasks"], cwd=root, env=clean_env(), check=True)


def init_project(root: Path, wheelhouse: Path) -> Path:
    subprocess.run([PYTHON, "-m", "mlops_tasks.commands.cli", "init", str(root)], check=True,
                   env=clean_env(), capture_output=True)
    fill_cache(root, wheelhouse)
    return root


def example_copy(root: Path, *wheels: Path) -> Path:
    """The example as a clone has it: the tool's tree with its pipeline (no state, no venvs)."""
    for rel in ("pyproject.toml", "README.md", "dodo.py", "Jenkinsfile"):
        shutil.copy2(REPO / rel, root / rel)
    for rel in ("mlops_tasks", "env_specs", "notebooks"):
        shutil.copytree(REPO / rel, root / rel, ignore=shutil.ignore_patterns("__pycache__"))
    fill_cache(root, *wheels)
    return root


def print_jenkinsfile(root: Path) -> str:
    proc = subprocess.run([PYTHON, "-m", "doit", "jenkinsfile"], cwd=root, env=clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.integration
def test_both_ci_files_of_an_init_project_install_the_committed_wheel(tmp_path, wheelhouse,
                                                                       dependencies):
    """The Jenkinsfile init writes, then `doit jenkinsfile`'s, on one agent workspace (the
    second finds the venv made and installs again)."""
    root = init_project(tmp_path / "new", wheelhouse)
    written = (root / "Jenkinsfile").read_text(encoding="utf-8")
    printed = print_jenkinsfile(root)
    for text in (written, printed):
        ran = run_steps(root, text, dependencies)
        assert any("pip install" in step for step in ran), ran
        assert installed_from(root).is_relative_to(root / ".venv")
        assert "mlops-tasks comes from the wheel wheels_cache/mlops_tasks-" in text
        assert not re.search(r'install[^|\n]*"mlops-tasks', text)  # never a bare name (per line)
        assert "-e ." not in text  # a pipeline project is not a Python package
        uninstall(root)  # the next file installs it again


@pytest.mark.integration
def test_both_ci_files_of_the_example_install_the_tools_own_tree(
        tmp_path, wheelhouse, build_backend, dependencies):
    """The example's own Jenkinsfile and `doit jenkinsfile`'s, on a copy of the example."""
    root = example_copy(tmp_path, wheelhouse, build_backend)
    for text in ((root / "Jenkinsfile").read_text(encoding="utf-8"), print_jenkinsfile(root)):
        ran = run_steps(root, text, dependencies)
        assert any("pip install" in step for step in ran), ran
        assert installed_from(root) == (root / "mlops_tasks" / "__init__.py").resolve()
        assert "mlops-tasks comes from this" in text and "-e ." in text
        uninstall(root)  # the next file installs it again


def test_steps_are_read_as_the_shell_receives_them():
    text = ("sh 'a \\'b\\' c\\\\d'\n  sh '''python3 -c 'x' '''\n"
            "    sh \".venv/bin/doit run '${name}'\"\n    bat 'no'\n")
    assert sh_steps(text) == ["a 'b' c\\d", "python3 -c 'x' ", ".venv/bin/doit run '${name}'"]


@pytest.mark.parametrize(("value", "says"), [
    ("mlops-tasks==0.1.0", "a bare name or path is resolved on whatever index"),
    ("mlops-tasks", "a bare name or path is resolved on whatever index"),
    ("git+https://git.example/org/mlops-tasks.git@main", "@<the full 40-hex commit>"),
    ("mlops-tasks==0.1.0 --index-url https://pypi.org/simple", "the public index"),
    ("mlops-tasks --index-url https://pypi.corp.example/simple", "an exact version"),
    ("../elsewhere/mlops_tasks-0.1.0-py3-none-any.whl", "stay inside it"),
    ("wheels_cache/other-1.0-py3-none-any.whl", "mlops-tasks' own"),
    ("wheels_cache/$(id).whl", "shell characters"),
    ("self", '"self" is for mlops-tasks\' own source tree'),
    (3, "it is not a string"),
])
def test_a_bad_orchestrator_setting_names_the_file_the_key_and_the_fix(tmp_path, value, says):
    from mlops_tasks.base.errors import ConfigError
    from mlops_tasks.project.config import load_config

    (tmp_path / "pyproject.toml").write_text(
        f"[project]\nname = \"pipeline\"\n[tool.mlops_tasks]\norchestrator = "
        f"{json.dumps(value)}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as bad:
        load_config(tmp_path)
    message = str(bad.value)
    assert message.startswith(f"{tmp_path / 'pyproject.toml'}: [tool.mlops_tasks] orchestrator")
    assert says in message and "Expected one of:" in message and "Fix:" in message


@pytest.mark.parametrize(("value", "kind"), [
    ("wheels_cache/mlops_tasks-0.1.0-py3-none-any.whl", "wheel"),
    ("git+https://git.example/org/mlops-tasks.git@" + "0123456789abcdef" * 2 + "01234567",
     "vcs"),
    ("mlops-tasks==0.1.0 --index-url https://pypi.corp.example/simple", "index"),
])
def test_each_controlled_source_is_accepted(tmp_path, value, kind):
    from mlops_tasks.project.config import load_config

    (tmp_path / "pyproject.toml").write_text(
        f"[tool.mlops_tasks]\norchestrator = {json.dumps(value)}\n", encoding="utf-8")
    source = load_config(tmp_path).orchestrator
    assert source is not None and source.kind == kind and source.setting() == value


def test_the_tools_own_tree_may_say_self():
    from mlops_tasks.project.config import load_config

    source = load_config(REPO).orchestrator
    assert source is not None and source.kind == "self" and source.requirement == "-e ."
