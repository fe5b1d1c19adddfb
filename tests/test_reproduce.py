"""`doit reproduce RUN_ID`: a recorded run rebuilt in an isolated folder (commit, diff,
freeze, parameters) and compared with its record; the workspace stays byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mlops_tasks.run.reproduce import (
    DIFFERENT,
    IDENTICAL,
    SAME_METRICS,
    decide,
    freeze_differences,
    recorded_pins,
)
from mlops_tasks.tracking.tags import REPRODUCES
from tests.helpers import (
    clean_env,
    closed_port,
    doit,
    local_client,
    make_project,
    write_notebook,
    write_spec,
)

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


def test_verdict_from_hashes_and_metrics():
    same = {"out/a": ("x", "x")}
    assert decide(same, {"m": (1.0, 1.0)}) == (IDENTICAL, "")
    assert decide({"out/a": ("x", "y")}, {"m": (1.0, 1.0)})[0] == SAME_METRICS
    assert decide(same, {"m": (1.0, 2.0)}) == (DIFFERENT, "metrics differ: m")
    assert decide({"out/a": ("x", None)}, {})[0] == DIFFERENT


def test_the_report_page_links_a_run_to_its_reproductions():
    from mlops_tasks.render.report_page import Reproduction, StageView, page

    view = StageView("make", "up-to-date", run_id="r1", reproductions=[
        Reproduction("2026-12-01T10:00:00+00:00", IDENTICAL, "r2",
                     "http://mlflow/#/experiments/1/runs/r2"),
        Reproduction("2026-12-02T10:00:00+00:00", "could not reproduce", None, None)])
    html = page("p", "now", "store", [view], [["make"]])
    assert "Reproductions of this run" in html
    assert '<a href="http://mlflow/#/experiments/1/runs/r2">run r2</a>' in html
    assert "could not reproduce</td><td>no run" in html


def test_recorded_pins_leave_out_the_header():
    assert recorded_pins("# python 3.11.7 (cpython)\nidna==3.6\n\n-e ./x\n") == ["idna==3.6"]


def test_a_rebuilt_venv_must_hold_the_recorded_freeze_exactly():
    recorded = ["idna==3.6", "typing_extensions==4.0"]
    assert freeze_differences(recorded, "typing-extensions==4.0\nidna==3.6\n") == []
    assert freeze_differences(recorded, "idna==3.7\ntyping-extensions==4.0\nsix==1\n") == [
        "-idna==3.6", "+idna==3.7", "+six==1"]


# -- one real project for every integration test below -----------------------------------------


def _commit(root: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-qm", message], cwd=root, check=True)


def _set_repeat(root: Path, n: int) -> None:
    spec = root / "env_specs" / "make.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text("\n".join(f"  repeat: {n}" if line.strip().startswith("repeat:") else line
                              for line in text.splitlines()) + "\n", encoding="utf-8")


def _runs(root: Path, stage: str) -> set[str]:
    return {p.name for p in (root / ".mlops" / "runs" / stage).iterdir() if p.is_dir()}


def _tree_hashes(root: Path) -> dict[str, str]:
    """Every file of the project but git's own folder and the tracking store's database."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".git/") and "mlflow.db" not in rel:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    """make (run clean, then from a dirty tree, then after two commits) and rand (unseeded
    random numbers as its metric); the workspace's files hashed after its last run."""
    root = make_project(tmp_path_factory.mktemp("reproduce") / "p", wheelhouse, with_use=False)
    write_spec(root, "rand", """
    name: rand
    notebook: notebooks/rand.ipynb
    outputs:
      - out/sample.txt
    metrics:
      - out/rand.json
    """)
    write_notebook(root / "notebooks" / "rand.ipynb", [
        (None, "import json, random\nfrom pathlib import Path\nx = random.random()\n"
               "Path('out/sample.txt').write_text(str(x))\n"
               "Path('out/rand.json').write_text(json.dumps({'score': x}))"),
    ])
    write_spec(root, "twice", """
    name: twice
    notebook: notebooks/twice.ipynb
    inputs: [out/sample.txt]
    outputs: [out/twice.txt]
    """)
    write_notebook(root / "notebooks" / "twice.ipynb", [
        (None, "from pathlib import Path\nx = float(Path('out/sample.txt').read_text())\n"
               "Path('out/twice.txt').write_text(str(2 * x))"),
    ])
    _commit(root, "rand")
    doit(root)
    runs = {"clean": _runs(root, "make").pop(), "rand": _runs(root, "rand").pop(),
            "twice": _runs(root, "twice").pop()}
    _set_repeat(root, 3)  # not committed: the run is dirty, its diff recorded
    doit(root, "run", "make")
    runs["dirty"] = (_runs(root, "make") - {runs["clean"]}).pop()
    for n in (4, 5):  # the workspace moves on by two commits
        _set_repeat(root, n)
        _commit(root, f"repeat {n}")
    doit(root, "run", "make")
    runs["last"] = (_runs(root, "make") - {runs["clean"], runs["dirty"]}).pop()
    return root, runs, _tree_hashes(root)


