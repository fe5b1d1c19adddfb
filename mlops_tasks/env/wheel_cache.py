"""Filling and checking wheels_cache/: resolve each stage's requirements for a target Python
and platform, download exactly those wheels, and say what an offline install would miss
(`doit wheels`)."""

from __future__ import annotations

import importlib.util
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_tasks.base import command, console
from mlops_tasks.base.errors import CommandFailed, MlopsError
from mlops_tasks.env.install_errors import diagnose, missing_requirements
from mlops_tasks.env.installers import find_uv
from mlops_tasks.env.wheelset import (
    Target,
    download_argv,
    no_wheel_for,
    parse_pins,
    resolve_argv,
    uncovered,
)
from mlops_tasks.project.config import Config


@dataclass(frozen=True)
class Need:
    """One set of requirements to cover: a stage's, or the orchestrator's."""

    name: str
    requirements: list[str]
    target: Target


def orchestrator_requirements(pyproject: dict[str, Any], version: str) -> list[str]:
    """What installing the orchestrator needs: the project's own dependencies and build
    requirements when its pyproject.toml declares a package (installed with `pip install -e
    .`), else mlops-tasks at the running version. Pure."""
    project = pyproject.get("project") or {}
    if not project.get("name"):
        return [f"mlops-tasks=={version}"]
    build = (pyproject.get("build-system") or {}).get("requires") or ["setuptools", "wheel"]
    return [*project.get("dependencies", []), *build]


def pip_command() -> list[str]:
    """pip for downloads: the orchestrator's, or the copy every CPython ships in ensurepip
    (an orchestrator made with `uv venv` has no pip), run from its wheel."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    spec = importlib.util.find_spec("ensurepip")
    if spec is not None and spec.origin:
        bundled = sorted(Path(spec.origin).parent.glob("_bundled/pip-*.whl"))
        if bundled:
            return [sys.executable, str(bundled[-1] / "pip")]
    uv = find_uv()
    if uv:
        return [uv, "tool", "run", "--from", "pip", "pip"]
    raise MlopsError("wheels: no pip to download with (neither in this environment nor "
                     "bundled with its Python) and no uv; pip install pip")


def resolve(uv: str, need: Need, sources: list[str]) -> list[str]:
    """The pins of `need` for its target; CommandFailed when the resolver fails."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.in"
        req.write_text("\n".join(need.requirements) + "\n", "utf-8")
        return parse_pins(command.run(resolve_argv(uv, req, need.target, sources), echo=False))


def fill(uv: str, cache: Path, config: Config, need: Need) -> None:
    label = f"{need.name} ({need.target.label()})"
    find = ["--find-links", str(cache)] if any(cache.glob("*.whl")) else []
    try:
        pins = resolve(uv, need, find)
    except CommandFailed as err:
        raise no_wheel_error(need, config, err) if no_wheel_for(err.stderr_tail) else MlopsError(
            f"wheels: {label} could not be resolved: {err.stderr_tail}") from None
    missing = uncovered(pins, cache.glob("*.whl"), need.target)
    console.say(f"{label}: {len(pins)} packages, {len(missing)} to download", "wheels")
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            listing = Path(tmp) / "pins.txt"
            listing.write_text("\n".join(missing) + "\n", "utf-8")
            try:
                command.run(download_argv(pip_command(), cache, listing, need.target))
            except CommandFailed as err:
                raise no_wheel_error(need, config, err) from None
    left = uncovered(pins, cache.glob("*.whl"), need.target)
    if left:
        raise MlopsError(f"wheels: {need.name}: no wheel for {need.target.label()} of "
                         f"{', '.join(left)} (a URL or VCS requirement needs the network)")


def no_wheel_error(need: Need, config: Config, err: CommandFailed) -> MlopsError:
    names = ", ".join(no_wheel_for(err.stderr_tail)) or "a requirement"
    return MlopsError(f"wheels: {need.name}: no wheel of {names} for {need.target.label()}; "
                      "pick a version (or a package) that publishes one, or build the wheel "
                      f"on such a machine and put it in {config.wheels_cache}/.\n"
                      f"{err.stderr_tail}")


def each_requirement(requirements: list[str]) -> list[str]:
    """The requirement lines of a need, a `-r FILE` entry read out of its file."""
    found: list[str] = []
    for line in requirements:
        if not line.startswith("-r "):
            found.append(line)
            continue
        text = Path(line[3:].strip()).read_text(encoding="utf-8")
        found += [r.split(" #", 1)[0].strip() for r in text.splitlines()
                  if r.strip() and not r.lstrip().startswith(("#", "-"))]
    return found


def index_of(url: str) -> str:
    """The index a project page belongs to: `https://host/simple/idna/` -> `.../simple`."""
    return re.sub(r"/[^/]+/?$", "", url) if url.startswith(("http://", "https://")) else url


@dataclass
class Gaps:
    """What --check learnt: the index, when it could not be reached ('url: cause')."""

    unreachable: str = ""


def unresolvable(uv: str, need: Need, cache: Path, sources: list[str]) -> list[str]:
    """Resolved one requirement at a time (a resolver stops at the first it cannot find):
    every name no source has, and with the index, every pin the cache does not hold."""
    missing: list[str] = []
    for requirement in each_requirement(need.requirements):
        try:
            pins = resolve(uv, Need(need.name, [requirement], need.target), sources)
            names = [] if "--no-index" in sources else uncovered(
                pins, cache.glob("*.whl"), need.target)
        except CommandFailed as err:
            names = missing_requirements(err.stderr_tail) or [requirement]
        missing += [name for name in names if name not in missing]
    return missing


def gaps_of(uv: str, need: Need, cache: Path, find: list[str], gaps: Gaps) -> list[str]:
    """What the cache lacks for `need`: the index asked for every pin while it answers;
    without it (unreachable), what the cache alone cannot resolve."""
    if not gaps.unreachable:
        try:
            return uncovered(resolve(uv, need, find), cache.glob("*.whl"), need.target)
        except CommandFailed as err:
            failure = diagnose(err.stderr_tail)
            if failure.kind != "unreachable":
                return unresolvable(uv, need, cache, find)
            gaps.unreachable = f"{index_of(failure.names[0])} could not be reached: " \
                               f"{failure.detail}"
    return unresolvable(uv, need, cache, ["--no-index", *find])


def check(uv: str, cache: Path, config: Config, needs: list[Need]) -> int:
    """Per need: resolved from the cache alone, or what is missing; 1 when anything is."""
    incomplete, gaps = 0, Gaps()
    find = ["--find-links", str(cache)] if cache.is_dir() else []
    for need in needs:
        label = f"{need.name} ({need.target.label()})"
        try:
            if find:
                pins = resolve(uv, need, ["--no-index", *find])
                console.say(f"{label}: complete, {len(pins)} packages", "wheels")
                continue
        except CommandFailed:
            pass
        incomplete += 1
        missing = gaps_of(uv, need, cache, find, gaps)
        what = ", ".join(missing) or f"(the resolver failed; `doit wheels {need.name}`)"
        console.say(f"{label}: MISSING {what}", "wheels")
    if gaps.unreachable:
        console.say(f"the package index {gaps.unreachable}; --check without network shows "
                    f"only what {config.wheels_cache}/ holds", "wheels")
    if incomplete:
        console.say(f"{incomplete} of {len(needs)} not covered by {config.wheels_cache}/; fill "
                    "it with `doit wheels` and the same --python-version/--platform where "
                    "the index is reachable", "wheels")
    return 1 if incomplete else 0
