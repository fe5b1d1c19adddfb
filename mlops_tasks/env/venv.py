"""Stage virtualenvs: decide whether one is valid (pure), and build one (uv or pip)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_tasks.base import command, console
from mlops_tasks.base.errors import CommandFailed, EnvBuildError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.redact import redact
from mlops_tasks.env.interpreters import Interpreter, Resolver
from mlops_tasks.project import layout
from mlops_tasks.project.config import Config
from mlops_tasks.project.fingerprint import env_fingerprint, install_requirements, sha256_text
from mlops_tasks.project.spec import Stage, normalise_req_name, requirement_name

# The build option holding the pins file's hash (the name existing env markers carry).
PINS_OPTION = "lock_sha256"


@dataclass(frozen=True)
class EnvPlan:
    """What a stage's env is built from; its fingerprint is the env's build identity."""

    stage: str
    interpreter: Interpreter
    requirements: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    pins_file: str | None = None  # pinned requirements (env_specs/<spec>.lock), if any

    @property
    def fingerprint(self) -> str:
        return env_fingerprint(self.interpreter.version, self.interpreter.implementation,
                               self.requirements, self.options)


def plan_env(stage: Stage, interpreter: Interpreter, installer: str,
             pins_text: str | None = None) -> EnvPlan:
    """The build plan. With a pins file, its content is part of the env's identity."""
    options: dict[str, Any] = {"installer": installer}
    if pins_text is not None:
        options[PINS_OPTION] = sha256_text(pins_text.replace("\r\n", "\n"))
    return EnvPlan(stage.name, interpreter, tuple(install_requirements(stage)), options,
                   layout.pins_file(stage) if pins_text is not None else None)


def plan_for(config: Config, stage: Stage) -> EnvPlan:
    """The plan for a stage as the project stands: its interpreter resolved, its pins read."""
    interp = Resolver.for_cache(config.root / layout.interpreter_cache()).resolve(
        stage.name, stage.python, stage.python_exe)
    pins = config.root / layout.pins_file(stage)
    pins_text = pins.read_text(encoding="utf-8") if pins.is_file() else None
    return plan_env(stage, interp, config.installer, pins_text)


