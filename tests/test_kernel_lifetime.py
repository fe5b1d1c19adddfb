"""A stage's kernel stops when its stage ends: one kernel per running stage (and the next
stage's booting ahead), the notebook's atexit handlers run, and nothing is left when doit
returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not Path("/proc").is_dir(), reason="samples /proc")]

CELL = ("import atexit, sys, time, types\nfrom pathlib import Path\n"
        "atexit.register(lambda: Path('out/atexit-{name}.txt').write_text('ran'))\n"
        # files left open, in the notebook's namespace and in a module's: written at exit
        "f = open('out/open-{name}.txt', 'w'); f.write('kept')\n"
        "holder = types.ModuleType('holder'); sys.modules['holder'] = holder\n"
        "holder.f = open('out/held-{name}.txt', 'w'); holder.f.write('kept'); del holder\n"
        "time.sleep(0.5)\nPath('out/{name}.txt').write_text('x')")


def project(root: Path, wheelhouse: Path) -> Path:
    """Two chains of two stages: s0 -> s1 and s2 -> s3, on one shared environment (one venv
    build; each running stage still starts its own kernel)."""
    from .helpers import offline_pipeline

    offline_pipeline(root, wheelhouse, "k")
    (root / "env_specs" / "environments").mkdir()
    (root / "env_specs" / "environments" / "k.yaml").write_text("packages: []\n")
    (root / "nb").mkdir()
    (root / "out").mkdir()
    for i in range(4):
        name = f"s{i}"
        nb = {"cells": [{"cell_type": "code", "id": "c", "execution_count": None,
                         "outputs": [], "metadata": {}, "source": CELL.format(name=name)}],
              "nbformat": 4, "nbformat_minor": 5,
              "metadata": {"kernelspec": {"name": "python3", "display_name": "P",
                                          "language": "python"}}}
        (root / "nb" / f"{name}.ipynb").write_text(json.dumps(nb))
        spec = (f"name: {name}\nnotebook: nb/{name}.ipynb\nenvironment: k\n"
                f"outputs: [out/{name}.txt]\n")
        if i % 2:
            spec += f"inputs: [out/s{i - 1}.txt]\n"
        (root / "env_specs" / f"{name}.yaml").write_text(spec)
    return root


def kernels(root: Path, parent: int | None = None) -> int:
    """The project's kernel processes (those started by `parent` when given: a process a kernel
    forks shows the kernel's command line until it execs, and is not a kernel)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if "ipykernel_launcher" in cmd and str(root) in cmd and parent in (None, ppid):
            count += 1
    return count


def run_sampled(root: Path, *args: str) -> tuple[int, str]:
    """Run doit, sampling the project's kernels; the peak count and the output."""
    from .helpers import clean_env

    # executed, not restored from the project's own runs by the stage cache
    proc = subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=root,
                            env=clean_env(MLOPS_STAGE_CACHE="off"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, kernels(root, proc.pid))
        time.sleep(0.02)
    output = proc.stdout.read() if proc.stdout else ""
    assert proc.returncode == 0, output[-3000:]
    return peak, output


def test_one_kernel_per_running_stage(tmp_path, wheelhouse):
    root = project(tmp_path / "p", wheelhouse)
    peak, output = run_sampled(root)
    assert peak == 1  # s0, s2, s1, s3: none reads what the stage before it wrote
    assert kernels(root) == 0
    assert sorted(p.name for p in (root / "out").glob("atexit-*")) == [
        f"atexit-s{i}.txt" for i in range(4)]
    for i in range(4):  # the quick exit flushed what the notebook left open
        assert (root / "out" / f"open-s{i}.txt").read_text() == "kept"
        assert (root / "out" / f"held-s{i}.txt").read_text() == "kept"
    assert "Parent appears to have exited" not in output
    assert "Kernel is running over TCP" not in output  # local sockets on POSIX
    assert not list((root / ".mlops" / "sockets").iterdir())  # removed with their kernel
    # kernels without mlflow get no context file to read
    assert not list((root / ".mlops" / "executed").glob("*.kernel-context.json"))
    for name in ("s0", "s1"):  # s0 then s1, which reads it: s1's kernel boots ahead
        (root / "out" / f"{name}.txt").unlink()
    peak, output = run_sampled(root, "run", "s1")
    assert peak == 2  # the running stage's, and the next one's booting ahead
    assert "execute:s1: its kernel booted while the stage before it ran" in output
    assert kernels(root) == 0
    for name in ("s0", "s2"):  # the heads of both chains run again, side by side
        (root / "out" / f"{name}.txt").unlink()
    peak, output = run_sampled(root, "-n", "2")
    assert 1 <= peak <= 4  # per running stage: its kernel and at most one booted ahead
    assert kernels(root) == 0
    assert "Parent appears to have exited" not in output

