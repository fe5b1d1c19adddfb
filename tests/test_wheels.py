"""`doit wheels`: the cache holds what each stage needs on its target Python and platform
(markers evaluated for the target, not for the machine filling it), and `--check` says so
without downloading (the orchestrator's own wheels: test_wheels_orchestrator.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.env.wheel_cache import orchestrator_requirements, pip_command
from mlops_tasks.env.wheelset import (
    Target,
    download_argv,
    parse_pins,
    target_tags,
    uncovered,
    uv_platform,
)

from .helpers import PYTHON, clean_env, closed_port, doit, write_notebook

# -- deciding, as data ----------------------------------------------------------------------------


def test_download_argv_downloads_exactly_the_pins_for_the_target():
    argv = download_argv(["py", "-m", "pip"], Path("w"), Path("pins.txt"),
                         Target("3.10", "win_amd64"))
    assert argv[:4] == ["py", "-m", "pip", "download"]
    assert "--no-deps" in argv and argv[-2:] == ["--platform", "win_amd64"]
    assert argv[argv.index("--python-version") + 1] == "3.10"
    linux = download_argv(["pip"], Path("w"), Path("p"), Target("3.12", "manylinux_2_28_x86_64"))
    assert "manylinux2014_x86_64" in linux and "manylinux_2_17_x86_64" in linux


@pytest.mark.parametrize(("tag", "uv"), [
    ("win_amd64", "x86_64-pc-windows-msvc"), ("win32", "i686-pc-windows-msvc"),
    ("manylinux2014_x86_64", "x86_64-manylinux_2_17"),
    ("manylinux_2_28_aarch64", "aarch64-manylinux_2_28"),
    ("linux_x86_64", "x86_64-unknown-linux-gnu"), ("macosx_11_0_arm64", "aarch64-apple-darwin"),
])
def test_platform_tags_map_to_uv_targets(tag, uv):
    assert uv_platform(tag) == uv


def test_an_unknown_platform_is_refused_with_examples():
    with pytest.raises(MlopsError, match="win_amd64, win32"):
        uv_platform("windows-x64")


def test_which_wheels_a_target_accepts(tmp_path):
    windows = Target("3.10", "win_amd64")
    accepted = {str(t) for t in target_tags(windows)}
    assert {"cp310-cp310-win_amd64", "cp310-abi3-win_amd64", "py3-none-any"} <= accepted
    assert not any("manylinux" in t or "cp311" in t for t in accepted)
    wheels = [tmp_path / name for name in (
        "pyzmq-27.3.0-cp310-cp310-win_amd64.whl", "colorama-0.4.6-py2.py3-none-any.whl",
        "psutil-7.2.2-cp36-abi3-manylinux2010_x86_64.whl", "not-a-wheel.txt")]
    pins = ["pyzmq==27.3.0", "colorama==0.4.6", "psutil==7.2.2", "Jupyter_Core==5.9.1",
            "tool @ git+https://example.com/tool"]
    assert uncovered(pins, wheels, windows) == ["psutil==7.2.2", "Jupyter_Core==5.9.1",
                                                 "tool @ git+https://example.com/tool"]


def test_pins_are_read_from_compile_output():
    text = "# header\nidna==3.6\n    # via -r r.in\ncolorama==0.4.6 ; sys_platform == 'win32'\n"
    assert parse_pins(text) == ["idna==3.6", "colorama==0.4.6 ; sys_platform == 'win32'"]


def test_orchestrator_requirements_come_from_the_project():
    here = {"project": {"name": "x", "dependencies": ["doit>=0.36"]},
            "build-system": {"requires": ["setuptools>=68"]}}
    assert orchestrator_requirements(here, "0.1.0") == ["doit>=0.36", "setuptools>=68"]
    assert orchestrator_requirements({}, "0.2.0") == ["mlops-tasks==0.2.0"]


def test_pip_is_found_even_where_the_environment_has_none():
    argv = pip_command()
    proc = subprocess.run([*argv, "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("pip ")


# -- real resolutions and downloads (the package registry) ---------------------------------------

def project(root: Path, cache: Path, python: str | None = None) -> Path:
    (root / "env_specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.mlops_tasks]\nexperiment = "w"\nwheels_cache = {json.dumps(str(cache))}\n')
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n")
    write_notebook(root / "nb" / "a.ipynb", [(None, "import idna")])
    spec = "name: a\nnotebook: nb/a.ipynb\npackages: [idna]\n"
    if python:
        spec += f'python: "{python}"\n'
    (root / "env_specs" / "a.yaml").write_text(spec)
    return root


WINDOWS = ["--platform", "win_amd64", "--python-version", "3.10"]


@pytest.fixture(scope="session")
def filled_the_old_way(request: pytest.FixtureRequest, registry: str) -> Path:
    """ipykernel and idna for Windows as pip's own download fills a cache (markers evaluated
    for the machine running it); downloaded once per machine, under pytest's cache."""
    folder = Path(request.config.cache.mkdir("pip-download-win_amd64-py310"))
    with FileLock(str(folder) + ".lock"):
        marker = folder / ".filled"
        if not marker.exists():
            subprocess.run([PYTHON, "-m", "pip", "download", "-q", "--only-binary", ":all:",
                            *WINDOWS, "--dest", str(folder), "ipykernel", "idna"],
                           check=True, env=clean_env())
            marker.write_text("ok")
    return folder