def read_marker(env_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((env_dir / layout.MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _req_names(reqs: Any) -> dict[str, str]:
    return {normalise_req_name(requirement_name(r) or r): r for r in reqs or []}


def describe_change(marker: Mapping[str, Any], plan: EnvPlan) -> str:
    """Say what changed between a built env and the plan: 'packages: +pandas, -dask'."""
    parts: list[str] = []
    old_version = marker.get("python_version")
    if old_version != plan.interpreter.version:
        parts.append(f"python {old_version} → {plan.interpreter.version}")
    old, new = _req_names(marker.get("requirements")), _req_names(plan.requirements)
    changes = [f"+{new[n]}" for n in new if n not in old]
    changes += [f"-{old[n]}" for n in old if n not in new]
    changes += [f"{old[n]} → {new[n]}" for n in new if n in old and old[n] != new[n]]
    if changes:
        parts.append("packages: " + ", ".join(changes))
    old_opts, new_opts = dict(marker.get("options") or {}), dict(plan.options)
    if old_opts.get(PINS_OPTION) != new_opts.get(PINS_OPTION):
        parts.append("lock file " + ("added" if PINS_OPTION not in old_opts else
                                     "removed" if PINS_OPTION not in new_opts else "changed"))
    old_opts.pop(PINS_OPTION, None)
    new_opts.pop(PINS_OPTION, None)
    if old_opts != new_opts:
        parts.append(f"options: {old_opts} → {new_opts}")
    return redact("; ".join(parts) or "build inputs changed")


def env_problem(env_dir: Path, plan: EnvPlan, freeze: Path) -> str | None:
    """Why the env at env_dir cannot be reused for plan, or None when it can."""
    if not env_dir.exists():
        return "not built yet"
    marker = read_marker(env_dir)
    if marker is None:
        return (f"{env_dir.name} has no valid marker (a build was interrupted or the folder "
                "was made by hand)")
    if marker.get("fingerprint") != plan.fingerprint:
        return describe_change(marker, plan)
    python = env_dir / marker["python"] if marker.get("python") else None
    if python is None or not python.exists():
        return "the venv's interpreter is missing"
    if not freeze.is_file():
        return "pip-freeze.txt is missing"
    if sha256_text(freeze.read_text(encoding="utf-8")) != marker.get("freeze_sha256"):
        return "pip-freeze.txt was changed by hand"
    return None


_uv_mutex = threading.Lock()
_uv_path: list[str | None] = []


def find_uv() -> str | None:
    """The uv binary (shipped as a dependency), else uv on PATH. Looked up once per process,
    under a mutex: uv's lookup reads sysconfig, which is not thread-safe before Python 3.12,
    and `doit -n 2` builds venvs from two threads."""
    with _uv_mutex:
        if not _uv_path:
            try:
                from uv import find_uv_bin

                _uv_path.append(find_uv_bin())
            except (ImportError, FileNotFoundError):
                _uv_path.append(shutil.which("uv"))
        return _uv_path[0]


def wheel_sources(config: Config) -> tuple[list[str], bool]:
    """Index options by policy, and whether the install is offline."""
    cache = config.root / config.wheels_cache
    filled = cache.is_dir() and any(cache.glob("*.whl"))
    if config.index_policy == "online":
        return (["--find-links", str(cache)] if filled else []), False
    if config.index_policy == "offline" or filled:
        return ["--no-index", "--find-links", str(cache)], True
    return [], False


def _installer_env() -> dict[str, str]:
    """The installer sees the user's settings, minus what would leak the orchestrator in."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONHOME", None)
    return env


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


def freeze_header(interpreter: Interpreter) -> str:
    """First line of pip-freeze.txt: a new interpreter is a new env even with the same pins."""
    return f"# python {interpreter.version} ({interpreter.implementation})\n"


def check_pins_cover(stage: Stage, pins_text: str, pins_file: str) -> None:
    """A pins file older than the spec would silently leave new packages out."""
    pinned = {normalise_req_name(requirement_name(line) or "")
              for line in pins_text.splitlines() if line.strip() and line[0] not in "# -"}
    missing = [r for r in stage.packages
               if normalise_req_name(requirement_name(r) or r) not in pinned]
    if missing:
        raise EnvBuildError(
            stage.name, f"{pins_file} does not pin {', '.join(missing)} from "
            f"{stage.spec_path}; update it with `doit lock {stage.name}` (or delete it)")


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
    uv = find_uv() if plan.options.get("installer") == "uv" else None
    if plan.options.get("installer") == "uv" and uv is None:
        console.say("uv not found; falling back to pip", "venv", stage.name)
    env = _installer_env()
    try:
        if uv:
            command.run([uv, "venv", "--quiet", "--python", plan.interpreter.path,
                         str(env_dir)], env=env)
        else:
            command.run([plan.interpreter.path, "-m", "venv", str(env_dir)], env=env)
        _install(stage, uv, venv_py, requirements, config, env, plan.pins_file is not None,
                 plan.interpreter.version)
        return freeze_header(plan.interpreter) + _freeze(uv, venv_py, env)
    except CommandFailed as err:
        raise EnvBuildError(stage.name, f"could not build {stage.env_dir}: {err}") from None


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


NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MISSING_PATTERNS = (
    re.compile(rf"[Bb]ecause (?:there is no version of )?({NAME})\S*"
               r" (?:was not found|and you require)"),
    re.compile(rf"[Bb]ecause only ({NAME})\S* (?:is|are) available and you require"),
    re.compile(rf"No matching distribution found for ({NAME})"),
    re.compile(rf"satisfies the requirement ({NAME})"),
)
# the project exists, but no version of it matches: (name, what was asked, what it has)
NO_MATCHING_VERSION = (
    re.compile(rf"there is no version of ({NAME})(\S+?)()(?=,| and|$)", re.MULTILINE),  # uv
    re.compile(rf"only ({NAME})(\S*?) (?:is|are) available and you require \1(\S+?)"
               r"(?=,| and|$)", re.MULTILINE),  # uv
    re.compile(rf"satisfies the requirement ({NAME})(\S*) \(from versions: (?!none\))"
               r"([^)]*)\)"),  # pip
)


def _names(patterns: tuple[re.Pattern[str], ...], text: str) -> list[str]:
    """Every name the patterns capture in text, once each, in order of discovery."""
    found: list[str] = []
    for pattern in patterns:
        for name in pattern.findall(text):
            if name not in found:
                found.append(name)
    return found


def missing_requirements(stderr: str) -> list[str]:
    """Requirement names an installer could not find, from uv's or pip's message. Pure."""
    return _names(MISSING_PATTERNS, stderr)


@dataclass(frozen=True)
class Missing:
    """A requirement no source could satisfy: no such project (`asked` empty), or no version
    of it matching `asked` (`has`: the versions the installer saw, when it says)."""

    name: str
    asked: str = ""
    has: str = ""

    def on_index(self) -> str:
        if not self.asked:
            return f"{self.name} was not found on the package index"
        has = f" (it has {self.has})" if self.has else ""
        return (f"the package index has no version of {self.name} matching "
                f"{self.name}{self.asked}{has}")


def missing_details(stderr: str) -> list[Missing]:
    """What an installer could not find, told apart: no such project, or no version matching
    the requirement. Pure."""
    versions: dict[str, Missing] = {}
    for pattern in NO_MATCHING_VERSION:
        for name, asked, has in pattern.findall(stderr):
            if pattern is NO_MATCHING_VERSION[1]:  # uv: "only x==1.0 is available and ..."
                asked, has = has, asked.lstrip("=")
            versions.setdefault(name, Missing(name, asked, has.strip()))
    return [versions.get(name, Missing(name)) for name in missing_requirements(stderr)]


def install_argv(uv: str | None, venv_py: Path, requirements: Path, pinned: bool) -> list[str]:
    """The install command: exact from a pins file (sync / --no-deps), else resolved. Pure."""
    if uv and pinned:
        return [uv, "pip", "sync", "--quiet", "--python", str(venv_py), str(requirements)]
    if uv:
        return [uv, "pip", "install", "--python", str(venv_py), "-r",
                str(requirements)]
    argv = [str(venv_py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "-r", str(requirements)]
    return argv + (["--no-deps"] if pinned else [])


# uv's and pip's lines that say where an install is: shown live at a terminal
INSTALL_STEP = re.compile(r"^(Resolved|Prepared|Installed|Downloading|Downloaded|Building|"
                          r"Built|Collecting|Installing|Successfully)\b")
BUILDING = re.compile(r"^\s*Building ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
BUILD_FAILED = (
    re.compile(r"Failed to (?:download and )?build `([A-Za-z0-9][A-Za-z0-9._-]*)"),
    re.compile(r"Failed (?:to build|building wheel for) ([A-Za-z0-9][A-Za-z0-9._-]*)"),
)


def failed_builds(stderr: str) -> list[str]:
    """Packages an installer tried to build from source and could not. Pure."""
    return _names(BUILD_FAILED, stderr)


FETCH_FAILED = re.compile(r"Failed to fetch: `?(\S+?)`?$", re.MULTILINE)
UNREACHABLE = re.compile(r"(Connection refused|tcp connect error|dns error|timed out|"
                         r"Network is unreachable|Name or service not known|certificate|"
                         r"Failed to establish a new connection|NewConnectionError)",
                         re.IGNORECASE)


def unreachable_index(stderr: str) -> tuple[str, str] | None:
    """The index URL an installer could not reach and why (the innermost cause: uv and pip
    say the general first), or None. Pure."""
    causes = UNREACHABLE.findall(stderr)
    if not causes:
        return None
    url = FETCH_FAILED.search(stderr)
    return (url.group(1) if url else "the package index"), causes[-1]


# a build's own log inside the installer's message: uv's `[stderr]` section, pip's
# `[N lines of output]` block; and what closes it
BUILD_LOG_START = re.compile(r"^\s*\[(?:stdout|stderr)\]\s*$|lines of output\]\s*$")
BUILD_LOG_END = re.compile(r"^\s*(?:hint:|\[end of output\]|note: This error originates)")
BUILD_REQUIRES_FAILED = re.compile(r"Failed to resolve requirements from `build-system\."
                                   r"requires`|install build dependencies did not run")


def build_error_tail(stderr: str, limit: int = 15) -> str:
    """The last lines of a failed build's own log, out of the installer's message. Pure."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if BUILD_LOG_START.search(line)]
    start = starts[-1] + 1 if starts else 0
    end = next((i for i in range(start, len(lines)) if BUILD_LOG_END.match(lines[i])),
               len(lines))
    body = textwrap.dedent("\n".join(lines[start:end])).strip().splitlines()
    return "\n".join("  " + line for line in body[-limit:])


@dataclass(frozen=True)
class InstallFailure:
    """Why an install failed, read from the installer's whole message. `kind`: unreachable
    (the index could not be reached), build (a source build failed), missing (no source has
    it), other."""

    kind: str
    names: tuple[str, ...] = ()
    detail: str = ""  # unreachable: the cause (names: the URL); build: its error tail
    missing: tuple[Missing, ...] = ()
    needed_to_build: tuple[str, ...] = ()  # missing build requirements: of these packages


def diagnose(stderr: str) -> InstallFailure:
    """Tell an installer's failure apart: an index it could not reach, a build from source
    that failed, a requirement no source has. Pure."""
    built, missing = failed_builds(stderr), tuple(missing_details(stderr))
    unreachable = unreachable_index(stderr)
    if BUILD_REQUIRES_FAILED.search(stderr) and missing and not unreachable:
        return InstallFailure("missing", tuple(m.name for m in missing), "", missing,
                              tuple(built))
    if built and any(BUILD_LOG_START.search(line) for line in stderr.splitlines()):
        return InstallFailure("build", tuple(built), build_error_tail(stderr))
    if unreachable:
        return InstallFailure("unreachable", (unreachable[0],), unreachable[1])
    if built:
        return InstallFailure("build", tuple(built), build_error_tail(stderr))
    if missing:
        return InstallFailure("missing", tuple(m.name for m in missing), "", missing)
    return InstallFailure("other")


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


def _is(names: tuple[str, ...] | list[str]) -> str:
    return "is" if len(names) < 2 else "are"


def _build_failed(stage: Stage, failure: InstallFailure, cache: str, python: str) -> str:
    names = ", ".join(failure.names)
    short = ".".join(python.split(".")[:2])
    return (f"{names} {'has' if len(failure.names) < 2 else 'have'} no wheel for Python "
            f"{python} on this platform; building it from source was attempted and failed:\n"
            f"{failure.detail}\nFix: pin a version of {names} that publishes a wheel for "
            f"Python {short} in {stage.spec_path}, put a wheel of {names} in {cache}/, or "
            f"run `doit wheels {stage.name}` where the index is reachable (it fills {cache}/ "
            "with the wheels that exist and names the requirements that have none)")


def _not_found(stage: Stage, failure: InstallFailure, cache: str, offline: bool) -> str:
    for_build = (f" (needed to build {', '.join(failure.needed_to_build)} from source)"
                 if failure.needed_to_build else "")
    if offline:
        what = ", ".join(failure.names) + for_build
        return (f"{what} {_is(failure.names)} not in {cache}/ and the index policy is "
                f"offline; fill the cache with `doit wheels` (or `doit wheels {stage.name}`) "
                "on a machine with network access")
    said = "; ".join(m.on_index() for m in failure.missing) + for_build
    return f"{said}; check the requirement in {stage.spec_path}"


def install_error(stage: Stage, failure: InstallFailure, tail: str, cache: str, python: str,
                  offline: bool) -> EnvBuildError:
    """The error a failed install raises: what really happened, and the fix. Pure."""
    if failure.kind == "build":
        return EnvBuildError(stage.name, _build_failed(stage, failure, cache, python))
    if failure.kind == "unreachable" and not offline:
        return EnvBuildError(stage.name, f"{failure.names[0]} cannot be reached "
                             f"({failure.detail}); check the network and the index settings "
                             "(UV_INDEX_URL, PIP_INDEX_URL, pip.conf), or fill "
                             f"{cache}/ with `doit wheels` where the index is reachable.\n"
                             f"{tail}")
    if failure.kind == "missing":
        return EnvBuildError(stage.name,
                             f"{_not_found(stage, failure, cache, offline)}.\n{tail}")
    return EnvBuildError(stage.name, f"the installer failed installing the requirements of "
                         f"{stage.spec_path}; its message:\n{tail}")


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


def _install(stage: Stage, uv: str | None, venv_py: Path, requirements: Path, config: Config,
             env: dict[str, str], pinned: bool, python: str = "") -> None:
    sources, offline = wheel_sources(config)
    argv = install_argv(uv, venv_py, requirements, pinned)
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


def _freeze(uv: str | None, venv_py: Path, env: dict[str, str]) -> str:
    if uv:
        text = command.run([uv, "pip", "freeze", "--python", str(venv_py)], env=env, echo=False)
    else:
        text = command.run([str(venv_py), "-m", "pip", "freeze"], env=env, echo=False)
    lines = sorted(line.strip() for line in text.splitlines() if line.strip())
    return "\n".join(lines) + "\n"
