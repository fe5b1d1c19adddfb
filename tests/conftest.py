"""Shared fixtures: one wheelhouse per session, a real MLflow server, a leak guard. The
helpers they use live in tests/helpers.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from .helpers import MlflowServer, fill_for_version, fill_wheelhouse


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test is marked `integration` exactly when it builds real venvs or downloads (it uses
    the wheelhouse or the registry, directly or through a fixture), so `-m "not integration"`
    runs every quick test and nothing slow. A test marked otherwise stops the session, named."""
    wrong = []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        builds = "wheelhouse" in fixtures or "registry" in fixtures
        marked = item.get_closest_marker("integration") is not None
        if builds and not marked:
            wrong.append(f"{item.nodeid}: builds venvs but is not marked integration")
        elif marked and not builds:
            wrong.append(f"{item.nodeid}: marked integration but builds no venv; unmark it")
    if wrong:
        raise pytest.UsageError("\n".join(wrong))


@pytest.fixture(autouse=True)
def no_env_leaks():
    """Fail a test that leaves environment variables changed."""
    def snapshot() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}

    before = snapshot()
    yield
    after = snapshot()
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert not changed, f"test leaked environment changes: {sorted(changed)}"


@pytest.fixture(scope="session")
def wheelhouse(request: pytest.FixtureRequest) -> Path:
    """A local wheel cache with ipykernel and its dependencies, filled once (pip download)."""
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    folder = Path(request.config.cache.mkdir(f"wheelhouse-{tag}"))
    with FileLock(str(folder) + ".lock"):  # test workers share one wheelhouse
        fill_wheelhouse(folder)
    return folder


@pytest.fixture(scope="session")
def registry() -> str:
    """The package registry (PyPI), for tests of resolving and downloading; skipped where
    it cannot be reached."""
    import urllib.request

    url = "https://pypi.org/simple/"
    try:
        with urllib.request.urlopen(url + "idna/", timeout=15):
            return url
    except OSError as err:
        pytest.skip(f"the package registry cannot be reached: {err}")


@pytest.fixture(scope="session")
def other_python(wheelhouse: Path) -> str:
    """An installed Python version other than the orchestrator's, with ipykernel wheels for it
    in the wheelhouse; the test is skipped where the machine has none."""
    from mlops_tasks.base.errors import InterpreterNotFound
    from mlops_tasks.env.interpreters import Resolver

    current = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in ("3.12", "3.10", "3.13", "3.11"):
        if version == current:
            continue
        try:
            Resolver().resolve("probe", version, None)
        except InterpreterNotFound:
            continue
        marker = wheelhouse / f".filled-{version}"
        with FileLock(str(wheelhouse) + ".lock"):
            fill_for_version(wheelhouse, marker, version)
        return version
    pytest.skip("no second Python version installed")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    yield server
    server.stop()
