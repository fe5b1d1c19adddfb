"""Facts for the audit trail: git state, host, user, tool versions, file hashes."""

from __future__ import annotations

import getpass
import platform
import re
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from . import command
from .errors import CommandFailed
from .fingerprint import sha256_file

SECRET_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(:[^/@\s]*)?@")


def redact(text: str) -> str:
    """Hide credentials in URLs (https://user:token@host -> https://***@host)."""
    return SECRET_URL.sub(lambda m: m.group("scheme") + "***@", text)


def redacted_copy(source: Path, target: Path) -> Path:
    """A copy of a text file with credentials in URLs hidden."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(redact(source.read_text(encoding="utf-8")), encoding="utf-8")
    return target


def redact_data(value: Any) -> Any:
    """redact() applied to every string in a nested structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def git_info(root: Path) -> dict[str, Any]:
    """Commit, branch, dirty flag and diff of the project's work tree ('no-git' outside one)."""
    try:
        sha = command.output(["git", "rev-parse", "HEAD"], cwd=root)
    except CommandFailed:
        return {"sha": "no-git", "branch": "", "dirty": False, "diff": ""}
    try:
        branch = command.output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root)
        status = command.output(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root)
        diff = command.run(["git", "diff", "HEAD"], cwd=root, echo=False) if status else ""
    except CommandFailed:
        branch, status, diff = "", "", ""
    return {"sha": sha, "branch": branch, "dirty": bool(status), "diff": redact(diff)}


def tool_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for dist in ("mlops-tasks", "doit", "papermill", "mlflow", "uv"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def host_info() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"host": socket.gethostname(), "user": user, "platform": platform.platform()}


def file_hashes(root: Path, paths: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """sha256 of each project file; None for one that does not exist."""
    out: dict[str, str | None] = {}
    for rel in paths:
        path = root / rel
        out[rel] = sha256_file(path) if path.is_file() else None
    return out
