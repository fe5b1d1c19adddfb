"""Profiles: a smoke run with each stage's overrides, in a scratch tree: the project's
outputs, executed notebooks, dep DB and up-to-date state are never touched."""

from __future__ import annotations

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.spec import parse_stage

from .helpers import (
    NOTEBOOK_CELLS,
    clean_env,
    forked_doit,
    local_client,
    make_project,
    write_notebook,
)


def test_a_bad_profile_names_the_spec_and_the_fix():
    with pytest.raises(SpecError, match="profile 'smoke' must hold only 'parameters'"):
        parse_stage("name: s\nnotebook: nb.ipynb\nprofiles: {smoke: {rows: 3}}\n", "s.yaml")


def snapshot(root) -> dict[str, bytes]:
    keep = [*sorted((root / "out").rglob("*")), *sorted((root / ".mlops" / "executed").glob("*")),
            root / ".mlops" / "doit.db"]
    return {str(p.relative_to(root)): p.read_bytes() for p in keep if p.is_file()}


@pytest.mark.integration
def test_a_smoke_run_leaves_the_real_pipeline_alone(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse)
    spec = root / "env_specs" / "make.yaml"
    spec.write_text(spec.read_text() + "profiles:\n  smoke:\n    parameters: {repeat: 1}\n")
    # a notebook that also appends to a project file it does not declare
    (root / "data").mkdir()
    (root / "data" / "shared.csv").write_text("a\n")
    write_notebook(root / "notebooks" / "make.ipynb", [
        *NOTEBOOK_CELLS["make"], (None, "open('data/shared.csv', 'a').write('row\\n')")])
    forked_doit(root)
    forked_doit(root, "run", "venv", "kernel")  # a stage's run builds its venv, not these
    before = snapshot(root)
    assert (root / "data" / "shared.csv").read_text() == "a\nrow\n"
    smoke = forked_doit(root, env=clean_env(MLOPS_PROFILE="smoke"))
    assert "profile 'smoke': running in .mlops/profiles/smoke/proj" in smoke.stdout
    scratch_csv = root / ".mlops" / "profiles" / "smoke" / "proj" / "data" / "shared.csv"
    assert scratch_csv.read_text() == "a\nrow\nrow\n" and not scratch_csv.is_symlink()
    assert (root / "data" / "shared.csv").read_text() == "a\nrow\n"
    again = forked_doit(root, "profile=smoke")  # doit's own way; nothing changed since: no-op
    assert ".  execute:" not in again.stdout
    assert snapshot(root) == before  # outputs, executed notebooks, dep DB: byte-identical
    assert (root / "data" / "shared.csv").read_text() == "a\nrow\n"  # its copy was refreshed
    status = forked_doit(root, "list", "--all", "--status").stdout
    assert all(line.startswith("U ") for line in status.splitlines() if line.strip()), status
    scratch = root / ".mlops" / "profiles" / "smoke" / "proj"
    assert (scratch / "out" / "greeting.txt").read_text() == "hi"  # repeat: 1
    assert (root / "out" / "greeting.txt").read_text() == "hi hi"
    client = local_client(root)
    runs = client.search_runs([client.get_experiment_by_name("test-pipeline-smoke")
                               .experiment_id])
    assert {r.data.tags["mlops.stage"] for r in runs} == {"make", "use"}
    assert all(r.data.tags["mlops.profile"] == "smoke" for r in runs)
    bad = forked_doit(root, env=clean_env(MLOPS_PROFILE="nightly"), check=False)
    assert bad.returncode == 3 and "no stage defines the profile 'nightly'; profiles: smoke" \
        in bad.stderr
