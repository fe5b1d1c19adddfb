#!/usr/bin/env python
"""Stage venv builds: plain `python -m venv` + pip against mlops-tasks' `venv:<stage>` task.

For numpy, pandas, scikit-learn, matplotlib and ipykernel on the Python running this script,
side by side in one run:

cold   empty installer caches (a fresh PIP_CACHE_DIR, a fresh UV_CACHE_DIR), both approaches
       offline from the same wheel folder, filled once at the start with `pip download`.
warm   the stage venv deleted and built again, installer caches warm.
disk   four venvs with the same packages against one, hardlinked files counted once.

Plain approach:   python -m venv DIR
                  DIR/bin/python -m pip install --upgrade pip setuptools wheel
                  DIR/bin/python -m pip install -r requirements.txt
                  (both pip installs with --no-index --find-links WHEELS)
Project approach: a generated mlops-tasks project (index_policy = "offline", wheels_cache =
                  WHEELS) and `python -m doit run venv:<stage>`, timed as a subprocess.

Only the `pip download` at the start uses the network. Everything lives in one temporary
folder (installer caches and venvs on one filesystem, so uv can hardlink from its cache),
removed at the end unless --keep. Every subprocess runs without the machine's pip and uv
configuration: PIP_* and UV_* variables dropped, PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG=1.

Usage: python benchmarks/bench_envs.py [--runs N] [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import BenchError, clean_env, rmtree, venv_python

PACKAGES = ("numpy", "pandas", "scikit-learn", "matplotlib", "ipykernel")
BOOTSTRAP = ("pip", "setuptools", "wheel")
IMPORT_CHECK = "import numpy, pandas, sklearn, matplotlib, ipykernel"
STAGE = "bench"
DISK_STAGES = ("disk1", "disk2", "disk3", "disk4")

# What the targets say; checked against the medians and printed with the results.
TARGET_COLD_SPEEDUP = 8.0      # cold build from the filled wheel cache, plain / project
TARGET_WARM_SECONDS = 1.5      # "about a second" for a warm rebuild
TARGET_DISK_RATIO = 1.5        # four similar venvs against one


# --------------------------------------------------------------------------- environment


def run(argv: list[str | os.PathLike[str]], env: dict[str, str], cwd: Path | None = None,
        timeout: float = 1800) -> tuple[float, str]:
    """Run argv; return (wall seconds, stdout). Raise BenchError with the output's tail."""
    args = [os.fspath(a) for a in argv]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BenchError(f"command failed ({proc.returncode}): {' '.join(args)}\n{tail}")
    return seconds, proc.stdout


def disk_bytes(*folders: Path) -> int:
    """Disk use of the folders together, like `du -s`: each inode (hardlink) counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        paths = [str(folder)]
        for dirpath, dirnames, filenames in os.walk(folder):
            paths += [os.path.join(dirpath, n) for n in dirnames + filenames]
        for path in paths:
            st = os.lstat(path)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            blocks = getattr(st, "st_blocks", None)
            total += blocks * 512 if blocks is not None else st.st_size
    return total


def mb(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 1)


def freeze_set(text: str) -> set[str]:
    """Pinned lines of a freeze, without the installer's own packages."""
    out = set()
    for line in text.splitlines():
        line = line.strip()
        name = line.split("==")[0].lower().replace("_", "-")
        if line and "==" in line and name not in BOOTSTRAP:
            out.add(line.lower().replace("_", "-"))
    return out


# --------------------------------------------------------------------------- the two approaches


def plain_build(venv: Path, requirements: Path, wheels: Path, env: dict[str, str]
                ) -> dict[str, float]:
    """The three commands of the plain approach, each timed."""
    py = venv_python(venv)
    offline = ["--no-index", "--find-links", str(wheels)]
    steps = {}
    steps["venv"], _ = run([sys.executable, "-m", "venv", venv], env)
    steps["upgrade"], _ = run([py, "-m", "pip", "install", "--upgrade", *offline, *BOOTSTRAP],
                              env)
    steps["install"], _ = run([py, "-m", "pip", "install", *offline, "-r", requirements], env)
    steps["total"] = steps["venv"] + steps["upgrade"] + steps["install"]
    return steps


