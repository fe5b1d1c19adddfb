#!/usr/bin/env python
"""Bytecode strategy for stage kernels, measured.

Stage venvs are built without compiling bytecode (uv's default; pip gets --no-compile), and
stage kernels run with PYTHONDONTWRITEBYTECODE removed from their environment, so the first
kernel start compiles only the modules the notebook imports and later starts reuse them.
This script compares, in one venv with pandas, scikit-learn, matplotlib and ipykernel (built
with uv from the package index, as a stage venv is):

  no-bytecode    every start when nothing may write bytecode (PYTHONDONTWRITEBYTECODE=1)
  first start    the strategy's first start: compiles what is imported
  later starts   the strategy's steady state (two starts per run)
  compileall     the alternative: compile the whole venv at build time

A start is `python -c "import pandas, sklearn.ensemble, ..."` in that venv, timed as a
subprocess. Each run measures the three cases, each from a venv without __pycache__
folders, in a different order (the first case of one run is the last of the next); the
table shows the median of all runs, with min and max. One untimed start before the first run
reads the venv's files into the OS cache, so no case pays for a cold disk.

Usage: python benchmarks/bench_bytecode.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _common import (
    BenchError,
    Load,
    clean_env,
    find_uv,
    log,
    machine,
    markdown_table,
    ratio,
    rotated,
    run,
    summary,
    timed,
    uv_version,
    venv_python,
    write_json,
)

PACKAGES = ["pandas", "scikit-learn", "matplotlib", "ipykernel"]
IMPORTS = "import pandas, sklearn.ensemble, sklearn.metrics, matplotlib.pyplot, ipykernel"
CASES = ("no_bytecode", "strategy", "compileall")
LATER_STARTS = 2


def drop_pycache(venv: Path) -> None:
    for folder in venv.rglob("__pycache__"):
        shutil.rmtree(folder, ignore_errors=True)


def benchmark(venv: Path, runs: int, load: Load) -> dict[str, object]:
    python = venv_python(venv)
    probe = [python, "-c", IMPORTS]
    env = clean_env()
    no_write = clean_env(PYTHONDONTWRITEBYTECODE="1")
    drop_pycache(venv)
    run(probe, no_write)  # untimed: the files into the OS cache, no bytecode written
    times: dict[str, list[float]] = {"no_bytecode": [], "first": [], "later": [],
                                     "compileall": []}
    orders = []
    for i in range(runs):
        order = rotated(CASES, i)
        orders.append(order)
        for case in order:
            drop_pycache(venv)
            if case == "no_bytecode":
                times["no_bytecode"].append(timed(probe, no_write))
            elif case == "strategy":
                times["first"].append(timed(probe, env))
                times["later"] += [timed(probe, env) for _ in range(LATER_STARTS)]
            else:
                times["compileall"].append(timed([python, "-m", "compileall", "-q", "-j", "0",
                                                  venv], env))
        drop_pycache(venv)
        load.sample()
        log(f"run {i + 1}/{runs} ({', '.join(order)}): "
            + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    return {"orders": orders, **{k: summary(v) for k, v in times.items()}}


def report(meta: dict[str, object], res: dict[str, object]) -> str:
    def cells(key: str) -> list[str]:
        row = res[key]
        return [f"{row['median_s']:.2f}", f"{row['min_s']:.2f}", f"{row['max_s']:.2f}"]

    speedup = ratio(res["no_bytecode"]["median_s"], res["later"]["median_s"])
    return "\n".join([
        f"Kernel start and bytecode, {meta['date']}: Python {meta['python']}, "
        f"{meta['platform']}, {meta['cpus']} CPUs, {meta['uv']}; {meta['load']}",
        f"importing {IMPORTS[len('import '):]}; median of {meta['runs']} runs "
        f"({LATER_STARTS} later starts per run), cases in a rotating order",
        "",
        markdown_table(["case", "median (s)", "min (s)", "max (s)"], [
            ["every start when nothing may write bytecode (`PYTHONDONTWRITEBYTECODE=1`)",
             *cells("no_bytecode")],
            ["the strategy's first start (compiles what is imported)", *cells("first")],
            ["the strategy's later starts", *cells("later")],
            ["compiling the whole venv at build time (`compileall`, the alternative)",
             *cells("compileall")],
        ]),
        "",
        f"later starts are {speedup:.1f}x faster than starts without bytecode (medians)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of every case (the table shows medians; default 3)")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    meta: dict[str, object] = {**machine(args.runs), "imports": IMPORTS}
    load = Load()
    try:
        uv = find_uv()
        meta["uv"] = uv_version(uv)
        with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as tmp:
            venv = Path(tmp) / "venv"
            log(f"building a venv with {', '.join(PACKAGES)} with uv ...")
            run([uv, "venv", "--quiet", "--python", sys.executable, venv], clean_env())
            run([uv, "pip", "install", "--quiet", "--python", venv_python(venv), *PACKAGES],
                clean_env(UV_CACHE_DIR=str(Path(tmp) / "uv-cache")))
            results = benchmark(venv, args.runs, load)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    load.sample()
    meta["load"] = load.describe()
    print()
    print(report(meta, results))
    write_json(args.json, {**meta, **load.as_dict(), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
