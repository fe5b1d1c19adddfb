"""Project settings from pyproject.toml's [tool.mlops_tasks] table."""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .layout import mlflow_db

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

INSTALLERS = ("uv", "pip")
INDEX_POLICIES = ("offline-first", "offline", "online")
KEYS = ("tracking_uri", "experiment", "installer", "index_policy", "wheels_cache",
        "specs_dir", "artifact_max_mb", "workspace_busy", "stage_cache",
        "cache_across_platforms")
BUSY = ("wait", "fail")
STAGE_CACHE = ("read-write", "read", "off")


@dataclass(frozen=True)
class Config:
    root: Path
    tracking_uri: str = ""
    experiment: str = ""
    installer: str = "uv"
    index_policy: str = "offline-first"
    wheels_cache: str = "wheels_cache"
    specs_dir: str = "env_specs"
    artifact_max_mb: float = 50.0
    workspace_busy: str = "wait"
    stage_cache: str = "read-write"
    cache_across_platforms: bool = False
    profile: str = ""  # MLOPS_PROFILE: a smoke run and the like, in a scratch tree (profiles.py)

    def resolved_tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI wins, then the config, then the local sqlite store."""
        uri = os.environ.get("MLFLOW_TRACKING_URI") or self.tracking_uri
        if uri:
            return uri
        return "sqlite:///" + (self.root / mlflow_db()).as_posix()

    def experiment_name(self) -> str:
        """The experiment; a profile's runs (MLOPS_PROFILE) go to their own, `<name>-<profile>`."""
        base = self.experiment or self.root.name
        return f"{base}-{self.profile}" if self.profile else base


def read_pyproject(root: Path) -> dict[str, Any]:
    """The project's pyproject.toml as data ({} when there is none)."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def load_config(root: Path) -> Config:
    path = root / "pyproject.toml"
    data = read_pyproject(root)
    table: dict[str, object] = data.get("tool", {}).get("mlops_tasks", {}) or {}
    project_name = str(data.get("project", {}).get("name", ""))
    for key in table:
        if key not in KEYS:
            match = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise ConfigError(f"{path}: [tool.mlops_tasks] unknown key '{key}'{hint}; valid "
                              f"keys: {', '.join(KEYS)}")
    installer = str(table.get("installer", "uv"))
    if installer not in INSTALLERS:
        raise ConfigError(f"{path}: [tool.mlops_tasks] installer must be one of "
                          f"{', '.join(INSTALLERS)}; got {installer!r}")
    policy = str(table.get("index_policy", "offline-first"))
    if policy not in INDEX_POLICIES:
        raise ConfigError(f"{path}: [tool.mlops_tasks] index_policy must be one of "
                          f"{', '.join(INDEX_POLICIES)}; got {policy!r}")
    max_mb = table.get("artifact_max_mb", 50.0)
    if isinstance(max_mb, bool) or not isinstance(max_mb, int | float) or max_mb < 0:
        raise ConfigError(f"{path}: [tool.mlops_tasks] artifact_max_mb must be a number of "
                          f"megabytes; got {max_mb!r}")
    busy = os.environ.get("MLOPS_WORKSPACE_BUSY") or str(table.get("workspace_busy", "wait"))
    if busy not in BUSY:
        raise ConfigError(f"{path}: workspace_busy (or MLOPS_WORKSPACE_BUSY) must be one of "
                          f"{', '.join(BUSY)}; got {busy!r}")
    cache = os.environ.get("MLOPS_STAGE_CACHE") or str(table.get("stage_cache", "read-write"))
    if cache not in STAGE_CACHE:
        raise ConfigError(f"{path}: stage_cache (or MLOPS_STAGE_CACHE) must be one of "
                          f"{', '.join(STAGE_CACHE)}; got {cache!r}")
    across = table.get("cache_across_platforms", False)
    if not isinstance(across, bool):
        raise ConfigError(f"{path}: [tool.mlops_tasks] cache_across_platforms must be true or "
                          f"false; got {across!r}")
    return Config(
        root=root,
        tracking_uri=str(table.get("tracking_uri", "") or ""),
        experiment=str(table.get("experiment", "") or project_name),
        installer=installer,
        index_policy=policy,
        wheels_cache=str(table.get("wheels_cache", "wheels_cache")),
        specs_dir=str(table.get("specs_dir", "env_specs")),
        artifact_max_mb=float(max_mb),
        workspace_busy=busy,
        stage_cache=cache,
        cache_across_platforms=across,
        profile=os.environ.get("MLOPS_PROFILE", ""),
    )
