"""Stage rules on real kernels: depends_on reruns and waits for logging, early exits,
non-Python notebooks, context names in specs, override runs kept apart, interrupted runs
reported."""

from __future__ import annotations

import json

import pytest

from .helpers import forked_doit, make_project, ran, write_notebook, write_spec

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    root = make_project(tmp_path_factory.mktemp("rules") / "p", wheelhouse, with_use=False)
    write_notebook(root / "notebooks" / "compare.ipynb", [
        ("parameters", "mlflow_tracking_uri = ''"),
        (None, "import os\nfrom pathlib import Path\n"
               "Path('out/compare.txt').write_text(mlflow_tracking_uri + '|' + "
               "os.environ['MLFLOW_TRACKING_URI'])")])
    # compare reads no file of make's: only depends_on links them
    write_spec(root, "compare", """
        name: compare
        notebook: notebooks/compare.ipynb
        env_dir: .venvs/shared-compare
        depends_on: [make]
        parameters:
          mlflow_tracking_uri: http://example.invalid:5000
        outputs: [out/compare.txt]
    """)
    forked_doit(root)
    return root


def test_depends_on_waits_for_the_upstream_log_and_reruns_on_a_new_run(project):
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 3"))
    try:
        forked_doit(project, "run", "execute:make")
        info = forked_doit(project, "info", "execute:compare", check=False).stdout
        assert "<runs of make: new run of make>" in info
        out = forked_doit(project).stdout
    finally:
        spec.write_text(original)
    order = [line[3:].strip() for line in out.splitlines() if line.startswith(".  ")]
    assert order.index("log:make") < order.index("execute:compare")
    assert {"log:make", "execute:compare", "log:compare"} <= set(order)
    out = forked_doit(project).stdout  # back to repeat: 2, a new run of make again
    assert "execute:compare" in ran(out)
    assert ran(forked_doit(project).stdout) == set()


def test_a_spec_parameter_named_like_the_context_wins_for_the_notebook(project):
    text = (project / "out" / "compare.txt").read_text()
    notebook_value, kernel_env = text.split("|")
    assert notebook_value == "http://example.invalid:5000"
    assert kernel_env.startswith("sqlite:///")  # the kernel still logs to the tool's store


def test_an_early_exit_fails_unless_the_spec_allows_it(project):
    path = project / "notebooks" / "make.ipynb"
    good = path.read_text()
    write_notebook(path, [("parameters", 'greeting = "hello"\nrepeat = 1'),
                          (None, "import sys\nsys.exit(0)"),
                          (None, "from pathlib import Path\n"
                                 "Path('out/greeting.txt').write_text('late')")])
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    try:
        proc = forked_doit(project, "run", "execute:make", check=False)
        assert proc.returncode != 0
        assert ("execute:make: the notebook stopped early: code cell 2 called sys.exit()"
                in proc.stdout + proc.stderr)
        spec.write_text(original.replace("outputs:\n  - out/greeting.txt", "outputs: []")
                        + "allow_early_exit: true\n")
        forked_doit(project, "run", "execute:make")
    finally:
        path.write_text(good)
        spec.write_text(original)
    forked_doit(project)