def make_project(root: Path, stages: tuple[str, ...], wheels: Path) -> Path:
    """A minimal mlops-tasks project whose stages all ask for PACKAGES, offline from wheels."""
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [tool.doit]
        dep_file = ".mlops/doit.db"
        backend = "sqlite3"

        [tool.mlops_tasks]
        wheels_cache = {json.dumps(wheels.as_posix())}
        index_policy = "offline"
        """), encoding="utf-8")
    (root / "dodo.py").write_text(
        "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n", encoding="utf-8")
    notebook = {"cells": [{"cell_type": "code", "id": "c0", "execution_count": None,
                           "metadata": {}, "outputs": [], "source": "import numpy"}],
                "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                            "language": "python"}},
                "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks").mkdir()
    (root / "env_specs").mkdir()
    for stage in stages:
        (root / "notebooks" / f"{stage}.ipynb").write_text(json.dumps(notebook, indent=1),
                                                           encoding="utf-8")
        (root / "env_specs" / f"{stage}.yaml").write_text(
            f"name: {stage}\nnotebook: notebooks/{stage}.ipynb\npackages:\n"
            + "".join(f"  - {p}\n" for p in PACKAGES), encoding="utf-8")
    return root


def project_build(root: Path, stages: tuple[str, ...], env: dict[str, str]) -> float:
    seconds, _ = run([sys.executable, "-m", "doit", "run", *(f"venv:{s}" for s in stages)],
                     env, cwd=root)
    return seconds


def check_venv(venv: Path, env: dict[str, str]) -> None:
    """The packages import (no bytecode written, so disk figures stay untouched)."""
    run([venv_python(venv), "-B", "-c", IMPORT_CHECK], env)


# --------------------------------------------------------------------------- the benchmark


def fill_wheels(tmp: Path) -> tuple[Path, float]:
    wheels = tmp / "wheels"
    print(f"filling the wheel cache from PyPI: {' '.join(PACKAGES + BOOTSTRAP)} ...", flush=True)
    seconds, _ = run([sys.executable, "-m", "pip", "download", "--quiet", "--no-cache-dir",
                      "--disable-pip-version-check", "--only-binary", ":all:",
                      "--dest", wheels, *PACKAGES, *BOOTSTRAP], clean_env())
    return wheels, seconds


def uv_version() -> str:
    try:
        from mlops_tasks.envs import find_uv
    except ImportError as err:
        raise BenchError(f"mlops_tasks is not importable from {sys.executable}: install the "
                         "project (python -m pip install -e .) and run with that Python"
                         ) from err
    uv = find_uv()
    if uv is None:
        return "not found (the venv task falls back to pip)"
    _, out = run([uv, "--version"], clean_env())
    return out.strip()


def source_revision() -> str:
    """The git commit of the checkout this script lives in, if any (+ "dirty")."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "mlops_tasks"],
                               cwd=here.parent, text=True, capture_output=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (mlops_tasks/ modified)" if dirty else "")


def summary(plain: list[float], project: list[float]) -> dict[str, object]:
    p, q = statistics.median(plain), statistics.median(project)
    return {"plain_s": plain, "project_s": project, "plain_median_s": round(p, 2),
            "project_median_s": round(q, 2), "ratio": round(p / q, 1),
            "ratio_per_run": [round(a / b, 1) for a, b in zip(plain, project, strict=True)]}


