"""Parse and validate one stage spec (env_specs/*.yaml). Pure: text in, Stage out."""

from __future__ import annotations

import difflib
import keyword
import posixpath
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import SpecError

# Names a stage may not take: doit's commands, this project's commands and task prefixes.
RESERVED_NAMES = frozenset(
    {
        "auto", "clean", "dumpdb", "forget", "help", "ignore", "info", "list", "reset-dep",
        "run", "strace", "tabcompletion",
        "wheels", "audit", "lock", "gc",
        "venv", "kernel", "execute", "log", "default", "all",
    }
)  # fmt: skip

KNOWN_KEYS = (
    "name", "python_exe", "python", "env_dir", "kernel_name", "notebook", "packages",
    "parameters", "inputs", "outputs", "depends_on", "metrics", "timeout", "notes",
)  # fmt: skip

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
    lines: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)
    warnings: tuple[Warning_, ...] = field(default=(), compare=False)

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key)


def normalise_req_name(name: str) -> str:
    """PEP 503 normalisation: 'Scikit_Learn' -> 'scikit-learn'."""
    return re.sub(r"[-_.]+", "-", name).lower()


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


def is_stdlib_only(req: str) -> bool:
    """A bare name that is a standard-library module (the seed lists `warnings`)."""
    name = requirement_name(req)
    if name is None or req.split(";")[0].strip() != name:
        return False
    return name in sys.stdlib_module_names and name not in {"pip", "setuptools"}


