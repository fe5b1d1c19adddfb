"""Parse and validate one stage spec (env_specs/*.yaml). Pure: text in, Stage out."""

from __future__ import annotations

import datetime
import difflib
import keyword
import posixpath
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlops_tasks.base.doit_names import RESERVED_NAMES
from mlops_tasks.base.errors import SpecError
from mlops_tasks.base.redact import redact

KNOWN_KEYS = (
    "name", "python_exe", "python", "env_dir", "kernel_name", "notebook", "packages",
    "parameters", "inputs", "outputs", "depends_on", "metrics", "timeout", "notes",
    "allow_early_exit", "cache", "matrix", "profiles", "workdir", "env", "environment",
)  # fmt: skip
# what a shared environment (`environment:`) defines, so a spec using one gives none of them
ENVIRONMENT_KEYS = ("python", "python_exe", "packages", "env_dir", "kernel_name")

# libyaml's loader when PyYAML has it (ten times faster on many specs); both keep marks.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
KERNEL_RE = re.compile(r"^[A-Za-z0-9._-]+$")
VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")
REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Warning_:
    """Something dropped or odd in a spec that does not stop the build."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: warning: {self.message}"


class InputPath(str):
    """An input's project-relative path that also knows the declared outputs inside it (an
    input folder the pipeline writes into): `skip`, relative to the input, is left out of
    its content hash, so the stage's own results never make it stale. Equal to, and stored
    as, its plain path."""

    skip: tuple[str, ...]

    def __new__(cls, path: str, skip: tuple[str, ...] = ()) -> InputPath:
        made = super().__new__(cls, path)
        made.skip = skip
        return made


def input_skip(rel: str) -> tuple[str, ...]:
    """What an input's content hash leaves out (nothing for a plain path)."""
    return getattr(rel, "skip", ())


@dataclass(frozen=True)
class Stage:
    """One validated stage. Paths are relative to the project root, POSIX style."""

    name: str
    spec_path: str
    notebook: str
    env_dir: str
    kernel_name: str
    python: str | None = None
    python_exe: str | None = None
    packages: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=dict, hash=False)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    timeout: float | None = None
    notes: str | None = None
    allow_early_exit: bool = False
    cache: bool = True  # false: never restored from, nor offered to, the shared stage cache
    matrix: Mapping[str, tuple[Any, ...]] = field(default_factory=dict, hash=False)
    group: str | None = None  # the spec's name, for a stage expanded from a matrix
    env_of: str | None = None  # the stage whose venv and kernel tasks build the shared env
    # profile name -> parameter overrides for runs under that profile (MLOPS_PROFILE)
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    # the notebook's working folder, project-relative ("." the root; see _workdir)
    workdir: str = "."
    env: Mapping[str, str] = field(default_factory=dict, hash=False)  # the kernel's variables
    environment: str | None = None  # a shared environment's name (project/environments.py)
    lines: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    warnings: tuple[Warning_, ...] = field(default=(), compare=False)

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key)

    @property
    def written(self) -> tuple[str, ...]:
        """Every path the notebook writes: its outputs, then its metrics files."""
        return (*self.outputs, *self.metrics)


def normalise_req_name(name: str) -> str:
    """PEP 503 normalisation: 'Scikit_Learn' -> 'scikit-learn' (packaging's, as everywhere;
    imported when first needed: packaging.utils costs `doit list` 20 ms)."""
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def clean_requirement(raw: str) -> str:
    """Strip comments, an empty marker (`pkg ;`) and surrounding space from a requirement."""
    text = raw.split(" #", 1)[0].strip()
    if text.startswith("#"):
        return ""
    if ";" in text:
        req, marker = text.split(";", 1)
        text = req.strip() if not marker.strip() else f"{req.strip()}; {marker.strip()}"
    return text


def requirement_name(req: str) -> str | None:
    match = REQ_NAME_RE.match(req)
    return match.group(1) if match else None


def requirement_problem(req: str) -> str:
    """Why req is not a valid PEP 508 requirement ('' when it is)."""
    if requirement_name(req) is None:
        return "it does not start with a package name"
    if req.startswith(("-", "git+", "http:", "https:", "file:")):
        return ""  # pip options and URLs are passed to the installer as they are
    from packaging.requirements import InvalidRequirement, Requirement  # 25 ms: when needed

    try:
        Requirement(req)
    except InvalidRequirement as err:
        return str(err).splitlines()[0]
    return ""