def _reproduce(root: Path, *args: str) -> tuple[int, dict]:
    proc = doit(root, "reproduce", "--json", *args, check=False)
    try:
        return proc.returncode, json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}") from None


@pytest.mark.integration
def test_a_run_reproduces_identically_after_the_workspace_moved_on(project):
    root, runs, _ = project
    code, out = _reproduce(root, runs["clean"])
    assert out["verdict"] == IDENTICAL, out
    assert code == 0
    assert out["files"]["out/greeting.txt"]["identical"]
    assert (root / "out" / "greeting.txt").read_text() == "hi hi hi hi hi"  # untouched
    assert not (root / ".mlops" / "reproduce" / runs["clean"]).exists()


@pytest.mark.integration
def test_a_dirty_run_reproduces_from_its_recorded_diff(project):
    root, runs, _ = project
    code, out = _reproduce(root, runs["dirty"])
    assert (code, out["verdict"]) == (0, IDENTICAL), out


@pytest.mark.integration
def test_unseeded_randomness_is_reported_as_different_with_its_values(project):
    root, runs, _ = project
    proc = doit(root, "reproduce", runs["rand"], check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "metric score: DIFFERENT (recorded 0." in proc.stdout
    assert "verdict: different: metrics differ: score" in proc.stdout


@pytest.mark.integration
def test_a_pin_missing_from_the_wheel_cache_is_refused_before_executing(project):
    root, runs, _ = project
    freeze = root / ".mlops" / "runs" / "make" / runs["last"] / "pip-freeze.txt"
    recorded = freeze.read_bytes()
    lines = [("ipykernel==0.0.1" if line.startswith("ipykernel==") else line)
             for line in recorded.decode().splitlines()]
    freeze.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        code, out = _reproduce(root, "make")  # a stage: its last run
    finally:
        freeze.write_bytes(recorded)
    assert code == 3, out
    assert out["run_id"] == runs["last"] and "ipykernel" in out["reason"], out
    assert "nothing was executed" in out["reason"] and not out["new_run_id"]


@pytest.mark.integration
def test_an_input_gone_from_the_workspace_comes_from_the_run_that_made_it(project):
    root, runs, _ = project
    sample = root / "out" / "sample.txt"
    kept = sample.read_bytes()
    sample.write_text("something else")
    try:
        code, out = _reproduce(root, runs["twice"])
    finally:
        sample.write_bytes(kept)
    assert code == 0 and out["verdict"] == IDENTICAL, out  # from rand's run's artifacts


def _no_store(port: int) -> dict[str, str]:
    """A tracking server that does not answer, with credentials in its URL."""
    return clean_env(MLFLOW_TRACKING_URI=f"http://ci:s3cret@127.0.0.1:{port}",
                     MLOPS_STORE_RETRY_SECONDS="1")


@pytest.mark.integration
def test_a_run_whose_local_record_is_gone_is_reproduced_from_the_store(project, tmp_path):
    """As a run made on another machine: only the store has its record (diff included)."""
    root, runs, _ = project
    copy = root / ".mlops" / "runs" / "make" / runs["dirty"]
    shutil.move(copy, tmp_path / "record")
    try:
        code, out = _reproduce(root, runs["dirty"])
    finally:
        shutil.move(tmp_path / "record", copy)
    assert (code, out["verdict"]) == (0, IDENTICAL), out
    assert out["record_from"].startswith("the tracking store at sqlite:///"), out


@pytest.mark.integration
def test_a_run_only_a_store_could_hold_needs_it_reachable(project):
    root, _, _ = project
    port = closed_port()
    proc = doit(root, "reproduce", "0f3c9a1e2b", check=False, env=_no_store(port))
    said = proc.stdout + proc.stderr
    assert proc.returncode == 3, said
    assert f"the tracking store at http://***@127.0.0.1:{port} cannot be reached" in said
    assert "MLFLOW_TRACKING_URI" in said and ".mlops/runs/*/0f3c9a1e2b" in said
    assert "s3cret" not in said


@pytest.mark.integration
def test_an_input_only_in_the_store_comes_from_the_upstream_runs_artifacts(project, tmp_path):
    """The workspace's input changed and the upstream run's local record is gone: its
    artifacts in the store are found by the recorded hash."""
    root, runs, _ = project
    sample, copy = root / "out" / "sample.txt", root / ".mlops" / "runs" / "rand" / runs["rand"]
    kept = sample.read_bytes()
    sample.write_text("something else")
    shutil.move(copy, tmp_path / "record")
    try:
        code, out = _reproduce(root, runs["twice"])
    finally:
        shutil.move(tmp_path / "record", copy)
        sample.write_bytes(kept)
    assert (code, out["verdict"]) == (0, IDENTICAL), out


@pytest.mark.integration
def test_a_missing_input_is_named_with_every_place_looked_at(project):
    """Before any venv is built: the workspace, the local producer's artifacts, the store."""
    root, runs, _ = project
    sample = root / "out" / "sample.txt"
    kept = sample.read_bytes()
    sample.write_text("something else")
    port = closed_port()
    try:
        proc = doit(root, "reproduce", "--json", runs["twice"], check=False,
                    env=_no_store(port))
    finally:
        sample.write_bytes(kept)
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert proc.returncode == 3, out
    reason = out["reason"]
    assert reason.startswith("input out/sample.txt of run"), reason
    assert "the workspace's out/sample.txt (other content)" in reason
    assert f"output out/sample.txt of run {runs['rand']} (cannot download" in reason
    assert f"http://***@127.0.0.1:{port} cannot be reached" in reason
    assert "building the recorded environment" not in proc.stdout + proc.stderr


@pytest.mark.integration
def test_with_the_store_unreachable_metrics_come_from_the_local_record(project):
    root, runs, _ = project
    recorded = json.loads((root / "out" / "rand.json").read_text())["score"]
    proc = doit(root, "reproduce", "--json", runs["rand"], check=False,
                env=_no_store(closed_port()))
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert (proc.returncode, out["verdict"]) == (1, DIFFERENT), out  # unseeded
    assert out["metrics"]["score"]["recorded"] == recorded
    assert out["metrics_from"].startswith("the local record .mlops/"), out
    assert "cannot be reached" in out["metrics_from"]
    assert not out["new_run_id"] and "no new run recorded" in out["notes"][0], out


@pytest.mark.integration
def test_chain_reproduces_the_upstream_run_first_and_feeds_it_downstream(project):
    root, runs, _ = project
    proc = doit(root, "reproduce", "--json", "--chain", runs["twice"], check=False)
    chain = json.loads(proc.stdout[proc.stdout.index("{"):])["chain"]
    assert [(o["stage"], o["run_id"]) for o in chain] == [("rand", runs["rand"]),
                                                          ("twice", runs["twice"])]
    assert chain[0]["verdict"] == DIFFERENT  # unseeded: a new sample
    # so twice ran on the new sample, and says why it differs
    assert chain[1]["verdict"] == DIFFERENT, chain[1]
    assert "reproduced upstream wrote other content for out/sample.txt" in chain[1]["reason"]
    assert proc.returncode == 1


@pytest.mark.integration
def test_the_workspace_is_byte_identical_afterwards(project):
    """Only the reproduce runs' own records (in the store and its artifacts) are new."""
    root, runs, before = project
    code, out = _reproduce(root, runs["clean"])
    assert code == 0, out
    after = _tree_hashes(root)
    new_files = sorted(set(after) - set(before))
    new_runs = {rel.split("/")[2] for rel in new_files if rel.startswith(".mlops/mlartifacts/")}
    assert out["new_run_id"] in new_runs
    client = local_client(root)
    for run_id in new_runs:
        assert client.get_run(run_id).data.tags.get(REPRODUCES), run_id
    assert all(rel.startswith(".mlops/mlartifacts/") for rel in new_files
               if rel != ".mlops/reports/reproductions.json"), new_files
    changed = [rel for rel in before if after.get(rel) != before[rel]]
    assert changed in ([], [".mlops/reports/reproductions.json"]), changed  # the list grows
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True,
                               text=True, check=True).stdout
    assert len(worktrees.splitlines()) == 1, worktrees
    from mlops_tasks.pipeline.report import reproductions_of

    # the report page lists the run's reproductions (its list sits beside the page)
    assert (IDENTICAL, out["new_run_id"]) in [
        (r.verdict, r.run) for r in reproductions_of(root, runs["clean"], "1")]


@pytest.mark.integration
def test_chain_finds_an_upstream_run_the_local_records_lack_in_the_store(project, tmp_path):
    """A run made elsewhere: its upstream run's record is only in the store, found there by
    the stage that writes the input at the recorded commit and the recorded content."""
    from mlops_tasks.project.config import load_config
    from mlops_tasks.run.reproduce import find_run, upstream_runs

    root, runs, _ = project
    config = load_config(root)
    twice = find_run(root, runs["twice"])
    local = upstream_runs(config, twice, tmp_path / "a")
    assert [(r.done.stage, r.done.run_id, r.store_run) for r in local] == [
        ("rand", runs["rand"], "")]
    copy = root / ".mlops" / "runs" / "rand" / runs["rand"]
    shutil.move(copy, tmp_path / "record")
    try:
        fetched = upstream_runs(config, twice, tmp_path / "b")
    finally:
        shutil.move(tmp_path / "record", copy)
    assert [(r.done.stage, r.done.run_id, r.store_run) for r in fetched] == [
        ("rand", runs["rand"], runs["rand"])]
    assert fetched[0].copy.is_relative_to(tmp_path / "b")  # fetched, not the workspace's
    assert fetched[0].done.outputs == local[0].done.outputs
