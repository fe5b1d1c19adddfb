"""Credential redaction for everything that is printed, logged or uploaded. A leaf: it
imports nothing of the package, so every layer may use it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# The user part of a URL: after `scheme://`, up to the last `@` before the next `/` or
# whitespace (a password may hold an `@`, the user may be empty). The match starts at `://`,
# never at the scheme, and the user part cannot cross a `/`: each character is scanned a
# bounded number of times, so a line of any length takes linear time.
SECRET_URL = re.compile(r"(?<=[A-Za-z0-9+.-])://[^/\s]+@")


def redact(text: str) -> str:
    """Hide credentials in URLs (https://user:token@host -> https://***@host)."""
    return SECRET_URL.sub("://***@", text) if "://" in text else text


def redact_data(value: Any) -> Any:
    """redact() applied to every string in a nested structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def redacted_copy(source: Path, target: Path) -> Path:
    """A copy of a text file with credentials in URLs hidden."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(redact(source.read_text(encoding="utf-8")), encoding="utf-8")
    return target
