"""What reruns (DESIGN §3), row by row, on a real three-stage project; failures that leave
the stage stale and no kernel behind; `doit info` in words."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .helpers import (
    HAS_PROC,
    PYTHON,
    clean_env,
    closed_port,
    command_lines,
    doit,
    local_client,
    make_project,
    needs_proc,
    ran,
    write_notebook,
    write_spec,
)

pytestmark = pytest.mark.integration

PREP = [
    ("parameters", 'greeting = "hi"\nrepeat = 1\nconfig = {}'),
    (None, "from pathlib import Path\nseed = Path('data/seed.txt').read_text().strip()\n"
           "text = ' '.join([greeting] * repeat) + ' ' + seed\n"
           "Path('out/greeting.txt').write_text(text)\n"
           "Path('out/config.json').write_text(__import__('json').dumps(config))"),
]
COUNT = [
    ("parameters", "unit = 'chars'"),
    (None, "from pathlib import Path\n"
           "Path('out/count.txt').write_text(str(len(Path('out/greeting.txt').read_text())))"),
]
REPORT = [(None, "from pathlib import Path\n"
                 "Path('out/summary.txt').write_text(Path('out/count.txt').read_text())")]
CHAIN = {"execute:make", "log:make", "execute:count", "log:count", "execute:summary",
         "log:summary"}


def setup_project(root: Path, wheelhouse: Path) -> Path:
    make_project(root, wheelhouse, with_use=False)
    (root / "data").mkdir()
    (root / "data" / "seed.txt").write_text("42\n")
    write_spec(root, "make", """
        name: make
        notebook: notebooks/make.ipynb
        env_dir: .venvs/shared-make
        parameters:
          greeting: hi
          repeat: 2
          config: {upstream: {prep: data/seed.txt}, ratios: [0.5, 0.25], flag: true}
        inputs: [data/seed.txt]
        outputs: [out/greeting.txt, out/config.json]
    """)
    write_spec(root, "count", """
        name: count
        notebook: notebooks/count.ipynb
        inputs: [out/greeting.txt]
        outputs: [out/count.txt]
    """)
    write_spec(root, "summary", """
        name: summary
        notebook: notebooks/summary.ipynb
        inputs: [out/count.txt]
        outputs: [out/summary.txt]
    """)
    write_notebook(root / "notebooks" / "make.ipynb", PREP)
    write_notebook(root / "notebooks" / "count.ipynb", COUNT)
    write_notebook(root / "notebooks" / "summary.ipynb", REPORT)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory, wheelhouse):
    root = setup_project(tmp_path_factory.mktemp("rerun") / "proj", wheelhouse)
    doit(root)
    assert ran(doit(root).stdout) == set()
    return root


def edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return text


def kernels_of(root: Path) -> list[str]:
    """Command lines of live kernels started from the project's venvs (Linux)."""
    return [cmd for cmd in command_lines() if str(root / ".venvs") in cmd and "ipykernel" in cmd]


def test_parameters_of_any_yaml_type_arrive_intact(project):
    config = json.loads((project / "out" / "config.json").read_text())
    assert config == {"upstream": {"prep": "data/seed.txt"}, "ratios": [0.5, 0.25],
                      "flag": True}


def test_notes_comments_and_key_order_rerun_nothing(project):
    spec = project / "env_specs" / "count.yaml"
    original = spec.read_text()
    spec.write_text("# reordered\noutputs: [out/count.txt]\nnotes: owner is x\n"
                    "inputs: [out/greeting.txt]\nnotebook: notebooks/count.ipynb\nname: count\n")
    try:
        assert ran(doit(project).stdout) == set()
    finally:
        spec.write_text(original)


def test_parameter_change_reruns_the_stage_and_what_reads_changed_content(project):
    spec = project / "env_specs" / "make.yaml"
    original = edit(spec, "repeat: 2", "repeat: 3")
    try:
        info = doit(project, "info", "execute:make", check=False).stdout
        assert "<parameters: repeat: 2 → 3>" in info
        assert ran(doit(project).stdout) == CHAIN
    finally:
        spec.write_text(original)
    assert ran(doit(project).stdout) == CHAIN