def requirement_fix(req: str) -> str:
    name = requirement_name(req) or "pandas"
    rest = req[len(name):].strip()
    if rest.startswith("=") and not rest.startswith("=="):
        return f"use '==' for an exact version: {name}=={rest.lstrip('=').strip()}"
    return "write it as pip would take it, such as pandas>=2.0 or pandas==2.2.3"


def is_stdlib_only(req: str) -> bool:
    """A bare name that is a standard-library module (the seed lists `warnings`)."""
    name = requirement_name(req)
    if name is None or req.split(";")[0].strip() != name:
        return False
    return name in sys.stdlib_module_names and name not in {"pip", "setuptools"}


def closest_hint(word: str, options: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def project_path(value: str) -> str | None:
    """Normalise a project-relative path; None when it is absolute or leaves the project."""
    text = value.replace("\\", "/").strip()
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


# A spec's values, with aliases expanded, may hold this many YAML nodes: a "billion laughs"
# file (aliases of aliases) is refused before anything expands it.
MAX_NODES = 100_000
BOMS = (("utf-8-sig", b"\xef\xbb\xbf"), ("utf-16", b"\xff\xfe"), ("utf-16", b"\xfe\xff"))


def decode_spec(raw: bytes, path: str) -> str:
    """A spec's text: UTF-8 with or without a BOM, or UTF-16 with its BOM (what Windows
    editors and PowerShell's `>` write). Anything else is refused with the byte offset."""
    for encoding, bom in BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as err:
                raise SpecError(path, f"byte {err.start}: not valid {encoding.upper()} after "
                                "its byte-order mark; save the file as UTF-8") from None
    if b"\x00" in raw:  # no YAML text has NUL bytes: UTF-16 (or 32) without its BOM
        offset = raw.index(b"\x00")
        raise SpecError(path, f"byte {offset} is a NUL byte: the file looks like UTF-16 "
                        "without a byte-order mark; save it as UTF-8",
                        line=raw[:offset].count(b"\n") + 1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise SpecError(path, f"byte {err.start} ({raw[err.start:err.start + 1]!r}) is not "
                        "UTF-8 (a file saved as cp1252 or Latin-1?); save it as UTF-8",
                        line=line) from None


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes the value holds once aliases are expanded, counting up to limit."""
    count, stack = 0, [node]
    while stack and count <= limit:
        current = stack.pop()
        count += 1
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.extend((key, value))
    return count


def compose(text: str, path: str) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """Load a YAML mapping with a safe loader, keeping each key's line and scalar text."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError(path, "the file is empty; a stage spec needs at least 'name' and "
                            "'notebook'")
        if not isinstance(node, yaml.MappingNode):
            raise SpecError(path, "a stage spec must be a mapping of keys to values "
                            "(name: ..., notebook: ...)", line=node.start_mark.line + 1)
        data: dict[str, Any] = {}
        lines: dict[str, int] = {}
        raw: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise SpecError(path, f"keys must be strings; got {key!r}", line=line)
            if key in data:
                raise SpecError(path, f"'{key}' is given twice (first on line {lines[key]}); "
                                "keep one", line=line, key=key)
            if _expanded_size(value_node, MAX_NODES) > MAX_NODES:
                raise SpecError(path, f"'{key}' expands to more than {MAX_NODES:,} values "
                                "(aliases of aliases?); write the values out or shorten them",
                                line=line, key=key)
            data[key] = loader.construct_object(value_node, deep=True)
            lines[key] = line
            raw[key] = value_node.value if isinstance(value_node, yaml.ScalarNode) else None
        return data, lines, raw
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(path, f"invalid YAML: {problem}", line=line) from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class RawSpec:
    """One loaded spec: its values, each key's line and scalar text, and where it came from."""

    path: str
    data: dict[str, Any]
    lines: dict[str, int]
    text: dict[str, Any]

    def fail(self, key: str | None, message: str) -> SpecError:
        return SpecError(self.path, message, line=self.lines.get(key) if key else None, key=key)


def _str_list(spec: RawSpec, key: str) -> list[str]:
    value = spec.data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise spec.fail(key, f"'{key}' must be a list of strings; got {value!r}")
    return value


def _paths(spec: RawSpec, key: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in _str_list(spec, key):
        norm = project_path(item)
        if norm is None:
            raise spec.fail(key, f"'{key}' entry {item!r} leaves the project; use a path "
                            "relative to the project root, such as data/raw.csv")
        if norm in out:
            raise spec.fail(key, f"'{key}' lists {item!r} twice")
        out.append(norm)
    return tuple(out)


def _check_keys(spec: RawSpec) -> None:
    for key in spec.data:
        if key not in KNOWN_KEYS:
            raise spec.fail(key, f"unknown key '{key}'{closest_hint(key, KNOWN_KEYS)}; valid keys: "
                            f"{', '.join(KNOWN_KEYS)}")
    for key in ("name", "notebook"):
        if key not in spec.data or spec.data[key] in (None, ""):
            raise spec.fail(key, f"'{key}' is required")


def _name(spec: RawSpec) -> str:
    name = spec.data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise spec.fail("name", f"'name' must use only a-z, 0-9, '_' and '-'; got {name!r}")
    if name in RESERVED_NAMES:
        raise spec.fail("name", f"'name' {name!r} is a doit command or task prefix, so "
                        f"`doit {name}` would be ambiguous; rename the stage (e.g. "
                        f"'{name}_stage')")
    return name


def read_python(spec: RawSpec) -> tuple[str | None, str | None]:
    """The version request and the explicit interpreter; at most one of them."""
    python = spec.data.get("python")
    if python is not None:
        if isinstance(python, bool) or not isinstance(python, str | int | float):
            raise spec.fail("python", f"'python' must be a version string like \"3.10\"; got "
                            f"{python!r}")
        if not isinstance(python, str):
            text_value = spec.text.get("python") or str(python)
            raise spec.fail("python", f"'python' must be a string like \"{text_value}\"; got "
                            f"the number {python!r} — quote it: python: \"{text_value}\"")
        if not VERSION_RE.match(python.strip()):
            raise spec.fail("python", f"'python' must look like \"3.10\" or \"3.11.7\"; got "
                            f"{python!r}")
        python = python.strip()
    python_exe = spec.data.get("python_exe")
    if python_exe is not None and (not isinstance(python_exe, str) or not python_exe.strip()):
        raise spec.fail("python_exe", f"'python_exe' must be a path to a python executable; "
                        f"got {python_exe!r}")
    if python and python_exe:
        raise spec.fail("python", "give either 'python' (a version) or 'python_exe' (a path), "
                        "not both")
    return python, python_exe.strip() if python_exe else None


def _notebook(spec: RawSpec, exists: Any) -> str:
    raw = spec.data["notebook"]
    notebook = project_path(raw) if isinstance(raw, str) else None
    if notebook is None:
        raise spec.fail("notebook", f"'notebook' must be a path inside the project, such as "
                        f"notebooks/03-train.ipynb; got {raw!r}")
    if not notebook.endswith(".ipynb"):
        raise spec.fail("notebook", f"'notebook' must be a .ipynb file; got {raw!r}")
    if exists is not None and not exists(notebook):
        raise spec.fail("notebook", f"notebook {notebook!r} does not exist; create it or fix "
                        "the path (relative to the project root)")
    return notebook


def _env_dir(spec: RawSpec, name: str) -> str:
    raw = spec.data.get("env_dir", f".venvs/{name}")
    env_dir = project_path(raw) if isinstance(raw, str) else None
    if env_dir is None or env_dir == ".":
        raise spec.fail("env_dir", f"'env_dir' must be a folder inside the project, such as "
                        f".venvs/{name}; got {raw!r}")
    return env_dir


def _kernel_name(spec: RawSpec, name: str) -> str:
    kernel_name = spec.data.get("kernel_name", f"mlops-{name}")
    if not isinstance(kernel_name, str) or not KERNEL_RE.match(kernel_name):
        raise spec.fail("kernel_name", f"'kernel_name' may use letters, digits, '.', '_' and "
                        f"'-'; got {kernel_name!r}")
    return kernel_name


def read_packages(spec: RawSpec) -> tuple[list[str], list[Warning_]]:
    warnings: list[Warning_] = []
    packages: list[str] = []
    for item in _str_list(spec, "packages"):
        req = clean_requirement(item)
        if not req:
            continue
        if is_stdlib_only(req):
            warnings.append(Warning_(spec.path, spec.lines.get("packages"), f"'{req}' is a "
                                     "standard-library module, not a package; dropped from "
                                     "'packages'"))
            continue
        problem = requirement_problem(req)
        if problem:
            raise spec.fail("packages", f"'packages' entry {item!r} is not a pip requirement "
                            f"({problem}); {requirement_fix(req)}")
        packages.append(req)
    return packages, warnings


def _plain(value: Any) -> Any:
    """YAML dates and times (`cutoff: 2024-01-01`) reach the notebook as ISO 8601 strings;
    everything else as YAML read it."""
    if isinstance(value, datetime.date):  # datetime.datetime included
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _matrix(spec: RawSpec) -> dict[str, tuple[Any, ...]]:
    """`matrix`: parameter name -> the values to run the notebook with (one stage per
    combination; see project/matrix.py)."""
    raw = _plain(spec.data.get("matrix") or {})
    if not isinstance(raw, dict):
        raise spec.fail("matrix", "'matrix' must be a mapping of parameter name to a list of "
                        f"values, e.g. matrix: {{model: [rf, svm]}}; got {raw!r}")
    out: dict[str, tuple[Any, ...]] = {}
    for pname, values in raw.items():
        if not isinstance(pname, str) or not pname.isidentifier() or keyword.iskeyword(pname):
            raise spec.fail("matrix", f"matrix parameter {pname!r} is not a Python identifier; "
                            "use letters, digits and '_'")
        if not isinstance(values, list) or not values:
            raise spec.fail("matrix", f"matrix parameter '{pname}' needs a non-empty list of "
                            f"values; got {values!r}")
        out[pname] = tuple(values)
    return out


def _profiles(spec: RawSpec) -> dict[str, dict[str, Any]]:
    """`profiles`: name -> {parameters: {...}}, the overrides of a smoke run and the like."""
    raw = _plain(spec.data.get("profiles") or {})
    fix = "e.g. profiles: {smoke: {parameters: {n_rows: 200}}}"
    if not isinstance(raw, dict):
        raise spec.fail("profiles", f"'profiles' must be a mapping of profile name to "
                        f"overrides, {fix}; got {raw!r}")
    out: dict[str, dict[str, Any]] = {}
    for pname, body in raw.items():
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            raise spec.fail("profiles", f"profile name {pname!r} must use lowercase letters, "
                            "digits, '_' and '-'")
        if not isinstance(body, dict) or set(body) - {"parameters"} or \
                not isinstance(body.get("parameters", {}), dict):
            raise spec.fail("profiles", f"profile '{pname}' must hold only 'parameters', a "
                            f"mapping, {fix}; got {body!r}")
        out[pname] = dict(body.get("parameters") or {})
    return out


def _parameters(spec: RawSpec) -> dict[str, Any]:
    params = _plain(spec.data.get("parameters") or {})
    if not isinstance(params, dict):
        raise spec.fail("parameters", f"'parameters' must be a mapping of name: value; got "
                        f"{params!r}")
    for pname in params:
        if not isinstance(pname, str) or not pname.isidentifier() or keyword.iskeyword(pname):
            raise spec.fail("parameters", f"parameter name {pname!r} is not a Python "
                            "identifier, so papermill cannot inject it; use letters, digits "
                            "and '_' (e.g. n_estimators)")
    return params


def _timeout(spec: RawSpec) -> float | None:
    timeout = spec.data.get("timeout")
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise spec.fail("timeout", f"'timeout' must be a positive number of seconds per cell; "
                        f"got {timeout!r}")
    return float(timeout)


def _flag(spec: RawSpec, key: str, default: bool = False) -> bool:
    value = spec.data.get(key, default)
    if not isinstance(value, bool):
        raise spec.fail(key, f"'{key}' must be true or false; got {value!r}")
    return value


def _written(spec: RawSpec, notebook: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The declared outputs and metrics files; never the stage's own notebook."""
    outputs, metrics = _paths(spec, "outputs"), _paths(spec, "metrics")
    for key, group in (("outputs", outputs), ("metrics", metrics)):
        if notebook in group:
            raise spec.fail(key, f"'{key}' lists the stage's own notebook")
    return outputs, metrics


def _workdir(spec: RawSpec, notebook: str, exists: Any) -> str:
    """`workdir`: the folder the notebook runs in, inside the project; `notebook`: the
    notebook's own folder. Declared inputs and outputs stay relative to the project root."""
    raw = spec.data.get("workdir")
    if raw is None:
        return "."
    if raw == "notebook":
        return posixpath.dirname(notebook) or "."
    folder = project_path(raw) if isinstance(raw, str) else None
    if folder is None:
        raise spec.fail("workdir", f"'workdir' must be a folder inside the project (relative "
                        f"to its root, such as src) or the word notebook (the notebook's own "
                        f"folder); got {raw!r}")
    if exists is not None and folder != "." and not exists(folder + "/"):
        raise spec.fail("workdir", f"'workdir' folder {folder!r} does not exist; create it, "
                        "fix the path (relative to the project root) or write workdir: "
                        "notebook")
    return folder


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# the kernel's variables the tool sets itself: a stage never overrides them
TOOL_ENV = frozenset({
    "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "PATH", "VIRTUAL_ENV", "PYTHONHOME",
    "PYTHONPATH",
})


def _env_problem(name: Any, value: Any) -> str:
    """Why one `env` entry is refused ('' when it is taken). Pure."""
    if not isinstance(name, str) or not ENV_NAME_RE.match(name):
        return (f"variable name {name!r} is not a valid environment variable name; use "
                "letters, digits and '_', not starting with a digit")
    if name.upper() in TOOL_ENV or name.upper().startswith("MLOPS_"):
        return (f"'{name}' is set by mlops-tasks itself for the stage's kernel (its MLflow "
                "run, its venv, its hooks) and cannot be overridden; remove it from 'env'")
    if not isinstance(value, str):
        shown = "true or false" if isinstance(value, bool) else f"{value!r}"
        return (f"'{name}' must be a string; got {shown} — quote it: {name}: \"{value}\"")
    return ""


def _env(spec: RawSpec) -> dict[str, str]:
    """`env`: NAME: "value" pairs put in the kernel's environment (part of the stage key)."""
    raw = spec.data.get("env") or {}
    if not isinstance(raw, dict):
        raise spec.fail("env", f"'env' must be a mapping of NAME: \"value\", e.g. env: "
                        f"{{OMP_NUM_THREADS: \"4\"}}; got {raw!r}")
    for name, value in raw.items():
        problem = _env_problem(name, value)
        if problem:
            raise spec.fail("env", problem)
    return dict(raw)


def _environment(spec: RawSpec) -> str | None:
    """`environment`: a shared environment's name (env_specs/environments/<name>.yaml gives
    the Python, packages, venv and kernel), so the spec gives none of those itself."""
    raw = spec.data.get("environment")
    if raw is None:
        return None
    if not isinstance(raw, str) or not NAME_RE.match(raw):
        raise spec.fail("environment", "'environment' must name a file of environments/ "
                        "beside the specs (a-z, 0-9, '_' and '-'), such as environment: base; "
                        f"got {raw!r}")
    for key in ENVIRONMENT_KEYS:
        if key in spec.data:
            raise spec.fail(key, f"'{key}' and 'environment' (line "
                            f"{spec.lines['environment']}) are both given; the environment "
                            f"'{raw}' defines the Python, packages, venv and kernel: remove "
                            f"'{key}' (or remove 'environment' to give this stage its own)")
    return raw


def parse_stage(text: str, path: str, exists: Any = None) -> Stage:
    """Validate one spec. `exists(relpath) -> bool` checks project files (None: skip).
    An error quotes what the spec says, with the credentials of any URL in it hidden."""
    try:
        return _parse_stage(text, path, exists)
    except SpecError as err:
        err.args = (redact(str(err)),)
        raise


def _parse_stage(text: str, path: str, exists: Any) -> Stage:
    spec = RawSpec(path, *compose(text, path))
    _check_keys(spec)
    name = _name(spec)
    environment = _environment(spec)  # first: a key it excludes is reported as such
    python, python_exe = read_python(spec)
    notebook = _notebook(spec, exists)
    packages, warnings = read_packages(spec)
    outputs, metrics = _written(spec, notebook)
    notes = spec.data.get("notes")
    return Stage(
        name=name, spec_path=path, notebook=notebook, env_dir=_env_dir(spec, name),
        kernel_name=_kernel_name(spec, name), python=python, python_exe=python_exe,
        packages=tuple(packages), parameters=_parameters(spec),
        inputs=_paths(spec, "inputs"), outputs=outputs,
        depends_on=tuple(_str_list(spec, "depends_on")), metrics=metrics,
        timeout=_timeout(spec), notes=None if notes is None else str(notes),
        allow_early_exit=_flag(spec, "allow_early_exit"), cache=_flag(spec, "cache", True),
        matrix=_matrix(spec), profiles=_profiles(spec), workdir=_workdir(spec, notebook, exists),
        env=_env(spec), environment=environment, lines=spec.lines,
        warnings=tuple(warnings),
    )
