"""Facts for the audit trail: git state, host, user, tool versions, file hashes."""

from __future__ import annotations

import getpass
import platform
import socket
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from mlops_tasks.base import command
from mlops_tasks.base.errors import CommandFailed
from mlops_tasks.base.redact import redact
from mlops_tasks.project.fingerprint import content_hash
from mlops_tasks.project.spec import input_skip


def untracked_of(porcelain: str) -> list[str]:
    """Untracked paths in `git status --porcelain -z` output. Pure."""
    entries = [e for e in porcelain.split("\0") if e]
    return sorted(e[3:] for e in entries if e.startswith("?? "))


def git_info(root: Path, depends: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Commit, branch, dirty flag and diff of the project's work tree ('no-git' outside one).
    Dirty: any tracked file modified, or any of `depends` (the files a run depends on: its
    notebook, spec, inputs, ...) modified or not under version control; those untracked
    files are listed, so they can be kept with the run."""
    try:
        sha = command.output(["git", "rev-parse", "HEAD"], cwd=root)
    except CommandFailed:
        return {"sha": "no-git", "branch": "", "dirty": False, "diff": "", "untracked": []}
    try:
        branch = command.output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root)
        status = command.output(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root)
        mine = command.run(["git", "status", "--porcelain", "-z", "--untracked-files=all",
                            "--", *depends], cwd=root, echo=False) if depends else ""
        diff = command.run(["git", "diff", "HEAD"], cwd=root, echo=False) if status else ""
    except CommandFailed:
        branch, status, mine, diff = "", "", "", ""
    untracked = untracked_of(mine)
    return {"sha": sha, "branch": branch, "dirty": bool(status or mine.strip("\0")),
            "diff": redact(diff), "untracked": untracked}


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


def content_hashes(root: Path, paths: list[str] | tuple[str, ...]) -> dict[str, str | None]:
    """sha256 of each project file; None for one that does not exist."""
    out: dict[str, str | None] = {}
    for rel in paths:
        path = root / rel
        out[rel] = content_hash(path, input_skip(rel))  # an input folder's outputs: out
    return out
