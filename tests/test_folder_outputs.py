"""A folder as an output, on real kernels: hashed by content, moved aside and put back as a
whole, read by a downstream stage, logged as a folder of artifacts, removed by `doit clean`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .helpers import doit, make_project, ran, write_notebook, write_spec

pytestmark = pytest.mark.integration

WRITE = ("from pathlib import Path\nout = Path('data/outdir')\n(out / 'sub').mkdir(parents=True, "
         "exist_ok=True)\n(out / 'a.txt').write_text(greeting)\n"
         "(out / 'sub' / 'b.txt').write_text(greeting * repeat)")
READ = ("from pathlib import Path\nfiles = sorted(p.name for p in Path('data/outdir').rglob("
        "'*.txt'))\nPath('out/listing.txt').write_text(','.join(files))")


@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    root = make_project(tmp_path_factory.mktemp("folders") / "p", wheelhouse, with_use=False)
    write_notebook(root / "notebooks" / "make.ipynb",
                   [("parameters", 'greeting = "hello"\nrepeat = 1'), (None, WRITE)])
    write_spec(root, "make", """
        name: make
        notebook: notebooks/make.ipynb
        env_dir: .venvs/shared-make
        parameters: {greeting: hi, repeat: 2}
        outputs: [data/outdir]
    """)
    write_notebook(root / "notebooks" / "listing.ipynb", [(None, READ)])
    write_spec(root, "listing", """
        name: listing
        notebook: notebooks/listing.ipynb
        inputs: [data/outdir]
        outputs: [out/listing.txt]
    """)
    out = doit(root).stdout
    assert {"execute:make", "execute:listing"} <= ran(out)
    return root


def test_a_folder_output_is_made_read_and_recorded(project):
    assert (project / "out" / "listing.txt").read_text() == "a.txt,b.txt"
    record = json.loads((project / ".mlops/executed/make.json").read_text())
    assert len(record["outputs"]["data/outdir"]) == 64
    downstream = json.loads((project / ".mlops/executed/listing.json").read_text())
    assert downstream["inputs"]["data/outdir"] == record["outputs"]["data/outdir"]
    run = record["run_id"]
    local = json.loads((project / f".mlops/runs/make/{run}/audit.json").read_text())
    assert local["outputs"]["data/outdir"] == record["outputs"]["data/outdir"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(project / '.mlops' / 'mlflow.db').as_posix()}")
    names = {a.path for a in client.list_artifacts(run, "outputs/data/outdir")}
    assert names == {"outputs/data/outdir/a.txt", "outputs/data/outdir/sub"}
    assert ran(doit(project).stdout) == set()


def test_a_touched_folder_reruns_nothing_an_edited_one_reruns_its_maker(project):
    b = project / "data" / "outdir" / "sub" / "b.txt"
    b.write_text(b.read_text())  # same content, new mtime
    assert ran(doit(project).stdout) == set()
    b.write_text("edited by hand")
    info = doit(project, "info", "execute:make", check=False).stdout
    assert "data/outdir was changed after the run" in info
    assert {"execute:make", "log:make"} <= ran(doit(project).stdout)
    assert b.read_text() == "hihi"


def test_a_failed_run_puts_the_whole_folder_back(project):
    path = project / "notebooks" / "make.ipynb"
    good = path.read_text()
    write_notebook(path, [("parameters", 'greeting = "hello"\nrepeat = 1'),
                          (None, WRITE.replace("greeting * repeat", "'half'")),
                          (None, "raise RuntimeError('late failure')")])
    try:
        proc = doit(project, check=False)
    finally:
        path.write_text(good)
    assert proc.returncode != 0 and "RuntimeError: late failure" in proc.stdout + proc.stderr
    assert (project / "data/outdir/sub/b.txt").read_text() == "hihi"
    assert not (project / ".mlops/previous/make").exists()
    doit(project)  # the notebook is back: reruns once
    assert ran(doit(project).stdout) == set()


def test_doit_clean_removes_the_folder_and_nothing_else(project):
    notebook = (project / "notebooks" / "make.ipynb").read_bytes()
    dry = doit(project, "clean", "-n", "execute:make").stdout
    assert "would remove data/outdir" in dry and "would remove .mlops/executed/make.ipynb" in dry
    assert (project / "data" / "outdir").is_dir()
    a = project / "data" / "outdir" / "a.txt"
    a.write_text("edited by hand")
    kept = doit(project, "clean", "execute:make").stdout
    assert "kept data/outdir: changed since the stage's last run wrote it" in kept
    assert a.read_text() == "edited by hand"
    a.write_text("hi")  # as the run wrote it again: provably the tool's
    doit(project, "clean", "execute:make")
    assert not (project / "data" / "outdir").exists()
    assert (project / "notebooks" / "make.ipynb").read_bytes() == notebook
    assert (project / "data").is_dir()
    out = ran(doit(project).stdout)
    assert "execute:make" in out
    assert "execute:listing" not in out  # the folder came back with the same content
    assert (project / "out" / "listing.txt").read_text() == "a.txt,b.txt"


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_a_kill_mid_run_is_recovered_on_the_next_run(project):
    from .helpers import PYTHON, clean_env

    path = project / "notebooks" / "make.ipynb"
    good = path.read_text()
    marker = project / "started.txt"
    write_notebook(path, [("parameters", 'greeting = "hello"\nrepeat = 1'),
                          (None, WRITE.replace("greeting * repeat", "'half'")
                           + "\nPath('started.txt').write_text('x')\nimport time\n"
                             "time.sleep(120)")])
    proc = subprocess.Popen([PYTHON, "-m", "doit", "run", "execute:make"], cwd=project,
                            env=clean_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        path.write_text(good)
        marker.unlink(missing_ok=True)
    assert (project / "data/outdir/sub/b.txt").read_text() == "half"  # what the kill left
    assert "R execute:make" in doit(project, "list", "--all", "--status").stdout
    killed = json.loads((project / ".mlops/executed/make.running.json").read_text())["run_id"]
    out = doit(project)
    assert f"closed run {killed} of stage 'make' as KILLED" in out.stderr
    assert "execute:make" in ran(out.stdout)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{(project / '.mlops' / 'mlflow.db').as_posix()}")
    run = client.get_run(killed)
    assert run.info.status == "KILLED" and run.data.tags["mlops.interrupted"] == "true"
    assert not list(project.glob(".mlops/executed/*.running.json"))
    assert (project / "data/outdir/sub/b.txt").read_text() == "hihi"
    assert not (project / ".mlops/previous/make").exists()