def benchmark(tmp: Path, runs: int) -> dict[str, object]:
    wheels, fill_s = fill_wheels(tmp)
    n_wheels = len(list(wheels.glob("*.whl")))
    requirements = tmp / "requirements.txt"
    requirements.write_text("\n".join(PACKAGES) + "\n", encoding="utf-8")
    print(f"  {n_wheels} wheels, {mb(disk_bytes(wheels))} MB, {fill_s:.0f} s", flush=True)

    # The orchestrator's own imports are byte-compiled once before anything is timed, as
    # after a normal install.
    run([sys.executable, "-m", "doit", "list"], clean_env(),
        cwd=make_project(tmp / "warmup", (STAGE,), wheels))

    cold_plain, cold_project, warm_plain, warm_project = [], [], [], []
    steps: list[dict[str, dict[str, float]]] = []
    same_versions: bool | None = None
    for i in range(1, runs + 1):
        pip_env = clean_env(PIP_CACHE_DIR=str(tmp / f"caches/pip-{i}"))
        uv_env = clean_env(UV_CACHE_DIR=str(tmp / f"caches/uv-{i}"))
        plain_venv = tmp / f"plain-{i}" / STAGE
        root = make_project(tmp / f"project-{i}", (STAGE,), wheels)
        project_venv = root / ".venvs" / STAGE

        print(f"run {i}/{runs}: cold, plain ...", end=" ", flush=True)
        cold = plain_build(plain_venv, requirements, wheels, pip_env)
        cold_plain.append(cold["total"])
        print(f"{cold['total']:.1f} s; project ...", end=" ", flush=True)
        cold_project.append(project_build(root, (STAGE,), uv_env))
        print(f"{cold_project[-1]:.1f} s", flush=True)
        check_venv(plain_venv, pip_env)
        check_venv(project_venv, uv_env)
        if same_versions is None:
            _, plain_freeze = run([venv_python(plain_venv), "-m", "pip", "freeze"], pip_env)
            project_freeze = (project_venv / "pip-freeze.txt").read_text(encoding="utf-8")
            same_versions = freeze_set(plain_freeze) == freeze_set(project_freeze)

        print(f"run {i}/{runs}: warm, plain ...", end=" ", flush=True)
        rmtree(plain_venv)
        warm = plain_build(plain_venv, requirements, wheels, pip_env)
        warm_plain.append(warm["total"])
        print(f"{warm['total']:.1f} s; project ...", end=" ", flush=True)
        rmtree(project_venv)
        warm_project.append(project_build(root, (STAGE,), uv_env))
        print(f"{warm_project[-1]:.1f} s", flush=True)
        check_venv(plain_venv, pip_env)
        check_venv(project_venv, uv_env)
        steps.append({"cold": cold, "warm": warm})
        if i < runs:
            rmtree(tmp / f"plain-{i}")
            rmtree(root)
            rmtree(tmp / f"caches/pip-{i}")
            rmtree(tmp / f"caches/uv-{i}")

    # Disk: four stages against one, with the caches of the last run (warm).
    uv_cache = tmp / f"caches/uv-{runs}"
    disk_root = make_project(tmp / "project-disk", DISK_STAGES, wheels)
    same_fs = os.stat(uv_cache).st_dev == os.stat(disk_root).st_dev
    print("disk: four project venvs ...", end=" ", flush=True)
    disk_project_s = project_build(disk_root, DISK_STAGES, uv_env)
    print(f"{disk_project_s:.1f} s; four plain venvs ...", end=" ", flush=True)
    plain_disk = [tmp / "plain-disk" / s for s in DISK_STAGES]
    disk_plain_s = sum(plain_build(v, requirements, wheels, pip_env)["total"]
                       for v in plain_disk)
    print(f"{disk_plain_s:.1f} s", flush=True)
    project_disk = [disk_root / ".venvs" / s for s in DISK_STAGES]
    for venv in project_disk:
        check_venv(venv, uv_env)
    for venv in plain_disk:
        check_venv(venv, pip_env)

    def disk_figures(venvs: list[Path], seconds: float) -> dict[str, object]:
        one, four = disk_bytes(venvs[0]), disk_bytes(*venvs)
        return {"one_mb": mb(one), "four_mb": mb(four), "ratio": round(four / one, 2),
                "four_build_s": round(seconds, 1)}

    disk = {
        "plain": disk_figures(plain_disk, disk_plain_s),
        "project": disk_figures(project_disk, disk_project_s),
        "uv_cache_mb": mb(disk_bytes(uv_cache)),
        "uv_cache_and_four_project_venvs_mb": mb(disk_bytes(uv_cache, *project_disk)),
        "uv_cache_on_venv_filesystem": same_fs,
    }
    results = {
        "cold": summary(cold_plain, cold_project),
        "warm": summary(warm_plain, warm_project),
        "plain_steps_s": steps,
        "disk": disk,
        "same_package_versions": same_versions,
        "wheels": {"count": n_wheels, "mb": mb(disk_bytes(wheels)), "fill_s": round(fill_s)},
    }
    results["targets"] = {
        f"cold build at least {TARGET_COLD_SPEEDUP:g}x faster than plain":
            results["cold"]["ratio"] >= TARGET_COLD_SPEEDUP,
        f"warm rebuild about a second (<= {TARGET_WARM_SECONDS:g} s)":
            results["warm"]["project_median_s"] <= TARGET_WARM_SECONDS,
        f"four venvs at most {TARGET_DISK_RATIO:g}x the disk of one":
            disk["project"]["ratio"] <= TARGET_DISK_RATIO,
    }
    return results