@pytest.mark.integration
def test_a_windows_cache_filled_from_linux_is_complete(tmp_path, filled_the_old_way):
    root = project(tmp_path / "p", tmp_path / "cache")
    target = WINDOWS
    # the old way: pip's download evaluates markers for the machine running it
    old = filled_the_old_way
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace(str(tmp_path / "cache"), str(old)))
    before = doit(root, "wheels", "--check", *target, check=False)
    assert before.returncode == 1
    assert "a (Python 3.10 on win_amd64): MISSING" in before.stdout
    assert "colorama==" in before.stdout
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text().replace(str(old), str(tmp_path / "cache")))
    doit(root, "wheels", *target)
    cache = tmp_path / "cache"
    assert any(cache.glob("colorama-*.whl")) and any(cache.glob("pyzmq-*-win_amd64.whl"))
    after = doit(root, "wheels", "--check", *target)
    assert "a (Python 3.10 on win_amd64): complete" in after.stdout
    from mlops_tasks.env.installers import find_uv

    req = tmp_path / "req.in"
    req.write_text("ipykernel\nidna\n")
    subprocess.run([find_uv(), "pip", "compile", "-q", str(req), "--python-platform", "windows",
                    "--python-version", "3.10", "--no-index", "--find-links", str(cache)],
                   check=True, env=clean_env(), capture_output=True)


@pytest.mark.integration
def test_a_requirement_without_a_wheel_for_the_target_is_named(tmp_path, registry):
    root = project(tmp_path / "p", tmp_path / "cache")
    (root / "env_specs" / "a.yaml").write_text(
        "name: a\nnotebook: nb/a.ipynb\npackages: [pywin32]\n")
    proc = doit(root, "wheels", "--platform", "manylinux2014_x86_64", check=False)
    assert proc.returncode == 3
    assert "no wheel of pywin32 for Python" in proc.stderr
    assert "on manylinux2014_x86_64" in proc.stderr


def another_python() -> str | None:
    from mlops_tasks.base.errors import InterpreterNotFound
    from mlops_tasks.env.interpreters import Resolver

    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in ("3.10", "3.12", "3.13"):
        if version != current:
            try:
                Resolver().resolve("probe", version, None)
                return version
            except InterpreterNotFound:
                continue
    return None


@pytest.mark.integration
def test_filled_for_another_python_then_built_with_every_index_unreachable(tmp_path, registry):
    version = another_python()
    if version is None:
        pytest.skip("no second Python version installed")
    root = project(tmp_path / "p", tmp_path / "cache", python=version)
    doit(root, "wheels")
    (root / "pyproject.toml").write_text(
        (root / "pyproject.toml").read_text() + 'index_policy = "offline"\n')
    nowhere = f"http://127.0.0.1:{closed_port()}/simple"
    env = clean_env(PIP_INDEX_URL=nowhere, UV_INDEX_URL=nowhere, UV_DEFAULT_INDEX=nowhere)
    proc = doit(root, "run", "venv:a", env=env)
    assert "venv:a" in proc.stdout
    freeze = (root / ".venvs" / "a" / "pip-freeze.txt").read_text()
    assert "ipykernel==" in freeze and "idna==" in freeze


# -- the orchestrator from the cache, with no index ------------------------------------------

# -- --check names every gap, and says when the index cannot be reached ----------------------

def two_stages_with_gaps(root: Path, cache: Path) -> Path:
    """Stage a asks for two requirements no source has, stage b for one more."""
    project(root, cache)
    (root / "env_specs" / "a.yaml").write_text(
        "name: a\nnotebook: nb/a.ipynb\npackages: [nothere, idna, alsomissing]\n")
    (root / "env_specs" / "b.yaml").write_text(
        "name: b\nnotebook: nb/a.ipynb\npackages: [idna, gone-too]\n")
    return root


@pytest.mark.integration
def test_check_offline_names_every_gap_and_the_unreachable_index(tmp_path, wheelhouse):
    root = two_stages_with_gaps(tmp_path / "p", wheelhouse)
    nowhere = f"http://127.0.0.1:{closed_port()}/simple"
    env = clean_env(PIP_INDEX_URL=nowhere, UV_INDEX_URL=nowhere, UV_DEFAULT_INDEX=nowhere,
                    UV_HTTP_RETRIES="0")
    proc = doit(root, "wheels", "--check", env=env, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = proc.stdout.splitlines()
    assert f"wheels: a (Python {version} on this platform): MISSING nothere, alsomissing" in lines
    assert f"wheels: b (Python {version} on this platform): MISSING gone-too" in lines
    said = [line for line in lines if "could not be reached" in line]
    assert said == [f"wheels: the package index {nowhere} could not be reached: Connection "
                    f"refused; --check without network shows only what {wheelhouse}/ holds"]


@pytest.mark.integration
def test_check_names_every_requirement_the_index_lacks(tmp_path, wheelhouse):
    root = two_stages_with_gaps(tmp_path / "p", wheelhouse)
    index = tmp_path / "simple"
    (index / "idna").mkdir(parents=True)  # an index that has idna only, as files
    for wheel in wheelhouse.glob("idna-*.whl"):
        shutil.copy(wheel, index / "idna")
    (index / "idna" / "index.html").write_text("".join(
        f'<a href="{w.name}">{w.name}</a>\n' for w in (index / "idna").glob("*.whl")))
    url = index.as_uri()
    proc = doit(root, "wheels", "--check", check=False,
                env=clean_env(PIP_INDEX_URL=url, UV_INDEX_URL=url, UV_DEFAULT_INDEX=url))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "a (Python" in proc.stdout and "MISSING nothere, alsomissing\n" in proc.stdout
    assert "MISSING gone-too\n" in proc.stdout
    assert "could not be reached" not in proc.stdout
