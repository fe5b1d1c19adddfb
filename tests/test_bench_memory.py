"""The benchmarks' memory sampling: a command's tree includes the kernels it starts in
sessions of their own (jupyter_client does), and its peak RSS counts them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from _groups import bench_env, label, run_in_group, tree  # noqa: E402

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")


def test_tree_follows_parents_out_of_the_group() -> None:
    table = {10: (1, 10, 0), 11: (10, 10, 0), 12: (10, 12, 0), 13: (12, 12, 0),
             14: (1, 10, 0), 20: (1, 20, 0)}
    # 12 leads a session of its own (a kernel) and 13 is its child; 14 was reparented
    assert tree(10, table) == {10, 11, 12, 13, 14}


def test_peak_counts_a_child_in_its_own_session(tmp_path: Path) -> None:
    child = "x = bytearray(200_000_000); import time; time.sleep(0.6)"
    code = (f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], "
            "start_new_session=True, check=True)")
    timed = run_in_group([sys.executable, "-c", code], bench_env(), tmp_path,
                         tmp_path / "out.log", sample_memory=True)
    assert timed.peak_rss is not None and timed.peak_rss > 200_000_000
    assert any("bytearray" in cmd for cmd in timed.seen)
    biggest, rss = timed.at_peak[0]  # the peak sample's processes, largest first
    assert rss > 200_000_000 and biggest.startswith(Path(sys.executable).name)
    assert sum(part[1] for part in timed.at_peak) == timed.peak_rss


def test_a_kernel_is_named_by_its_venv() -> None:
    kernel = "/p/.venvs/train/bin/python -m ipykernel_launcher -f /tmp/kernel-1.json"
    assert label(kernel) == "kernel (train)"
    assert label("/usr/bin/python3 -m doit run train") == "python3 -m doit"
