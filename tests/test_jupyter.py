"""Interactive use: `doit jupyter` registers a stage's kernel for the user, Jupyter finds it
and runs code in the stage's venv; `doit clean` takes it away again."""

from __future__ import annotations

import pytest

from .helpers import clean_env, doit, make_project


@pytest.mark.integration
def test_a_stage_kernel_for_jupyter_and_vs_code(tmp_path, wheelhouse, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import start_new_kernel

    data = tmp_path / "jupyter-data"  # the user's Jupyter data dir, kept apart
    env = clean_env(JUPYTER_DATA_DIR=str(data))
    root = make_project(tmp_path / "p", wheelhouse, with_use=False)
    doit(root, "run", "venv:make", env=env)
    out = doit(root, "jupyter", env=env).stdout
    assert "pick 'mlops make (Python " in out
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("JUPYTER_PATH", "")
    specs = KernelSpecManager().find_kernel_specs()
    assert specs["mlops-make"] == str(data / "kernels" / "mlops-make")
    seen: list[dict] = []
    km, kc = start_new_kernel(kernel_name="mlops-make")
    try:
        reply = kc.execute_interactive("import sys; print(sys.prefix)", timeout=60,
                                       output_hook=seen.append)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    printed = "".join(m["content"].get("text", "") for m in seen)
    assert printed.strip() == str(root / ".venvs" / "shared-make")
    doit(root, "clean", "kernel:make", env=env)
    assert not (data / "kernels" / "mlops-make").exists()
