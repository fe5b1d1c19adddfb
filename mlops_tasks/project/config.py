"""Project settings from pyproject.toml's [tool.mlops_tasks] table."""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_tasks.base.errors import ConfigError
from mlops_tasks.project.layout import mlflow_db

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

INSTALLERS = ("uv", "pip")
INDEX_POLICIES = ("offline-first", "offline", "online")
KEYS = ("tracking_uri", "experiment", "installer", "index_policy", "wheels_cache",
        "specs_dir", "artifact_max_mb", "workspace_busy", "stage_cache",
        "cache_across_platforms", "orchestrator", "cache_trusted_producers", "boot_ahead")
BUSY = ("wait", "fail")
STAGE_CACHE = ("read-write", "read", "off")


@dataclass(frozen=True)
class Orchestrator:
    """Where CI installs mlops-tasks from (`orchestrator` in [tool.mlops_tasks]): `kind` is
    "self" (this project is mlops-tasks' own source tree: `pip install -e .`), "wheel" (a
    wheel file inside the project), "vcs" (a VCS URL pinned to a commit) or "index" (an exact
    version from a named internal index). Never a bare name resolved on a public index."""

    kind: str
    requirement: str  # what pip installs: "-e .", a wheel path, a VCS URL, mlops-tasks==X
    index_url: str = ""  # "index" only: the index that replaces the public one

    def setting(self) -> str:
        """The value of `orchestrator` that names this source."""
        if self.kind == "self":
            return "self"
        return self.requirement + (f" --index-url {self.index_url}" if self.index_url else "")

    def describe(self) -> str:
        """One line for a CI file's comment: where the tool comes from."""
        return {"self": "this project itself (its own source tree, pip install -e .)",
                "wheel": f"the wheel {self.requirement}, committed with the project",
                "vcs": f"{self.requirement} (a pinned commit)",
                "index": f"{self.requirement} from {self.index_url} only"}[self.kind]


# Characters a CI step may carry inside double quotes in sh and in cmd: no quoting, no
# expansion ($, %, `), no spaces.
SAFE_ARG = re.compile(r"[A-Za-z0-9._~:/@+=,#-]+")
ORCHESTRATOR_FORMS = (
    '"self" (this project is the mlops-tasks source tree), '
    '"wheels_cache/mlops_tasks-0.1.0-py3-none-any.whl" (a wheel inside the project), '
    '"git+https://host/org/mlops-tasks.git@<40-hex commit>" (a VCS URL pinned to a commit) or '
    '"mlops-tasks==0.1.0 --index-url https://pypi.internal.example/simple" (a pinned version '
    'from an internal index)')
PUBLIC_INDEX_HOSTS = ("pypi.org", "pypi.python.org", "files.pythonhosted.org")


def _orchestrator_kind(value: str) -> Orchestrator | str:
    """The source `value` names, or why it names none. Pure."""
    parts = value.split()
    if value == "self":
        return Orchestrator("self", "-e .")
    if len(parts) == 3 and parts[1] == "--index-url":
        requirement, url = parts[0], parts[2]
        if not re.fullmatch(r"mlops-tasks==[0-9][A-Za-z0-9.+!-]*", requirement):
            return "an internal index needs an exact version: mlops-tasks==<version>"
        if not re.fullmatch(r"https?://[^/\s]+/\S*", url) or not SAFE_ARG.fullmatch(url):
            return f"{url!r} is not an http(s) index URL"
        if url.split("/")[2].split("@")[-1].split(":")[0].lower() in PUBLIC_INDEX_HOSTS:
            return ("the public index is where anyone can register the name; name an index "
                    "your organisation controls")
        return Orchestrator("index", requirement, url)
    if len(parts) != 1 or not SAFE_ARG.fullmatch(value):
        return "it has spaces, quotes or shell characters ($, %, `)"
    if value.startswith(("git+", "hg+", "svn+", "bzr+")):
        if not re.search(r"@[0-9a-f]{40}(#.*)?$", value):
            return "a VCS URL must end with @<the full 40-hex commit> (a branch or tag moves)"
        return Orchestrator("vcs", value)
    if value.endswith(".whl"):
        if value.startswith("/") or re.match(r"[A-Za-z]:", value) or ".." in value.split("/"):
            return "a wheel path must be relative to the project root and stay inside it"
        if not re.match(r"mlops_tasks-[^-]+-", value.rsplit("/", 1)[-1]):
            return "the wheel must be mlops-tasks' own (mlops_tasks-<version>-...whl)"
        return Orchestrator("wheel", value)
    return ("a bare name or path is resolved on whatever index the agent uses, where anyone "
            "can publish the name")


def parse_orchestrator(path: Path, value: object, project_name: str) -> Orchestrator:
    """The `orchestrator` setting, or a ConfigError naming the file, the key and the fix."""
    found = _orchestrator_kind(value) if isinstance(value, str) else "it is not a string"
    if isinstance(found, Orchestrator) and found.kind == "self" and project_name != "mlops-tasks":
        found = (f'"self" is for mlops-tasks\' own source tree, and [project] name here is '
                 f"{project_name or 'missing'!r} (a pipeline project is not a Python package)")
    if isinstance(found, Orchestrator):
        return found
    raise ConfigError(f"{path}: [tool.mlops_tasks] orchestrator = {value!r}: {found}. "
                      f"Expected one of: {ORCHESTRATOR_FORMS}. Fix: set it to where your CI "
                      "should install mlops-tasks from (`mlops-tasks init` in the project "
                      "folder writes the installed tool's wheel to wheels_cache/ and prints "
                      "the line)")


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
    # signers whose stage-cache entries are restored (with MLOPS_CACHE_KEY); empty: any
    cache_trusted_producers: tuple[str, ...] = ()
    orchestrator: Orchestrator | None = None  # where CI installs mlops-tasks from
    boot_ahead: bool = True  # the next stage's kernel boots while a stage runs (run/kernels.py)
    profile: str = ""  # MLOPS_PROFILE: a smoke run in a scratch tree (pipeline/profiles.py)

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


def trusted_producers(path: Path, value: object) -> tuple[str, ...]:
    """`cache_trusted_producers`: the names (MLOPS_CACHE_SIGNER, or the host) whose signed
    stage-cache entries are restored."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{path}: [tool.mlops_tasks] cache_trusted_producers must be a list "
                          f'of signer names, e.g. ["ci-agent-1", "ci-agent-2"]; got {value!r}')
    return tuple(value)


def boot_ahead(path: Path, value: object, env: str | None) -> bool:
    """The `boot_ahead` setting, MLOPS_BOOT_AHEAD (1/0, true/false) overriding it."""
    if env:
        if env.strip().lower() not in ("1", "0", "true", "false"):
            raise ConfigError(f"MLOPS_BOOT_AHEAD must be 1 or 0 (true or false); got {env!r}")
        return env.strip().lower() in ("1", "true")
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: [tool.mlops_tasks] boot_ahead must be true or false; got "
                          f"{value!r}")
    return value


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
    ahead = boot_ahead(path, table.get("boot_ahead", True), os.environ.get("MLOPS_BOOT_AHEAD"))
    orchestrator = table.get("orchestrator")
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
        cache_trusted_producers=trusted_producers(path, table.get("cache_trusted_producers", [])),
        orchestrator=None if orchestrator is None else parse_orchestrator(
            path, orchestrator, project_name),
        profile=os.environ.get("MLOPS_PROFILE", ""), boot_ahead=ahead,
    )
