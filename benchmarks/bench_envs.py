#!/usr/bin/env python
"""Stage venv builds: plain `python -m venv` + pip, bare uv, and mlops-tasks' `venv:<stage>`.

For numpy, pandas, scikit-learn, matplotlib and ipykernel on the Python running this script,
side by side in one run:

cold   empty installer caches (a fresh PIP_CACHE_DIR, a fresh UV_CACHE_DIR for each uv
       side), every side offline from the same wheel folder, filled once at the start with
       `pip download`.
warm   the stage venv deleted and built again, installer caches warm.
disk   four venvs with the same packages against one, hardlinked files counted once.

plain        python -m venv DIR
             DIR/bin/python -m pip install --upgrade pip setuptools wheel
             DIR/bin/python -m pip install -r requirements.txt
             (both pip installs with --no-index --find-links WHEELS)
uv           uv venv --python PYTHON DIR
             uv pip install --python DIR/bin/python -r requirements.txt
             (with --no-index --find-links WHEELS): the floor under mlops-tasks, which
             builds its venvs with the same two uv commands
mlops-tasks  a generated project set up as the project ships it ([tool.doit] with the
             `sqlite3-durable` backend; a stage spec asking for `python: "X.Y"`, the version
             running this script; index_policy = "offline", wheels_cache = WHEELS) and
             `python -m doit run venv:<stage>`, timed as a subprocess: interpreter lookup,
             doit, the two uv commands, the freeze and the env marker.

The sides run in a different order in each run (the first side of one run is the last of
the next), so none always runs first. The tables show the median of all runs, with min and
max; the JSON has every run. mlops-tasks' overhead over bare uv is the difference of the
medians. The load average is sampled after every run and reported.

Only the `pip download` at the start uses the network. Everything lives in one temporary
folder (installer caches and venvs on one filesystem, so uv can hardlink from its cache),
removed at the end unless --keep. Every subprocess runs without the machine's pip and uv
configuration: PIP_* and UV_* variables dropped, PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG=1;
PYTHONDONTWRITEBYTECODE is dropped too, so pip compiles bytecode at install time as it does
by default. The mlops-tasks measured is the one the Python running this script imports.

Usage: python benchmarks/bench_envs.py [--runs N] [--keep] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from _common import (
    BenchError,
    Load,
    StageFiles,
    clean_env,
    download_wheels,
    find_uv,
    log,
    machine,
    markdown_table,
    measured_mlops_tasks,
    notebook_json,
    ratio,
    rmtree,
    rotated,
    run,
    spec_python,
    summary,
    uv_version,
    venv_python,
    write_json,
    write_mlops_project,
)

PACKAGES = ("numpy", "pandas", "scikit-learn", "matplotlib", "ipykernel")
BOOTSTRAP = ("pip", "setuptools", "wheel")
IMPORT_CHECK = "import numpy, pandas, sklearn, matplotlib, ipykernel"
STAGE = "bench"
DISK_STAGES = ("disk1", "disk2", "disk3", "disk4")
SIDES = ("plain", "uv", "project")
LABELS = {"plain": "plain venv + pip", "uv": "uv venv + uv pip install",
          "project": "mlops-tasks `venv:<stage>`"}

# What the targets say; checked against the medians and printed with the results.
TARGET_COLD_SPEEDUP = 8.0      # cold build from the filled wheel cache, plain / project
TARGET_WARM_SECONDS = 1.5      # "about a second" for a warm rebuild
TARGET_DISK_RATIO = 1.5        # four similar venvs against one


# --------------------------------------------------------------------------- measures


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


# --------------------------------------------------------------------------- the three sides


def plain_build(venv: Path, requirements: Path, wheels: Path, env: dict[str, str]
                ) -> dict[str, float]:
    """The three commands of the plain approach, each timed."""
    py = venv_python(venv)
    offline = ["--no-index", "--find-links", wheels]
    steps = {
        "venv": run([sys.executable, "-m", "venv", venv], env).seconds,
        "upgrade": run([py, "-m", "pip", "install", "--upgrade", *offline, *BOOTSTRAP],
                       env).seconds,
        "install": run([py, "-m", "pip", "install", *offline, "-r", requirements],
                       env).seconds,
    }
    steps["total"] = sum(steps.values())
    return steps


def uv_build(uv: str, venv: Path, requirements: Path, wheels: Path, env: dict[str, str]
             ) -> dict[str, float]:
    """Bare uv: the two commands mlops-tasks runs for a venv, each timed."""
    steps = {
        "venv": run([uv, "venv", "--quiet", "--python", sys.executable, venv], env).seconds,
        "install": run([uv, "pip", "install", "--quiet", "--python", venv_python(venv),
                        "--no-index", "--find-links", wheels, "-r", requirements],
                       env).seconds,
    }
    steps["total"] = sum(steps.values())
    return steps


def make_project(root: Path, stages: tuple[str, ...], wheels: Path) -> Path:
    """A minimal mlops-tasks project whose stages all ask for PACKAGES, offline from wheels."""
    notebook = notebook_json([(None, "import numpy")])
    return write_mlops_project(root, wheels, [StageFiles(s, notebook, {"packages":
                                                                       list(PACKAGES)})
                                              for s in stages])


def project_build(root: Path, stages: tuple[str, ...], env: dict[str, str]) -> float:
    return run([sys.executable, "-m", "doit", "run", *(f"venv:{s}" for s in stages)],
               env, cwd=root).seconds


def check_venv(venv: Path, env: dict[str, str]) -> None:
    """The packages import (no bytecode written, so disk figures stay untouched)."""
    run([venv_python(venv), "-B", "-c", IMPORT_CHECK], env)


# --------------------------------------------------------------------------- the benchmark


def benchmark(tmp: Path, runs: int, uv: str, load: Load) -> dict[str, object]:
    wheels = tmp / "wheels"
    print(f"filling the wheel cache from PyPI: {' '.join(PACKAGES + BOOTSTRAP)} ...", flush=True)
    fill_s = download_wheels(wheels, PACKAGES + BOOTSTRAP)
    n_wheels = len(list(wheels.glob("*.whl")))
    requirements = tmp / "requirements.txt"
    requirements.write_text("\n".join(PACKAGES) + "\n", encoding="utf-8")
    print(f"  {n_wheels} wheels, {mb(disk_bytes(wheels))} MB, {fill_s:.0f} s", flush=True)

    # The orchestrator's own imports are byte-compiled once before anything is timed, as
    # after a normal install, and its interpreter lookup is checked.
    run([sys.executable, "-m", "doit", "list"], clean_env(),
        cwd=make_project(tmp / "warmup", (STAGE,), wheels))

    times: dict[str, dict[str, list[float]]] = {s: {side: [] for side in SIDES}
                                                for s in ("cold", "warm")}
    steps: list[dict[str, object]] = []
    orders: list[list[str]] = []
    freezes: dict[str, set[str]] = {}
    for i in range(runs):
        n = i + 1
        envs = {"plain": clean_env(PIP_CACHE_DIR=str(tmp / f"caches/pip-{n}")),
                "uv": clean_env(UV_CACHE_DIR=str(tmp / f"caches/uv-{n}")),
                "project": clean_env(UV_CACHE_DIR=str(tmp / f"caches/project-uv-{n}"))}
        root = make_project(tmp / f"project-{n}", (STAGE,), wheels)
        venvs = {"plain": tmp / f"plain-{n}" / STAGE, "uv": tmp / f"uv-{n}" / STAGE,
                 "project": root / ".venvs" / STAGE}
        order = rotated(SIDES, i)
        orders.append(order)
        run_steps: dict[str, object] = {}
        for scenario in ("cold", "warm"):
            print(f"run {n}/{runs}, {scenario}:", end="", flush=True)
            for side in order:
                if scenario == "warm":
                    rmtree(venvs[side])
                result: float | dict[str, float]
                if side == "plain":
                    result = plain_build(venvs[side], requirements, wheels, envs[side])
                elif side == "uv":
                    result = uv_build(uv, venvs[side], requirements, wheels, envs[side])
                else:
                    result = project_build(root, (STAGE,), envs[side])
                seconds = result["total"] if isinstance(result, dict) else result
                times[scenario][side].append(seconds)
                if isinstance(result, dict):
                    run_steps[f"{scenario}_{side}"] = {k: round(v, 3) for k, v in result.items()}
                print(f" {side} {seconds:.1f} s;", end="", flush=True)
            print(flush=True)
            for side in SIDES:
                check_venv(venvs[side], envs[side])
        steps.append(run_steps)
        if not freezes:
            freezes = {
                "plain": freeze_set(run([venv_python(venvs["plain"]), "-m", "pip", "freeze"],
                                        envs["plain"]).stdout),
                "uv": freeze_set(run([uv, "pip", "freeze", "--python",
                                      venv_python(venvs["uv"])], envs["uv"]).stdout),
                "project": freeze_set((venvs["project"] / "pip-freeze.txt")
                                      .read_text(encoding="utf-8")),
            }
        load.sample()
        if n < runs:
            for folder in (tmp / f"plain-{n}", tmp / f"uv-{n}", root, tmp / "caches"):
                rmtree(folder)

    # Disk: four stages against one, with the caches of the last run (warm).
    last = runs
    disk_roots = {"plain": tmp / "plain-disk", "uv": tmp / "uv-disk",
                  "project": make_project(tmp / "project-disk", DISK_STAGES, wheels)}
    disk_venvs = {"plain": [disk_roots["plain"] / s for s in DISK_STAGES],
                  "uv": [disk_roots["uv"] / s for s in DISK_STAGES],
                  "project": [disk_roots["project"] / ".venvs" / s for s in DISK_STAGES]}
    envs = {"plain": clean_env(PIP_CACHE_DIR=str(tmp / f"caches/pip-{last}")),
            "uv": clean_env(UV_CACHE_DIR=str(tmp / f"caches/uv-{last}")),
            "project": clean_env(UV_CACHE_DIR=str(tmp / f"caches/project-uv-{last}"))}
    disk_s: dict[str, float] = {}
    print("disk, four venvs each:", end="", flush=True)
    for side in rotated(SIDES, runs):
        if side == "plain":
            disk_s[side] = sum(plain_build(v, requirements, wheels, envs[side])["total"]
                               for v in disk_venvs[side])
        elif side == "uv":
            disk_s[side] = sum(uv_build(uv, v, requirements, wheels, envs[side])["total"]
                               for v in disk_venvs[side])
        else:
            disk_s[side] = project_build(disk_roots["project"], DISK_STAGES, envs[side])
        print(f" {side} {disk_s[side]:.1f} s;", end="", flush=True)
    print(flush=True)
    for side in SIDES:
        for venv in disk_venvs[side]:
            check_venv(venv, envs[side])

    def disk_figures(venvs: list[Path], seconds: float) -> dict[str, object]:
        one, four = disk_bytes(venvs[0]), disk_bytes(*venvs)
        return {"one_mb": mb(one), "four_mb": mb(four), "ratio": round(four / one, 2),
                "four_build_s": round(seconds, 1)}

    project_cache = tmp / f"caches/project-uv-{last}"
    disk = {
        **{side: disk_figures(disk_venvs[side], disk_s[side]) for side in SIDES},
        "uv_cache_mb": mb(disk_bytes(project_cache)),
        "uv_cache_and_four_project_venvs_mb": mb(disk_bytes(project_cache,
                                                            *disk_venvs["project"])),
        "uv_cache_on_venv_filesystem":
            os.stat(project_cache).st_dev == os.stat(disk_roots["project"]).st_dev,
    }

    def figures(values: dict[str, list[float]]) -> dict[str, object]:
        med = {side: statistics.median(values[side]) for side in SIDES}
        return {
            **{side: summary(values[side]) for side in SIDES},
            "plain_over_project": ratio(med["plain"], med["project"]),
            "project_over_uv": ratio(med["project"], med["uv"], 2),
            "project_minus_uv_s": round(med["project"] - med["uv"], 2),
        }

    results: dict[str, object] = {
        "cold": figures(times["cold"]),
        "warm": figures(times["warm"]),
        "steps_s": steps,
        "orders": orders,
        "disk": disk,
        "same_package_versions": freezes["plain"] == freezes["uv"] == freezes["project"],
        "wheels": {"count": n_wheels, "mb": mb(disk_bytes(wheels)), "fill_s": round(fill_s)},
    }
    cold, warm = results["cold"], results["warm"]
    results["targets"] = {
        f"cold build at least {TARGET_COLD_SPEEDUP:g}x faster than plain":
            cold["plain_over_project"] >= TARGET_COLD_SPEEDUP,
        f"warm rebuild about a second (<= {TARGET_WARM_SECONDS:g} s)":
            warm["project"]["median_s"] <= TARGET_WARM_SECONDS,
        f"four venvs at most {TARGET_DISK_RATIO:g}x the disk of one":
            disk["project"]["ratio"] <= TARGET_DISK_RATIO,
    }
    return results


def report(meta: dict[str, object], res: dict[str, object]) -> str:
    def cell(row: dict[str, object]) -> str:
        spread = (f" ({row['min_s']:.1f}–{row['max_s']:.1f})"
                  if len(row["runs_s"]) > 1 else "")
        return f"{row['median_s']:.1f}{spread}"

    rows = []
    for name, label in (("cold", "cold (empty installer caches, wheels local)"),
                        ("warm", "warm rebuild (stage venv deleted)")):
        r = res[name]
        rows.append([label, cell(r["plain"]), cell(r["uv"]), cell(r["project"]),
                     f"{r['plain_over_project']:.1f}x", f"+{r['project_minus_uv_s']:.2f}"
                     if r["project_minus_uv_s"] >= 0 else f"{r['project_minus_uv_s']:.2f}",
                     f"{r['project_over_uv']:.2f}x"])
    disk = res["disk"]
    return "\n".join([
        f"Environment builds, {meta['date']}: Python {meta['python']}, {meta['platform']}, "
        f"{meta['cpus']} CPUs, {meta['uv']}; {meta['load']}",
        f"packages: {', '.join(PACKAGES)}; {res['wheels']['count']} wheels, "
        f"{res['wheels']['mb']:.0f} MB; mlops-tasks {meta['mlops_tasks']} (backend "
        f"sqlite3-durable, spec with python: \"{meta['stage_python']}\"); median of "
        f"{meta['runs']} runs (min–max in brackets), sides in a rotating order",
        "",
        markdown_table(["scenario", "plain venv + pip (s)", "uv venv + uv pip (s)",
                        "mlops-tasks `venv:<stage>` (s)", "plain / mlops-tasks",
                        "mlops-tasks − uv (s)", "mlops-tasks / uv"], rows),
        "",
        markdown_table(["disk (hardlinks counted once)", "one venv (MB)", "four venvs (MB)",
                        "four / one", "building four (s, warm caches)"],
                       [[LABELS[side], f"{disk[side]['one_mb']:.0f}",
                         f"{disk[side]['four_mb']:.0f}", f"{disk[side]['ratio']:.2f}",
                         f"{disk[side]['four_build_s']:.1f}"] for side in SIDES]),
        "",
        f"mlops-tasks' uv cache: {disk['uv_cache_mb']:.0f} MB; with the four project venvs: "
        f"{disk['uv_cache_and_four_project_venvs_mb']:.0f} MB (cache on the venvs' "
        f"filesystem: {'yes' if disk['uv_cache_on_venv_filesystem'] else 'NO, copies'})",
        f"same package versions in the three venvs: "
        f"{'yes' if res['same_package_versions'] else 'NO'}",
        "",
        "targets (medians):",
        *(f"  [{'met' if ok else 'NOT met'}] {what}" for what, ok in res["targets"].items()),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="timed runs per scenario (the tables show medians; default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    meta: dict[str, object] = {**machine(args.runs), "packages": list(PACKAGES),
                               "stage_python": spec_python()}
    load = Load()
    tmp = Path(tempfile.mkdtemp(prefix="bench-envs-"))
    log(f"working in {tmp}")
    try:
        meta["mlops_tasks"] = measured_mlops_tasks()
        uv = find_uv()
        meta["uv"] = uv_version(uv)
        results = benchmark(tmp, args.runs, uv, load)
    except BenchError as err:
        sys.stderr.write(f"\nERROR: {err}\n")
        return 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            rmtree(tmp)
    load.sample()
    meta["load"] = load.describe()
    print()
    print(report(meta, results))
    write_json(args.json, {**meta, **load.as_dict(), **results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
