"""`doit wheels`: fills the cache per stage; then installs need no index."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlops_tasks.cmd_wheels import download_argv

from .helpers import clean_env, doit, make_project


def test_download_argv_for_another_platform():
    argv = download_argv("py", Path("w"), Path("r.txt"), "3.10", "win_amd64")
    assert argv[:4] == ["py", "-m", "pip", "download"]
    assert argv[-6:] == ["--only-binary", ":all:", "--python-version", "3.10", "--platform",
                         "win_amd64"]


@pytest.mark.integration
def test_doit_wheels_fills_the_cache_for_one_stage(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse)
    cache = tmp_path / "cache"
    text = (root / "pyproject.toml").read_text()
    (root / "pyproject.toml").write_text(text.replace(str(wheelhouse), str(cache)))
    # pip resolves from the session wheelhouse only: no network needed for this test
    env = clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))
    proc = doit(root, "wheels", "make", env=env)
    tag = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"wheels: make (Python {tag})" in proc.stdout
    assert any(cache.glob("ipykernel-*.whl"))
    assert not any(cache.glob("mlflow_skinny-*.whl"))  # only the stage asked for
    bad = doit(root, "wheels", "nosuch", env=env, check=False)
    assert bad.returncode != 0 and "unknown stage(s): nosuch" in bad.stderr
