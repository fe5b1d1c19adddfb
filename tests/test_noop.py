"""A no-op costs the same per stage whatever the pipeline: no process is started and no
interpreter is probed (the specs ask for `python: "X.Y"`), watched with an audit hook."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .helpers import PYTHON, clean_env, doit, make_project, ran

WATCH = """
import sys
started = []
SPAWNS = {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.fork", "os.forkpty",
          "os.system", "os.spawn", "os.startfile"}
sys.addaudithook(lambda event, args: started.append((event, str(args)[:200]))
                 if event in SPAWNS else None)
import atexit
atexit.register(lambda: print("STARTED", started))
sys.argv = ["doit", *sys.argv[1:]]
from doit.__main__ import main
main()
"""


@pytest.mark.integration
def test_a_noop_starts_no_process_and_probes_no_interpreter(tmp_path, wheelhouse):
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    spec = root / "env_specs" / "make.yaml"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    spec.write_text(spec.read_text() + f'python: "{version}"\n')
    doit(root)  # builds the venv, probes the interpreter once, runs the stage
    for args in ([], ["list"], ["list", "--all"]):
        proc = subprocess.run([PYTHON, "-c", WATCH, *args], cwd=root, env=clean_env(),
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert ran(proc.stdout) == set(), proc.stdout
        assert "STARTED []" in proc.stdout, (args, proc.stdout)