def report(meta: dict[str, object], res: dict[str, object]) -> str:
    runs = meta["runs"]
    med = " (median)" if isinstance(runs, int) and runs > 1 else ""
    lines = [
        f"Environment builds, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, {meta['uv']}",
        f"packages: {', '.join(PACKAGES)}; {res['wheels']['count']} wheels; runs: {runs}; "
        f"mlops-tasks {meta['revision']}"
        + (f"; load average {meta['load_average_at_start']} at start, "
           f"{meta['load_average_at_end']} at end" if "load_average_at_end" in meta else ""),
        "",
        f"| scenario | plain venv + pip (s){med} | mlops-tasks venv:<stage> (s){med} "
        "| plain / project |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("cold", "cold (empty installer caches, wheels local)"),
                        ("warm", "warm rebuild (stage venv deleted)")):
        row = res[name]
        lines.append(f"| {label} | {row['plain_median_s']:.1f} | {row['project_median_s']:.1f}"
                     f" | {row['ratio']:.1f}x |")
    disk = res["disk"]
    lines += [
        "",
        "| disk (hardlinks counted once) | one venv (MB) | four venvs (MB) | four / one |",
        "|---|---:|---:|---:|",
    ]
    for name, label in (("plain", "plain venv + pip"), ("project", "mlops-tasks (uv)")):
        row = disk[name]
        lines.append(f"| {label} | {row['one_mb']:.0f} | {row['four_mb']:.0f} "
                     f"| {row['ratio']:.2f} |")
    lines += [
        "",
        f"uv cache: {disk['uv_cache_mb']:.0f} MB; uv cache and the four project venvs together: "
        f"{disk['uv_cache_and_four_project_venvs_mb']:.0f} MB (cache on the venvs' "
        f"filesystem: {'yes' if disk['uv_cache_on_venv_filesystem'] else 'NO, copies'})",
        f"building the four venvs: plain {disk['plain']['four_build_s']:.0f} s, "
        f"project {disk['project']['four_build_s']:.0f} s (warm caches)",
        f"same package versions in both venvs: {'yes' if res['same_package_versions'] else 'NO'}",
        "",
        "targets:",
    ]
    lines += [f"  [{'met' if ok else 'NOT met'}] {what}" for what, ok in res["targets"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="timed runs per scenario (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "runs": args.runs,
        "packages": list(PACKAGES),
    }
    if hasattr(os, "getloadavg"):  # other work on the machine skews the timings
        meta["load_average_at_start"] = round(os.getloadavg()[0], 2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-envs-"))
    try:
        meta["uv"] = uv_version()
        meta["revision"] = source_revision()
        results = benchmark(tmp, args.runs)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    if hasattr(os, "getloadavg"):
        meta["load_average_at_end"] = round(os.getloadavg()[0], 2)
    print()
    print(report(meta, results))
    if args.json:
        args.json.write_text(json.dumps({**meta, **results}, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
