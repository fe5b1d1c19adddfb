"""Bytecode strategy for stage kernels, measured.

Stage venvs are built without compiling bytecode (uv's default; pip gets --no-compile), and
stage kernels run with PYTHONDONTWRITEBYTECODE removed from their environment, so the first
kernel start compiles only the modules the notebook imports and later starts reuse them.
This script compares, in one venv with pandas, scikit-learn, matplotlib and ipykernel:

  no-bytecode    every start when nothing may write bytecode (PYTHONDONTWRITEBYTECODE=1)
  first start    the strategy's first start: compiles what is imported
  later starts   the strategy's steady state
  compileall     the alternative: compile the whole venv at build time

Usage: python benchmarks/bench_bytecode.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import clean_env

PACKAGES = ["pandas", "scikit-learn", "matplotlib", "ipykernel"]
IMPORTS = "import pandas, sklearn.ensemble, sklearn.metrics, matplotlib.pyplot, ipykernel"


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def drop_pycache(venv: Path) -> None:
    for folder in venv.rglob("__pycache__"):
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from uv import find_uv_bin

    uv = find_uv_bin()
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        env = clean_env()
        subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                       env=env, check=True)
        python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(python), *PACKAGES],
                       env=env, check=True)
        probe = [str(python), "-c", IMPORTS]
        drop_pycache(venv)
        no_bytecode = min(timed(probe, clean_env(PYTHONDONTWRITEBYTECODE="1"))
                          for _ in range(2))
        drop_pycache(venv)
        first = timed(probe, env)
        later = min(timed(probe, env) for _ in range(3))
        drop_pycache(venv)
        compile_all = timed([str(python), "-m", "compileall", "-q", "-j", "0", str(venv)], env)
    results = {
        "python": sys.version.split()[0],
        "imports": IMPORTS,
        "no_bytecode_every_start_s": round(no_bytecode, 2),
        "strategy_first_start_s": round(first, 2),
        "strategy_later_starts_s": round(later, 2),
        "compileall_at_build_s": round(compile_all, 2),
    }
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