def test_code_edit_reruns_the_stage_only_when_its_outputs_are_the_same(project):
    nb = project / "notebooks" / "count.ipynb"
    write_notebook(nb, [COUNT[0], (None, COUNT[1][1] + "\nprint('same result')")])
    info = doit(project, "info", "execute:count", check=False).stdout
    assert "code of notebooks/count.ipynb: code cell 2 changed" in info
    assert ran(doit(project).stdout) == {"execute:count", "log:count"}
    write_notebook(nb, [(None, "unit = 'chars'"), COUNT[1]])  # tag removed: code changed
    assert ran(doit(project).stdout) == {"execute:count", "log:count"}
    write_notebook(nb, COUNT)
    assert ran(doit(project).stdout) == {"execute:count", "log:count"}


def test_notebook_saved_with_outputs_and_metadata_reruns_nothing(project):
    nb = project / "notebooks" / "count.ipynb"
    data = json.loads(nb.read_text())
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "5"}]
    data["cells"][1]["execution_count"] = 12
    data["metadata"]["kernelspec"] = {"name": "mlops-count", "display_name": "x",
                                      "language": "python"}
    data["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    nb.write_text(json.dumps(data, indent=2))
    assert ran(doit(project).stdout) == set()


def test_input_content_reruns_and_touch_does_not(project):
    seed = project / "data" / "seed.txt"
    stat = seed.stat()
    os.utime(seed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert ran(doit(project).stdout) == set()
    seed.write_text("43\n")
    info = doit(project, "info", "execute:make", check=False).stdout
    assert "status     : run\n" in info
    assert "<inputs: data/seed.txt changed>" in info
    # count reads the new greeting; its own output has the same length, so summary stays
    assert ran(doit(project).stdout) == CHAIN - {"execute:summary", "log:summary"}
    seed.write_text("4321\n")
    assert ran(doit(project).stdout) == CHAIN


def test_output_deleted_or_edited_reruns_its_maker(project):
    out = project / "out" / "count.txt"
    out.unlink()
    assert ran(doit(project).stdout) == {"execute:count", "log:count"}
    out.write_text("999")
    info = doit(project, "info", "execute:count", check=False).stdout
    assert "out/count.txt was changed after the run" in info
    assert ran(doit(project).stdout) == {"execute:count", "log:count"}
    assert out.read_text() != "999"


def test_deleted_venv_rebuilds_and_same_freeze_reruns_nothing(project):
    shutil.rmtree(project / ".venvs" / "count")
    assert ran(doit(project).stdout) == set()  # no stage must execute: no venv is needed
    assert ran(doit(project, "run", "venv:count").stdout) == {"venv:count"}
    assert ran(doit(project).stdout) == set()  # rebuilt with the freeze the run had


def test_parameter_override_runs_once_and_leaves_the_stage_as_it_was(project):
    bad = doit(project, "run", "execute:make", "--param", "repeat=5", "--param", "x=1",
               check=False)
    assert bad.returncode != 0 and "write --param=name=value" in bad.stdout + bad.stderr
    before = (project / "out" / "greeting.txt").read_bytes()
    proc = doit(project, "run", "execute:make", "--param=repeat=5", "--param=extra=1")
    assert ("execute:make: overriding parameters for this run: repeat=5, extra=1\n"
            in proc.stdout)
    assert ("execute:make: warning: parameter 'extra' is not declared in the parameters cell "
            "of notebooks/make.ipynb; it is injected anyway\n") in proc.stdout
    (folder,) = (project / ".mlops" / "overrides" / "make").iterdir()
    assert (folder / "outputs" / "out" / "greeting.txt").read_text().count("hi") == 5
    assert (project / "out" / "greeting.txt").read_bytes() == before  # kept apart
    run = local_client(project).get_run(folder.name)  # logged at once
    assert run.info.status == "FINISHED" and run.data.tags["mlops.override"] == "true"
    assert (run.data.params["repeat"], run.data.params["extra"]) == ("5", "1")
    assert ran(doit(project).stdout) == set()  # the stage stays as the last real run left it


def test_tracking_down_during_log_keeps_execute_done(project):
    """A server that does not answer fails log:S once its retry bound is spent (60 s by
    default; 2 s here, MLOPS_STORE_RETRY_SECONDS), naming the URI; execute:S stays done."""
    nb = project / "notebooks" / "summary.ipynb"
    write_notebook(nb, [(None, REPORT[0][1] + "\n")])
    doit(project, "run", "execute:summary")
    run_id = json.loads((project / ".mlops/executed/summary.json").read_text())["run_id"]
    url = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    proc = doit(project, "run", "log:summary", check=False,
                env=clean_env(MLFLOW_TRACKING_URI=url, MLOPS_STORE_RETRY_SECONDS="2"))
    assert time.monotonic() - start < 30
    assert proc.returncode != 0 and ran(proc.stdout) == {"log:summary"}
    # the run was made in the project's store: one for it is made at the new URI, which is
    # down, so log:S fails naming it, and the next doit logs into the original run
    said = proc.stdout + proc.stderr
    assert f"cannot log run {run_id} to {url}: " in said and "the next doit logs it" in said
    assert ran(doit(project).stdout) == {"log:summary"}
    logged = json.loads((project / ".mlops/runs/summary/last-run.json").read_text())
    assert logged["run_id"] == run_id and logged["recreated_from"] is None


# -- failures -----------------------------------------------------------------------------


def failing(project: Path, cells, timeout: float | None = None) -> subprocess.CompletedProcess:
    write_notebook(project / "notebooks" / "summary.ipynb", cells)
    spec = project / "env_specs" / "summary.yaml"
    original = spec.read_text()
    if timeout:
        spec.write_text(original + f"timeout: {timeout}\n")
    try:
        proc = doit(project, check=False)
    finally:
        spec.write_text(original)
    assert proc.returncode != 0
    if HAS_PROC:  # elsewhere the messages are still checked, the processes are not
        assert kernels_of(project) == []
    return proc


def recovers(project: Path) -> None:
    write_notebook(project / "notebooks" / "summary.ipynb", REPORT)
    assert "execute:summary" in ran(doit(project).stdout)
    assert ran(doit(project).stdout) == set()
    assert not (project / ".mlops" / "executed" / "summary.failed.ipynb").exists()


def test_raising_cell_names_stage_cell_and_exception(project):
    good = (project / "out" / "summary.txt").read_text()
    proc = failing(project, [REPORT[0], (None, "x = 1"),
                             (None, "Path('out/summary.txt').write_text('half')\n"
                                    "raise KeyError('column price')")])
    text = proc.stdout + proc.stderr
    # the cell is numbered as in the source notebook (the injected parameters cell not counted)
    assert "execute:summary: code cell 3 failed with KeyError: 'column price'" in text
    assert (project / ".mlops/executed/summary.failed.ipynb").exists()
    assert (project / ".mlops/executed/summary.ipynb").exists()  # the last good one stays
    assert (project / "out" / "summary.txt").read_text() == good  # not half-written
    assert "execute:summary" in ran(doit(project, check=False).stdout)  # still stale
    recovers(project)


def test_kernel_death(project):
    proc = failing(project, [(None, "import os\nos._exit(3)")])
    assert "execute:summary: the kernel died" in proc.stdout + proc.stderr
    recovers(project)


def test_cell_timeout(project):
    proc = failing(project, [(None, "import time\ntime.sleep(60)")], timeout=3)
    assert "execute:summary: a cell ran over the spec's timeout of 3.0 s" in (
        proc.stdout + proc.stderr)
    recovers(project)


def test_missing_declared_output(project):
    proc = failing(project, [(None, "x = 1")])
    text = proc.stdout + proc.stderr
    assert "did not write the declared output(s) out/summary.txt" in text
    recovers(project)


def test_a_kernelspec_edited_to_a_missing_interpreter_is_rewritten(project):
    spec = project / ".mlops/jupyter/kernels/mlops-summary/kernel.json"
    data = json.loads(spec.read_text())
    good = data["argv"][0]
    data["argv"][0] = str(project / "gone" / "python")
    spec.write_text(json.dumps(data))
    write_notebook(project / "notebooks" / "summary.ipynb", [REPORT[0], (None, "y = 2")])
    doit(project)  # execute:summary makes its kernelspec say the venv's python again
    assert json.loads(spec.read_text())["argv"][0] == good
    recovers(project)


def test_dodo_and_list_import_neither_mlflow_nor_papermill(project):
    code = ("import sys\nfrom doit.doit_cmd import DoitMain\nfrom doit.cmd_base import "
            "ModuleTaskLoader\nimport dodo\nDoitMain(ModuleTaskLoader(dodo)).run(['list'])\n"
            "bad = [m for m in ('mlflow', 'papermill') if m in sys.modules]\n"
            "assert not bad, bad\nprint('light')\n")
    proc = subprocess.run([PYTHON, "-c", code], cwd=project, env=clean_env(),
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names[-1] == "light" and {"make", "count", "summary"} <= set(names)


@needs_proc
def test_no_kernel_left_after_a_normal_run(project):
    assert kernels_of(project) == []
