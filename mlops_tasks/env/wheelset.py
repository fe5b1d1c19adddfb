"""What a wheel cache must hold for a target Python version and platform: the resolver's
pins for that target, the wheel tags the target accepts, and which pins no wheel in the
cache covers. Pure: the commands that resolve and download are built here, run elsewhere."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging import tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from mlops_tasks.base.errors import MlopsError

LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
ARCH_TRIPLE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
               "i686": "i686", "win32": "i686"}
EXAMPLES = "win_amd64, win32, win_arm64, manylinux2014_x86_64, manylinux_2_28_aarch64, " \
           "macosx_11_0_arm64, macosx_10_12_x86_64"


@dataclass(frozen=True)
class Target:
    """Where the wheels will be installed: a Python version and a platform tag (None: this
    machine's platform)."""

    python: str  # "3.10"
    platform: str | None = None  # a wheel platform tag, e.g. "win_amd64"

    def label(self) -> str:
        return f"Python {self.python} on {self.platform or 'this platform'}"


def _manylinux(platform: str) -> tuple[int, int, str] | None:
    for legacy, (major, minor) in LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            return major, minor, platform[len(legacy) + 1:]
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    return (int(match.group(1)), int(match.group(2)), match.group(3)) if match else None


def uv_platform(platform: str) -> str:
    """uv's --python-platform for a wheel platform tag (what pip's --platform takes)."""
    if platform in ("win_amd64", "win32", "win_arm64"):
        arch = {"win_amd64": "x86_64", "win32": "i686", "win_arm64": "aarch64"}[platform]
        return f"{arch}-pc-windows-msvc"
    many = _manylinux(platform)
    if many and many[2] in ("x86_64", "aarch64"):
        return f"{many[2]}-manylinux_{many[0]}_{many[1]}"
    match = re.fullmatch(r"linux_(x86_64|aarch64)", platform)
    if match:
        return f"{match.group(1)}-unknown-linux-gnu"
    match = re.fullmatch(r"macosx_\d+_\d+_(x86_64|arm64|universal2)", platform)
    if match:
        arch = {"x86_64": "x86_64", "arm64": "aarch64", "universal2": "aarch64"}[match.group(1)]
        return f"{arch}-apple-darwin"
    raise MlopsError(f"wheels: --platform {platform} is not a wheel platform tag this tool "
                     f"knows; use one of {EXAMPLES}")


def _platforms(platform: str) -> list[str]:
    """The platform tags a target accepts: a manylinux tag accepts the older ones too."""
    many = _manylinux(platform)
    if many:
        major, minor, arch = many
        found = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 4, -1)]
        found += [f"{legacy}_{arch}" for legacy, (_, m) in LEGACY_MANYLINUX.items()
                  if m <= minor]
        return found
    match = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", platform)
    if match:
        version = (int(match.group(1)), int(match.group(2)))
        return list(tags.mac_platforms(version, match.group(3)))
    return [platform]


def target_tags(target: Target) -> frozenset[tags.Tag]:
    """Every wheel tag a CPython of the target accepts."""
    major, minor = (int(p) for p in target.python.split(".")[:2])
    platforms = _platforms(target.platform) if target.platform else list(tags.platform_tags())
    found = set(tags.cpython_tags((major, minor), platforms=platforms))
    found |= set(tags.compatible_tags((major, minor), f"cp{major}{minor}", platforms))
    return frozenset(found)


def parse_pins(text: str) -> list[str]:
    """The requirement lines of `uv pip compile` output (comments and annotations dropped)."""
    pins = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            pins.append(line)
    return pins


def _pin(line: str) -> tuple[str, str] | None:
    match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)(?:\s*;.*)?",
                         line)
    return (canonicalize_name(match.group(1)), canonicalize_version(match.group(2))
            ) if match else None


def uncovered(pins: Iterable[str], wheels: Iterable[Path], target: Target) -> list[str]:
    """The pins no wheel in `wheels` installs on the target (a pin that is not `name==v`,
    a URL or VCS requirement, counts as uncovered: it needs the network)."""
    accepted = target_tags(target)
    have: set[tuple[str, str]] = set()
    for wheel in wheels:
        try:
            name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            continue
        if wheel_tags & accepted:
            have.add((canonicalize_name(name), canonicalize_version(str(version))))
    return [line for line in pins if _pin(line) not in have]


def resolve_argv(uv: str, requirements: Path, target: Target, sources: list[str]) -> list[str]:
    """uv resolving `requirements` for the target, markers evaluated for it."""
    argv = [uv, "pip", "compile", str(requirements), "--quiet", "--no-header", "--no-annotate",
            "--python-version", target.python]
    if target.platform:
        argv += ["--python-platform", uv_platform(target.platform)]
    return argv + sources


def download_argv(pip: list[str], dest: Path, pins: Path, target: Target) -> list[str]:
    """pip downloading exactly the pinned wheels for the target (no resolution of its own)."""
    argv = [*pip, "download", "--disable-pip-version-check", "--no-deps", "--only-binary",
            ":all:", "--python-version", target.python, "--dest", str(dest), "-r", str(pins)]
    for platform in _platforms(target.platform) if target.platform else []:
        argv += ["--platform", platform]
    return argv


NO_WHEEL = (re.compile(r"No matching distribution found for (\S+)"),  # pip
            re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:[<>=!~][^ ]*)? has no wheels with a "
                       r"matching platform tag"),  # uv
            re.compile(r"Wheels are available for `([^`]+)` \(v[^)]*\) on the following "
                       r"platforms"))  # uv's hint


def no_wheel_for(stderr: str) -> list[str]:
    """The requirements pip or uv found no wheel of for the target, from their message."""
    found: list[str] = []
    for pattern in NO_WHEEL:
        found += [name for name in pattern.findall(stderr) if name not in found]
    return found