def _closest(word: str, options: tuple[str, ...] | list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _project_path(value: str) -> str | None:
    """Normalise a project-relative path; None when it is absolute or leaves the project."""
    text = value.replace("\\", "/").strip()
    if not text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        return None
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def _compose(text: str, path: str) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
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


def _str_list(data: dict[str, Any], key: str, path: str, line: int | None) -> list[str]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(path, f"'{key}' must be a list of strings; got {value!r}",
                        line=line, key=key)
    return value


def _paths(data: dict[str, Any], key: str, path: str, lines: dict[str, int]) -> tuple[str, ...]:
    line = lines.get(key)
    out: list[str] = []
    for item in _str_list(data, key, path, line):
        norm = _project_path(item)
        if norm is None:
            raise SpecError(path, f"'{key}' entry {item!r} leaves the project; use a path "
                            "relative to the project root, such as data/raw.csv",
                            line=line, key=key)
        if norm in out:
            raise SpecError(path, f"'{key}' lists {item!r} twice", line=line, key=key)
        out.append(norm)
    return tuple(out)


def parse_stage(text: str, path: str, exists: Any = None) -> Stage:
    """Validate one spec. `exists(relpath) -> bool` checks project files (None: skip)."""
    data, lines, raw = _compose(text, path)

    for key in data:
        if key not in KNOWN_KEYS:
            raise SpecError(path, f"unknown key '{key}'{_closest(key, KNOWN_KEYS)}; valid keys: "
                            f"{', '.join(KNOWN_KEYS)}", line=lines[key], key=key)
    for key in ("name", "notebook"):
        if key not in data or data[key] in (None, ""):
            raise SpecError(path, f"'{key}' is required", key=key, line=lines.get(key))

    name = data["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SpecError(path, f"'name' must use only a-z, 0-9, '_' and '-'; got {name!r}",
                        line=lines["name"], key="name")
    if name in RESERVED_NAMES:
        raise SpecError(path, f"'name' {name!r} is a doit command or task prefix, so "
                        f"`doit {name}` would be ambiguous; rename the stage (e.g. "
                        f"'{name}_stage')", line=lines["name"], key="name")

    python = data.get("python")
    if python is not None:
        if isinstance(python, bool) or not isinstance(python, str | int | float):
            raise SpecError(path, f"'python' must be a version string like \"3.10\"; got "
                            f"{python!r}", line=lines["python"], key="python")
        if not isinstance(python, str):
            text_value = raw.get("python") or str(python)
            raise SpecError(path, f"'python' must be a string like \"{text_value}\"; got the "
                            f"number {python!r} — quote it: python: \"{text_value}\"",
                            line=lines["python"], key="python")
        if not VERSION_RE.match(python.strip()):
            raise SpecError(path, f"'python' must look like \"3.10\" or \"3.11.7\"; got "
                            f"{python!r}", line=lines["python"], key="python")
        python = python.strip()

    python_exe = data.get("python_exe")
    if python_exe is not None and (not isinstance(python_exe, str) or not python_exe.strip()):
        raise SpecError(path, f"'python_exe' must be a path to a python executable; got "
                        f"{python_exe!r}", line=lines["python_exe"], key="python_exe")
    if python and python_exe:
        raise SpecError(path, "give either 'python' (a version) or 'python_exe' (a path), not "
                        "both", line=lines["python"], key="python")

    notebook_raw = data["notebook"]
    notebook = _project_path(notebook_raw) if isinstance(notebook_raw, str) else None
    if notebook is None:
        raise SpecError(path, f"'notebook' must be a path inside the project, such as "
                        f"notebooks/03-train.ipynb; got {notebook_raw!r}",
                        line=lines["notebook"], key="notebook")
    if not notebook.endswith(".ipynb"):
        raise SpecError(path, f"'notebook' must be a .ipynb file; got {notebook_raw!r}",
                        line=lines["notebook"], key="notebook")
    if exists is not None and not exists(notebook):
        raise SpecError(path, f"notebook {notebook!r} does not exist; create it or fix the "
                        "path (relative to the project root)", line=lines["notebook"],
                        key="notebook")

    env_raw = data.get("env_dir", f".venvs/{name}")
    env_dir = _project_path(env_raw) if isinstance(env_raw, str) else None
    if env_dir is None or env_dir == ".":
        raise SpecError(path, f"'env_dir' must be a folder inside the project, such as "
                        f".venvs/{name}; got {env_raw!r}", line=lines.get("env_dir"),
                        key="env_dir")

    kernel_name = data.get("kernel_name", f"mlops-{name}")
    if not isinstance(kernel_name, str) or not KERNEL_RE.match(kernel_name):
        raise SpecError(path, f"'kernel_name' may use letters, digits, '.', '_' and '-'; got "
                        f"{kernel_name!r}", line=lines.get("kernel_name"), key="kernel_name")

    warnings: list[Warning_] = []
    packages: list[str] = []
    for item in _str_list(data, "packages", path, lines.get("packages")):
        req = clean_requirement(item)
        if not req:
            continue
        if is_stdlib_only(req):
            warnings.append(Warning_(path, lines.get("packages"), f"'{req}' is a standard-"
                                     "library module, not a package; dropped from 'packages'"))
            continue
        if requirement_name(req) is None:
            raise SpecError(path, f"'packages' entry {item!r} is not a pip requirement (such "
                            "as pandas>=2.0)", line=lines.get("packages"), key="packages")
        packages.append(req)

    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise SpecError(path, f"'parameters' must be a mapping of name: value; got {params!r}",
                        line=lines.get("parameters"), key="parameters")
    for pname in params:
        if not isinstance(pname, str) or not pname.isidentifier() or keyword.iskeyword(pname):
            raise SpecError(path, f"parameter name {pname!r} is not a Python identifier, so "
                            "papermill cannot inject it; use letters, digits and '_' "
                            "(e.g. n_estimators)", line=lines.get("parameters"),
                            key="parameters")

    depends_on = _str_list(data, "depends_on", path, lines.get("depends_on"))

    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or timeout <= 0):
        raise SpecError(path, f"'timeout' must be a positive number of seconds per cell; got "
                        f"{timeout!r}", line=lines.get("timeout"), key="timeout")

    notes = data.get("notes")
    if notes is not None and not isinstance(notes, str):
        notes = str(notes)

    outputs = _paths(data, "outputs", path, lines)
    metrics = _paths(data, "metrics", path, lines)
    for key, group in (("outputs", outputs), ("metrics", metrics)):
        if notebook in group:
            raise SpecError(path, f"'{key}' lists the stage's own notebook", line=lines[key],
                            key=key)

    return Stage(
        name=name,
        spec_path=path,
        notebook=notebook,
        env_dir=env_dir,
        kernel_name=kernel_name,
        python=python,
        python_exe=python_exe.strip() if python_exe else None,
        packages=tuple(packages),
        parameters=params,
        inputs=_paths(data, "inputs", path, lines),
        outputs=outputs,
        depends_on=tuple(depends_on),
        metrics=metrics,
        timeout=float(timeout) if timeout is not None else None,
        notes=notes,
        lines=lines,
        warnings=tuple(warnings),
    )
