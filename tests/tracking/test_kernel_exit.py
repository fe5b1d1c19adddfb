"""The kernel's quick exit (kernel_hook.exit_quickly), in a plain interpreter: what a
notebook wrote is kept, the modules' one-by-one teardown is skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

QUICK_EXIT = """
import atexit, sys, types
sys.path.insert(0, sys.argv[1])
import kernel_hook
atexit.register(kernel_hook.exit_quickly)  # as the kernel starts: it runs last
class Teardown:
    def __del__(self):
        open("teardown.txt", "w").write("ran")
holder = types.ModuleType("holder"); sys.modules["holder"] = holder
holder.t = Teardown()
holder.f = open("held.txt", "w"); holder.f.write("kept")
atexit.register(lambda: open("atexit.txt", "w").write("ran"))
"""


def test_the_quick_exit_keeps_what_the_notebook_wrote_and_skips_the_teardown(tmp_path):
    """The handlers registered after it ran, every open file was flushed, and the modules
    were not torn down one by one (an object a module holds is not finalized: the time a
    stop saves)."""
    from mlops_tasks.tracking import kernel_hook

    folder = str(Path(kernel_hook.__file__).parent)
    proc = subprocess.run([sys.executable, "-c", QUICK_EXIT, folder], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "held.txt": "kept", "atexit.txt": "ran"}
    assert not proc.stderr
