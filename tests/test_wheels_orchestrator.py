"""`doit wheels --orchestrator`: the orchestrator itself installs from the cache with no
index, with pip and with uv (apart from test_wheels.py, so the two slow groups run on two
workers)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import PYTHON, clean_env, closed_port, doit
from .test_wheels import project

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def orchestrator_cache(tmp_path_factory, request, registry) -> tuple[Path, Path]:
    """A copy of this project's sources, and a cache filled by `doit wheels --orchestrator`.
    The cache is kept under pytest's cache: the wheels are downloaded once per machine, and
    each session's `doit wheels --orchestrator` resolves again and adds what is missing."""
    src = tmp_path_factory.mktemp("orch") / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".mlops", ".venvs", ".venv", "*.egg-info", "__pycache__", ".pytest_cache",
        "wheels_cache", "build"))
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    cache = Path(request.config.cache.mkdir(f"orchestrator-wheels-{tag}"))
    text = (src / "pyproject.toml").read_text()
    (src / "pyproject.toml").write_text(text.replace(
        "[tool.mlops_tasks]\n", f"[tool.mlops_tasks]\nwheels_cache = {json.dumps(str(cache))}\n"))
    with FileLock(str(cache) + ".lock"):
        doit(src, "wheels", "--orchestrator")
    return src, cache


def offline_env(**extra: str) -> dict[str, str]:
    nowhere = f"http://127.0.0.1:{closed_port()}/simple"
    return clean_env(PIP_INDEX_URL=nowhere, UV_INDEX_URL=nowhere, UV_DEFAULT_INDEX=nowhere,
                     **extra)


@pytest.mark.integration
def test_pip_resolves_the_orchestrator_with_no_index(tmp_path, orchestrator_cache):
    """pip alone, every index unreachable, finds everything the orchestrator needs in the
    cache, the build backend of its editable install included. Resolved, not unpacked (the
    uv test below installs from the same cache and runs doit)."""
    src, cache = orchestrator_cache
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    report = tmp_path / "report.json"
    subprocess.run([PYTHON, "-m", "pip", "--python", str(py), "install", "-q", "--dry-run",
                    "--no-index", "--find-links", str(cache), "--report", str(report),
                    "-e", str(src)], check=True, env=offline_env())
    names = {item["metadata"]["name"].lower().replace("_", "-")
             for item in json.loads(report.read_text())["install"]}
    assert {"mlops-tasks", "doit", "papermill", "mlflow", "pyyaml", "filelock"} <= names


@pytest.mark.integration
def test_doit_wheels_in_an_orchestrator_made_by_uv(tmp_path, orchestrator_cache):
    from mlops_tasks.env.installers import find_uv

    src, cache = orchestrator_cache
    uv, venv = find_uv(), tmp_path / "uv-venv"
    subprocess.run([uv, "venv", "-q", "--python", PYTHON, str(venv)], check=True,
                   env=clean_env())
    py = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(py), "--no-index",
                    "--find-links", str(cache), "-e", str(src)], check=True, env=clean_env())
    assert subprocess.run([str(py), "-c", "import pip"], capture_output=True).returncode != 0
    root = project(tmp_path / "p", tmp_path / "cache")
    proc = subprocess.run([str(py), "-m", "doit", "wheels"], cwd=root, env=clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any((tmp_path / "cache").glob("ipykernel-*.whl"))
