"""Shared environments, for real: three specs on one environment get one venv and one
kernel, built once; changing the environment rebuilds it once and reruns all three."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import doit, git_commit_all, offline_pipeline, ran, write_notebook, write_spec

pytestmark = pytest.mark.integration

STAGES = ("a", "b", "c")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    root = offline_pipeline(tmp_path_factory.mktemp("shared") / "p", wheelhouse, "shared-envs")
    (root / "env_specs" / "environments").mkdir()
    (root / "env_specs" / "environments" / "base.yaml").write_text(
        "packages: []\n", encoding="utf-8")
    for name in STAGES:
        write_spec(root, name, f"""
        name: {name}
        notebook: nb/{name}.ipynb
        environment: base
        outputs: [out/{name}.txt]
        """)
        write_notebook(root / "nb" / f"{name}.ipynb", [
            (None, f'import sys\nfrom pathlib import Path\nPath("out").mkdir(exist_ok=True)\n'
                   f'Path("out/{name}.txt").write_text(sys.prefix)')])
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n", encoding="utf-8")
    git_commit_all(root)
    return root


def test_three_specs_build_one_env_once_and_all_run_on_it(project: Path):
    listed = doit(project, "list", "--all").stdout
    assert "venv:base" in listed and "venv:a" not in listed
    out = doit(project).stdout
    first = ran(out)
    assert {t for t in first if t.startswith(("venv:", "kernel:"))} == set()  # execute builds
    assert out.count("building .venvs/base") == 1  # once, by the first stage that runs
    assert {f"execute:{n}" for n in STAGES} <= first
    assert sorted(p.name for p in (project / ".venvs").iterdir()) == ["base"]
    venv = (project / ".venvs" / "base").resolve()
    assert {Path((project / "out" / f"{n}.txt").read_text()).resolve() for n in STAGES} == {venv}
    assert ran(doit(project).stdout) == set()


def test_changing_the_environment_rebuilds_it_once_and_reruns_every_stage_on_it(project: Path):
    (project / "env_specs" / "environments" / "base.yaml").write_text(
        "packages: [idna]\n", encoding="utf-8")
    again = doit(project)
    assert {t for t in ran(again.stdout) if t.startswith(("venv:", "execute:"))} == {
        f"execute:{n}" for n in STAGES}
    assert again.stdout.count("building .venvs/base") + again.stderr.count(
        "building .venvs/base") == 1
    assert "idna==" in (project / ".venvs" / "base" / "pip-freeze.txt").read_text()


def test_a_spec_giving_environment_and_packages_is_refused_with_file_and_line(project: Path):
    spec = project / "env_specs" / "c.yaml"
    before = spec.read_text(encoding="utf-8")
    spec.write_text(before + "packages: [idna]\n", encoding="utf-8")
    try:
        failed = doit(project, "list", check=False)
    finally:
        spec.write_text(before, encoding="utf-8")
    assert failed.returncode != 0
    assert ("env_specs/c.yaml:6: 'packages' and 'environment' (line 4) are both given"
            in failed.stdout + failed.stderr)
