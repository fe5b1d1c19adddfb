"""What a run leaves for Jenkins and stakeholders: .mlops/reports/junit.xml (valid against
the schema Jenkins reads, failures and interruptions included)."""

from __future__ import annotations

import os
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from mlops_tasks.render.junit import Case, junit_xml

from .helpers import (
    PYTHON,
    clean_env,
    git_commit_all,
    needs_process_groups,
    offline_pipeline,
    wait_until,
    write_notebook,
)

XSD = Path(__file__).parent / "data" / "junit-10.xsd"


def validate(text: str) -> None:
    import xmlschema

    xmlschema.XMLSchema(str(XSD)).validate(text)


def test_junit_xml_is_valid_and_counts():
    cases = [Case("venv:a", 1.5, "passed"), Case("execute:a", 2, "passed", restored_from="r1"),
             Case("execute:b", 3, "failed", message="stage b: code cell 2: ZeroDivisionError",
                  details="ZeroDivisionError: division by zero\x1b[0m\x00", notebook="b.ipynb"),
             Case("execute:c", 4, "error", message="interrupted by SIGTERM")]
    text = junit_xml(cases, "proj (inv)", "2026-11-27T12:00:00+00:00", "agent-1")
    validate(text)
    suite = ET.fromstring(text).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    failed = suite.find("testcase[@name='execute:b']")
    assert failed is not None and failed.get("classname") == "b"
    assert failed.find("failure").get("message") == "stage b: code cell 2: ZeroDivisionError"
    assert "b.ipynb" in failed.find("system-out").text
    restored = suite.find("testcase[@name='execute:a']/system-out")
    assert restored is not None and "restored from run r1" in restored.text


def test_the_jenkinsfile_publishes_what_the_code_writes():
    from mlops_tasks.project import layout

    text = (Path(__file__).resolve().parents[1] / "Jenkinsfile").read_text(encoding="utf-8")
    assert text.count(f"junit testResults: '{layout.junit_report()}'") == 1
    assert "allowEmptyResults: false" in text
    folder, _, name = layout.report_page().rpartition("/")
    assert text.count(f"reportDir: '{folder}', reportFiles: '{name}'") == 1
    assert text.count("script { publishReports() }") == 2  # the Windows and the Linux agent


CELLS = {
    "a_ok": "from pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
            "Path('out/a.txt').write_text('a')",
    "b_bad": "x = 1\ny = x / 0",
    "c_slow": "import time\nfrom pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
              "Path('out/started').write_text('1')\ntime.sleep(120)",
}


@needs_process_groups
@pytest.mark.integration
def test_a_failed_and_an_interrupted_stage_in_junit(tmp_path, wheelhouse):
    root = tmp_path / "p"
    offline_pipeline(root, wheelhouse, "j")
    for name, code in CELLS.items():
        write_notebook(root / "nb" / f"{name}.ipynb", [(None, "import os"), (None, code)])
        (root / "env_specs" / f"{name}.yaml").write_text(
            f"name: {name}\nnotebook: nb/{name}.ipynb\nenv_dir: .venvs/{name}\n")
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n")
    git_commit_all(root)
    proc = subprocess.Popen([PYTHON, "-m", "doit", "--continue"], cwd=root, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        wait_until(lambda: (root / "out" / "started").exists(), 120, "c_slow never started")
        os.killpg(proc.pid, signal.SIGTERM)  # a Jenkins abort
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    text = (root / ".mlops" / "reports" / "junit.xml").read_text(encoding="utf-8")
    validate(text)
    suite = ET.fromstring(text).find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert {"execute:a_ok", "log:a_ok", "execute:b_bad", "execute:c_slow"} <= set(names)
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    failure = suite.find("testcase[@name='execute:b_bad']/failure")
    assert failure.get("message").startswith("stage b_bad: code cell 2: ")
    assert "ZeroDivisionError" in failure.get("message") + failure.text
    assert "b_bad.failed.ipynb" in suite.find("testcase[@name='execute:b_bad']/system-out").text
    error = suite.find("testcase[@name='execute:c_slow']/error")
    assert error.get("message") == "interrupted by SIGTERM; the stage runs again next time"
    # a run that runs nothing leaves no results behind to be published again
    proc = subprocess.run([PYTHON, "-m", "doit", "run", "a_ok"], cwd=root, env=clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and not (root / ".mlops" / "reports" / "junit.xml").exists()
