"""A stage's kernel leaves nothing behind in the orchestrator once stopped: nbclient, given a
kernel it does not own, never stops the client it made, and each one kept a zmq context
(two threads), a heartbeat thread and their file descriptors for the rest of the run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlops_tasks.run.kernel_launch import kernel_manager, launch
from mlops_tasks.run.papermill_adapter import run_notebook

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc")


def threads_and_fds() -> tuple[int, int]:
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


def test_stopped_kernels_leave_no_threads_or_descriptors(tmp_path: Path) -> None:
    kernels = tmp_path / "kernels"
    (kernels / "k").mkdir(parents=True)
    (kernels / "k" / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "k", "language": "python"}))
    notebook = tmp_path / "nb.ipynb"
    notebook.write_text(json.dumps({
        "cells": [{"cell_type": "code", "id": "c", "execution_count": None, "outputs": [],
                   "metadata": {"tags": ["parameters"]}, "source": "x = 1"}],
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "k", "display_name": "k", "language": "python"}}}))

    def stage(i: int) -> None:
        km = kernel_manager("s", "k", kernels, {}, (), tmp_path / "sockets", tmp_path)
        launch(km, tmp_path, None)
        run_notebook(stage="s", notebook=notebook, output=tmp_path / f"out{i}.ipynb",
                     failed=tmp_path / "failed.ipynb", km=km, parameters={"x": i},
                     cwd=Path.cwd(), timeout=120)

    stage(0)  # the first one loads what every later one shares (papermill, nbclient, ...)
    before = threads_and_fds()
    for i in range(1, 4):
        stage(i)
    after = threads_and_fds()
    assert after[0] <= before[0], f"threads: {before[0]} -> {after[0]} over three stages"
    assert after[1] <= before[1], f"descriptors: {before[1]} -> {after[1]} over three stages"
