"""Stage virtualenvs on disk: build one (its plan decided in plan.py, its installer in
installers.py), keep the one it replaces aside until the new one is complete, and never
touch a folder this tool did not make."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlops_tasks.base import command, console
from mlops_tasks.base.errors import CommandFailed, EnvBuildError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.env.install_errors import BUILDING, InstallFailure, diagnose, install_error
from mlops_tasks.env.installers import (
    Installer,
    freeze_text,
    installer_env,
    installer_for,
    wheel_sources,
)
from mlops_tasks.env.plan import (
    EnvPlan,
    check_pins_cover,
    env_problem,
    freeze_header,
    plan_for,
    read_marker,
)
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.environments import task_name
from mlops_tasks.project.fingerprint import sha256_text
from mlops_tasks.project.spec import Stage


def owned(stage: Stage, root: Path) -> bool:
    """The stage's env_dir was made by this tool: it holds our marker (even a stale one), or
    the state folder records that a build of ours started there (a build killed before its
    marker). A folder of the user's, venv or not, is never ours."""
    env_dir = root / stage.env_dir
    if (env_dir / layout.MARKER).exists():
        return True
    try:
        claim = json.loads((root / layout.env_claim(stage)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(claim, dict) and claim.get("env_dir") == stage.env_dir


def _refuse_foreign(stage: Stage, root: Path) -> None:
    env_dir = root / stage.env_dir
    if env_dir.resolve() == Path(sys.prefix).resolve():
        raise EnvBuildError(
            stage.name, f"env_dir {stage.env_dir!r} is the environment running doit; it is "
            f"left untouched. Point 'env_dir' in {stage.spec_path} at a folder of its own, "
            f"such as .venvs/{stage.name}")
    if not owned(stage, root):
        what = "a virtualenv" if (env_dir / "pyvenv.cfg").exists() else "a folder"
        raise EnvBuildError(
            stage.name, f"env_dir {stage.env_dir!r} is {what} this tool did not build (it has "
            f"no {layout.MARKER}); it is left untouched. Point 'env_dir' in {stage.spec_path} "
            f"at a folder of its own, such as .venvs/{stage.name}, or remove {stage.env_dir} "
            "yourself if nothing in it is needed")


def _remove(stage: Stage, folder: Path, what: str) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as err:
        raise EnvBuildError(
            stage.name, f"cannot remove {what} ({err}); close the programs using it (a "
            "Jupyter kernel of this stage?) and run again") from None


def discard(stage: Stage, root: Path) -> None:
    """Remove a stage venv (`doit clean`); refuse anything this tool did not build."""
    env_dir = root / stage.env_dir
    if not env_dir.exists():
        return
    _refuse_foreign(stage, root)
    (env_dir / layout.MARKER).unlink(missing_ok=True)  # invalid from here on, whatever happens
    _remove(stage, env_dir, stage.env_dir)
    (root / layout.env_claim(stage)).unlink(missing_ok=True)


def recover_previous(stage: Stage, root: Path) -> None:
    """A rebuild killed midway: the env it replaced comes back (a completed rebuild, whose
    marker is written last, keeps the new one)."""
    env_dir, previous = root / stage.env_dir, root / layout.previous_env(stage)
    if not previous.exists():
        return
    if (env_dir / layout.MARKER).exists():
        _remove(stage, previous, layout.previous_env(stage))
        return
    if env_dir.exists():
        _remove(stage, env_dir, stage.env_dir)
    os.replace(previous, env_dir)
    console.say(f"put back {stage.env_dir} as it was before an interrupted rebuild", "venv",
                stage.name)


def set_aside(stage: Stage, root: Path) -> Path | None:
    """Move the current env aside while its replacement is built; None when there is none."""
    env_dir, previous = root / stage.env_dir, root / layout.previous_env(stage)
    if not env_dir.exists():
        return None
    _refuse_foreign(stage, root)
    try:
        os.replace(env_dir, previous)
    except OSError as err:
        raise EnvBuildError(
            stage.name, f"cannot move {stage.env_dir} aside to rebuild it ({err}); close the "
            "programs using it (a Jupyter kernel of this stage?) and run again") from None
    return previous


def claim(stage: Stage, root: Path) -> None:
    """Record, before the folder exists, that a build of ours starts at env_dir."""
    atomic_write(root / layout.env_claim(stage), json.dumps({"env_dir": stage.env_dir}) + "\n")


def _requirements_file(stage: Stage, plan: EnvPlan, root: Path, env_dir: Path) -> Path:
    """What the installer reads: the pins file as it is, or the plan's requirements."""
    requirements = root / layout.requirements_file(stage.env_dir)
    if plan.pins_file:
        check_pins_cover(stage, (root / plan.pins_file).read_text(encoding="utf-8"),
                         plan.pins_file)
        shutil.copyfile(root / plan.pins_file, requirements)
        console.say(f"installing exactly the pins of {plan.pins_file}", "venv", stage.name)
    else:
        requirements.write_text("\n".join(plan.requirements) + "\n", encoding="utf-8")
    return requirements


def _create_and_install(stage: Stage, plan: EnvPlan, env_dir: Path, venv_py: Path,
                        requirements: Path, config: Config) -> str:
    """Make the venv, install into it, and return its freeze (header included)."""
    installer, fallback = installer_for(str(plan.options.get("installer", "pip")))
    if fallback:
        console.say(fallback, "venv", stage.name)
    env = installer_env()
    try:
        command.run(installer.venv_argv(plan.interpreter.path, env_dir), env=env)
        _install(stage, installer, venv_py, requirements, config, env,
                 plan.pins_file is not None, plan.interpreter.version)
        _write_shims(installer, env_dir, venv_py.parent)
        freeze = command.run(installer.freeze_argv(venv_py), env=env, echo=False)
        return freeze_header(plan.interpreter) + freeze_text(freeze)
    except CommandFailed as err:
        raise EnvBuildError(stage.name, f"could not build {stage.env_dir}: {err}") from None


def _write_shims(installer: Installer, env_dir: Path, bin_dir: Path) -> None:
    """The installer's scripts for the venv's bin folder (uv: a `pip` acting on the venv)."""
    for name, text in installer.shims(env_dir.resolve(), os.name == "nt").items():
        shim = bin_dir / name
        if not shim.exists():
            shim.write_text(text, encoding="utf-8", newline="")
            shim.chmod(0o755)


def _write_marker(plan: EnvPlan, env_dir: Path, venv_py: Path, freeze_text: str) -> None:
    """The marker says the env is complete: written last, atomically."""
    marker = {
        "fingerprint": plan.fingerprint,
        "python": os.path.relpath(venv_py, env_dir).replace(os.sep, "/"),
        "base_python": plan.interpreter.path,
        "python_version": plan.interpreter.version,
        "implementation": plan.interpreter.implementation,
        "requirements": list(plan.requirements),
        "options": dict(plan.options),
        "freeze_sha256": sha256_text(freeze_text),
        "built_by": f"mlops-tasks on Python {sys.version.split()[0]}",
    }
    atomic_write(env_dir / layout.MARKER, json.dumps(marker, indent=2, sort_keys=True) + "\n")


def build_env(stage: Stage, plan: EnvPlan, root: Path, config: Config) -> str:
    """(Re)build the stage's venv; write pip-freeze.txt, then the marker, last. The env it
    replaces stays aside until the new one is complete, and comes back if the build fails.
    Returns why it was built ('' when it was reused)."""
    env_dir = root / stage.env_dir
    recover_previous(stage, root)
    why = env_problem(env_dir, plan, root / layout.freeze_file(stage))
    if why is None:
        return ""
    console.step(f"building {stage.env_dir} with Python {plan.interpreter.version}: {why}",
                "venv", stage.name)
    previous = set_aside(stage, root)
    try:
        with console.logging_to(root / layout.stage_log(stage)):
            _build(stage, plan, root, config)
    except BaseException:
        if env_dir.exists():
            shutil.rmtree(env_dir, ignore_errors=True)
        if previous is not None:
            os.replace(previous, env_dir)
            console.say(f"the build failed: {stage.env_dir} is kept as it was", "venv",
                        stage.name)
        raise
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    return why


def _build(stage: Stage, plan: EnvPlan, root: Path, config: Config) -> None:
    env_dir = root / stage.env_dir
    claim(stage, root)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    requirements = None
    try:
        requirements = _requirements_file(stage, plan, root, env_dir)
        venv_py = root / layout.venv_python(stage.env_dir)
        text = _create_and_install(stage, plan, env_dir, venv_py, requirements, config)
    finally:
        if requirements is not None:
            requirements.unlink(missing_ok=True)
    freeze = root / layout.freeze_file(stage)
    if not freeze.is_file() or freeze.read_text(encoding="utf-8") != text:
        atomic_write(freeze, text)
    _write_marker(plan, env_dir, venv_py, text)




# uv's and pip's lines that say where an install is: shown live at a terminal
INSTALL_STEP = re.compile(r"^(Resolved|Prepared|Installed|Downloading|Downloaded|Building|"
                          r"Built|Collecting|Installing|Successfully)\b")


def _progress(stage: Stage, python: str,
              seen: list[str] | None = None) -> Callable[[str], None]:
    """Say when a package is built from source: it has no wheel here, and it takes long.
    Each line is also kept in `seen`, when given."""

    def on_line(line: str) -> None:
        if seen is not None:
            seen.append(line)
        console.detail(line)
        step = INSTALL_STEP.match(line.strip())
        if step:
            console.progress(f"venv:{stage.name}", line.strip()[:60])
        match = BUILDING.match(line)
        if match:
            console.say(f"building {match.group(1)} {match.group(2)} from source (no wheel for "
                        f"Python {python} on this platform); this can take minutes", "venv",
                        stage.name)

    return on_line


def _attempt(stage: Stage, argv: list[str], env: dict[str, str],
             python: str) -> tuple[InstallFailure, str] | None:
    """Run one install; None when it succeeded, else what went wrong (read from the whole
    of its message, not only its tail: a long build log scrolls the cause out) and the tail."""
    seen: list[str] = []
    try:
        command.run(argv, env=env, on_stderr=_progress(stage, python, seen))
    except CommandFailed as err:
        return diagnose("\n".join(seen) or err.stderr_tail), err.stderr_tail
    return None


def _install(stage: Stage, installer: Installer, venv_py: Path, requirements: Path,
             config: Config, env: dict[str, str], pinned: bool, python: str = "") -> None:
    sources, offline = wheel_sources(config)
    argv = installer.install_argv(venv_py, requirements, pinned)
    failed = _attempt(stage, argv + sources, env, python)
    if failed and offline and config.index_policy == "offline-first" \
            and failed[0].kind in ("missing", "other"):
        console.say(f"{', '.join(failed[0].names) or 'a requirement'} not in "
                    f"{config.wheels_cache}/; trying the package index (index_policy = "
                    "offline-first)", "venv", stage.name)
        failed, offline = _attempt(stage, argv + ["--find-links", sources[-1]], env,
                                   python), False
    if failed:
        raise install_error(stage, failed[0], failed[1], config.wheels_cache, python, offline)



def build_locked(config: Config, stage: Stage) -> str:
    """venv:S: build the stage's venv unless it is valid, one build at a time per venv (two
    doit processes, or two stages on one shared environment); why it was built ('' when
    it was reused)."""
    from filelock import FileLock

    plan = plan_for(config, stage)
    mutex = config.root / layout.mutex_file("venv", task_name(stage))
    mutex.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(mutex)):
        start = time.perf_counter()
        why = build_env(stage, plan, config.root, config)
        if why:
            console.step(f"built in {time.perf_counter() - start:.1f} s", "venv", stage.name)
    return why


def ready_if_built(config: Config, stage: Stage) -> bool:
    """ready() for a stage whose venv is built and valid (its kernelspec written when stale);
    False, and nothing done, when the venv needs a build."""
    from mlops_tasks.env.kernelspecs import kernelspec_current, write_kernelspec

    env_dir = config.root / stage.env_dir
    if env_problem(env_dir, plan_for(config, stage), config.root / layout.freeze_file(stage)):
        return False
    version = str((read_marker(env_dir) or {}).get("python_version", ""))
    if not kernelspec_current(config.root, stage, version):
        write_kernelspec(config.root, stage, version)
    return True


def ready(config: Config, stage: Stage) -> None:
    """What a stage needs before its notebook runs: its venv and its kernelspec, each made
    only when missing or stale. execute:S calls this after its cache lookup missed, so a
    stage restored from the cache builds nothing (venv:S and kernel:S do the same when
    asked for by name)."""
    from mlops_tasks.env.kernelspecs import kernelspec_current, write_kernelspec

    build_locked(config, stage)
    marker = read_marker(config.root / stage.env_dir) or {}
    version = str(marker.get("python_version", ""))
    if not kernelspec_current(config.root, stage, version):
        write_kernelspec(config.root, stage, version)
