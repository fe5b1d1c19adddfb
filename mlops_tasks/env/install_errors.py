"""What an installer's failure means, read from its whole message: the index unreachable, a
requirement not found, a source build that failed; and the message a user can act on. Pure."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from mlops_tasks.base.errors import EnvBuildError
from mlops_tasks.project.spec import Stage

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

BUILDING = re.compile(r"^\s*Building ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")

BUILD_FAILED = (
    re.compile(r"Failed to (?:download and )?build `([A-Za-z0-9][A-Za-z0-9._-]*)"),
    re.compile(r"Failed (?:to build|building wheel for) ([A-Za-z0-9][A-Za-z0-9._-]*)"),
)

FETCH_FAILED = re.compile(r"Failed to fetch: `?(\S+?)`?$", re.MULTILINE)

UNREACHABLE = re.compile(r"(Connection refused|tcp connect error|dns error|timed out|"
                         r"Network is unreachable|Name or service not known|certificate|"
                         r"Failed to establish a new connection|NewConnectionError)",
                         re.IGNORECASE)

# a build's own log inside the installer's message: uv's `[stderr]` section, pip's
# `[N lines of output]` block; and what closes it
BUILD_LOG_START = re.compile(r"^\s*\[(?:stdout|stderr)\]\s*$|lines of output\]\s*$")

BUILD_LOG_END = re.compile(r"^\s*(?:hint:|\[end of output\]|note: This error originates)")

BUILD_REQUIRES_FAILED = re.compile(r"Failed to resolve requirements from `build-system\."
                                   r"requires`|install build dependencies did not run")


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


def failed_builds(stderr: str) -> list[str]:
    """Packages an installer tried to build from source and could not. Pure."""
    return _names(BUILD_FAILED, stderr)


def unreachable_index(stderr: str) -> tuple[str, str] | None:
    """The index URL an installer could not reach and why (the innermost cause: uv and pip
    say the general first), or None. Pure."""
    causes = UNREACHABLE.findall(stderr)
    if not causes:
        return None
    url = FETCH_FAILED.search(stderr)
    return (url.group(1) if url else "the package index"), causes[-1]


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