def test_a_non_python_notebook_fails_before_a_kernel_starts(project):
    path = project / "notebooks" / "make.ipynb"
    good = path.read_text()
    nb = json.loads(good)
    nb["metadata"]["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    nb["metadata"]["language_info"] = {"name": "R"}
    path.write_text(json.dumps(nb))
    try:
        proc = forked_doit(project, "run", "execute:make", check=False)
    finally:
        path.write_text(good)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "execute:make: notebooks/make.ipynb is a r notebook" in text
    assert "MLflow run" not in text  # nothing started
    forked_doit(project)


def test_an_override_run_keeps_its_outputs_apart(project):
    before = (project / "out" / "greeting.txt").read_bytes()
    proc = forked_doit(project, "run", "execute:make", "--param=repeat=4")
    run_id = json.loads(next(project.glob(".mlops/overrides/make/*/record.json")).read_text()
                        )["run_id"]
    folder = project / ".mlops" / "overrides" / "make" / run_id
    assert (folder / "outputs" / "out" / "greeting.txt").read_text() == " ".join(["hi"] * 4)
    assert (folder / "make.ipynb").exists() and (folder / "last-run.json").exists()
    assert (project / "out" / "greeting.txt").read_bytes() == before
    assert "the declared outputs are untouched" in proc.stdout
    assert ran(forked_doit(project).stdout) == set()  # the stage stays as it was


def test_an_interrupted_run_is_reported_until_the_stage_runs_again(project):
    previous = project / ".mlops" / "previous" / "make"
    (previous / "files" / "out").mkdir(parents=True)
    (previous / "files" / "out" / "greeting.txt").write_text("hi hi")
    (previous / "manifest.json").write_text(json.dumps({"existed": ["out/greeting.txt"]}))
    (project / "out" / "greeting.txt").write_text("half")  # what the killed run left
    status = forked_doit(project, "list", "--all", "--status").stdout
    assert "R execute:make" in status
    info = forked_doit(project, "info", "execute:make", check=False).stdout
    assert "a run was interrupted: its outputs may be half-written" in info
    audit = forked_doit(project, "audit", "make", check=False)
    assert audit.returncode == 1 and "interrupted run: BROKEN" in audit.stdout
    assert "execute:make" in ran(forked_doit(project).stdout)
    assert not previous.exists()
    assert (project / "out" / "greeting.txt").read_text() == "hi hi"


def test_list_status_marks_groups_by_their_tasks_and_a_bare_forget_forgets_all(project):
    forked_doit(project)
    forked_doit(project, "run", "venv", "kernel")  # a stage's run builds its venv, not these
    status = forked_doit(project, "list", "--all", "--status").stdout.splitlines()
    assert status and all(line.startswith("U ") for line in status), status
    forget = forked_doit(project, "forget")  # no default tasks: every task, not a TypeError
    assert "forgetting all tasks" in forget.stdout
    status = forked_doit(project, "list", "--status").stdout
    assert "R make " in status and "R execute " in status
    forked_doit(project)
    forked_doit(project, "run", "venv", "kernel")
    assert all(line.startswith("U ") for line in
               forked_doit(project, "list", "--all", "--status").stdout.splitlines())
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 3"))
    try:  # only execute:make is stale; its group and the stage's group run it
        status = forked_doit(project, "list", "--all", "--status").stdout
    finally:
        spec.write_text(original)
    marks = {line.split()[1]: line.split()[0] for line in status.splitlines()}
    # log:make is up to date itself and waits on execute:make, which would run
    assert marks["execute:make"] == "R" and marks["log:make"] == "W", status
    assert marks["make"] == "R" and marks["execute"] == "R" and marks["venv"] == "U", status


def test_audit_names_each_change_and_lists_override_runs(project):
    forked_doit(project)
    assert forked_doit(project, "audit", "make").returncode == 0
    forked_doit(project, "run", "execute:make", "--param=repeat=5")
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 3") + "timeout: 600\n")
    try:
        audit = forked_doit(project, "audit", "make", check=False)
    finally:
        spec.write_text(original)
    assert audit.returncode == 1
    out = audit.stdout
    assert "parameters: CHANGED in env_specs/make.yaml: repeat: 2 → 3" in out
    assert "spec: CHANGED: env_specs/make.yaml says something else" in out
    assert "override run " in out and "repeat=5" in out


def test_a_run_of_an_uncommitted_notebook_is_dirty_and_keeps_it(project):
    from mlflow.tracking import MlflowClient

    write_notebook(project / "notebooks" / "fresh.ipynb", [
        (None, "from pathlib import Path\nPath('out/fresh.txt').write_text('new')")])
    write_spec(project, "fresh", """
        name: fresh
        notebook: notebooks/fresh.ipynb
        outputs: [out/fresh.txt]
    """)
    try:
        forked_doit(project, "run", "fresh")
        done = json.loads((project / ".mlops/executed/fresh.json").read_text())
    finally:
        (project / "env_specs" / "fresh.yaml").unlink()
    assert done["git"]["dirty"] is True
    assert done["git"]["untracked"] == ["env_specs/fresh.yaml", "notebooks/fresh.ipynb"]
    client = MlflowClient(f"sqlite:///{(project / '.mlops' / 'mlflow.db').as_posix()}")
    kept = {a.path for a in client.list_artifacts(done["run_id"], "untracked/notebooks")}
    assert kept == {"untracked/notebooks/fresh.ipynb"}
    assert client.get_run(done["run_id"]).data.tags["mlops.git_dirty"] == "true"


def test_a_failing_stage_leaves_no_run_of_another_stage_unlogged(project):
    from mlflow.tracking import MlflowClient

    write_notebook(project / "notebooks" / "zfail.ipynb", [(None, "raise ValueError('no')")])
    write_spec(project, "zfail", "name: zfail\nnotebook: notebooks/zfail.ipynb\n")
    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 7"))
    try:
        proc = forked_doit(project, check=False)
    finally:
        spec.write_text(original)
        (project / "env_specs" / "zfail.yaml").unlink()
    assert proc.returncode != 0
    assert {"execute:make", "log:make", "execute:zfail"} <= ran(proc.stdout)
    client = MlflowClient(f"sqlite:///{(project / '.mlops' / 'mlflow.db').as_posix()}")
    runs = client.search_runs([client.get_experiment_by_name("test-pipeline").experiment_id])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    forked_doit(project)


def test_a_tracking_uri_changed_between_execute_and_log_gets_a_new_run(project, tmp_path):
    from mlflow.tracking import MlflowClient

    from .helpers import clean_env

    spec = project / "env_specs" / "make.yaml"
    original = spec.read_text()
    spec.write_text(original.replace("repeat: 2", "repeat: 9"))
    other = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    try:
        forked_doit(project, "run", "execute:make")
        first = json.loads((project / ".mlops/executed/make.json").read_text())["run_id"]
        elsewhere = clean_env(MLFLOW_TRACKING_URI=other)
        out = forked_doit(project, "run", "log:make", env=elsewhere).stdout
        again = forked_doit(project, "run", "log:make", env=elsewhere)
    finally:
        spec.write_text(original)
    assert "log:make: the tracking URI changed since the stage ran" in out
    assert ran(again.stdout) == set()  # logged once: no loop
    logged = json.loads((project / ".mlops/runs/make/last-run.json").read_text())
    assert logged["recreated_from"] == first and logged["run_id"] != first
    new = MlflowClient(other).get_run(logged["run_id"])
    assert new.info.status == "FINISHED"
    assert new.data.tags["mlops.recreated_from"].startswith(first)
    home = MlflowClient(f"sqlite:///{(project / '.mlops' / 'mlflow.db').as_posix()}")
    orphan = home.get_run(first)
    assert orphan.info.status == "KILLED" and orphan.data.tags["mlops.superseded"] == "true"
    forked_doit(project)
