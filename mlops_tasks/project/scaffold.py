"""What `mlops-tasks init` and `add-stage` write: a project that runs at once, and a stage
wired to its upstream's outputs. Pure: file contents from names; commands/cli.py writes them."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import shlex
import zipfile
from collections.abc import Mapping, Sequence

from mlops_tasks.base.doit_names import RESERVED_NAMES
from mlops_tasks.base.errors import ConfigError
from mlops_tasks.project.config import INDEX_POLICIES, SAFE_ARG, Orchestrator
from mlops_tasks.project.spec import NAME_RE

DODO = "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n"

DOIT_SECTION = """\
[tool.doit]
dep_file = ".mlops/doit.db"
backend = "sqlite3-durable"
verbosity = 2
par_type = "thread"
"""

MLOPS_SECTION = """\
[tool.mlops_tasks]
# Where runs are recorded. Empty: the local store .mlops/mlflow.db (MLFLOW_TRACKING_URI wins).
tracking_uri = ""
experiment = {experiment}
# Offline installs from wheels_cache/ when it holds wheels; a missing one falls back to the index.
index_policy = "offline-first"
{orchestrator}"""

ORCHESTRATOR_LINE = """\
# Where CI installs mlops-tasks from: its wheel, committed in wheels_cache/ (or a VCS URL
# pinned to a commit, or "mlops-tasks==X --index-url <your internal index>"); never a bare name.
orchestrator = {value}
"""

PYPROJECT = ("# An mlops-tasks pipeline: `doit` brings every stage up to date (see `doit list`)."
             "\n\n" + DOIT_SECTION + "\n" + MLOPS_SECTION)

GITIGNORE = """\
# mlops-tasks: the tool's state, the stage venvs and the stages' products
.mlops/
.venvs/
out/
# wheels are fetched with `doit wheels`, not committed; mlops-tasks' own wheel is: CI installs
# the orchestrator from it (`orchestrator` in pyproject.toml)
wheels_cache/*
!wheels_cache/README.md
!wheels_cache/mlops_tasks-*.whl
"""

WHEELS_README = """\
# wheels_cache/

Wheels for offline stage installs (not committed). Fill it where the package index is
reachable with `doit wheels` (each stage, for its own Python on this platform), or for other
agents with `doit wheels --platform win_amd64 --python-version 3.10`; check it with
`doit wheels --check ...`. With wheels here, stage venvs install with no index.

`mlops_tasks-*.whl` is the exception: mlops-tasks' own wheel, written by `mlops-tasks init`
and committed, so CI installs the orchestrator from it (the `orchestrator` setting in
pyproject.toml) rather than from a package index.
"""

JENKINSFILE = """\
// Runs the pipeline on a Jenkins agent: doit decides what is stale; only changed stages run.
// For several agents sharing a tracking server, see `doit jenkinsfile`.
// mlops-tasks comes from {source}
// (`orchestrator` in pyproject.toml), never from a bare name on a public index.
pipeline {{
  agent any
  environment {{
    MLOPS_INVOCATION_ID = "${{env.BUILD_TAG}}"
    PYTHONUTF8 = '1'
  }}
  stages {{
    stage('Pipeline') {{
      steps {{
        script {{
          if (isUnix()) {{
            sh 'test -x .venv/bin/python || python3 -m venv .venv'
            sh '{sh_install}'
            sh '.venv/bin/doit'
          }} else {{
            bat 'if not exist .venv\\\\Scripts\\\\python.exe python -m venv .venv'
            bat '{bat_install}'
            bat '.venv\\\\Scripts\\\\doit.exe'
          }}
        }}
      }}
    }}
  }}
  post {{
    always {{
      script {{
        if (fileExists('.mlops/reports/junit.xml')) {{
          junit testResults: '.mlops/reports/junit.xml', allowEmptyResults: false
        }}
      }}
      archiveArtifacts artifacts: '.mlops/reports/**, .mlops/runs/**/*.html, .mlops/runs/**/audit.json', allowEmptyArchive: true
    }}
  }}
}}
"""


def _cell(kind: str, source: str, cell_id: str, tags: Sequence[str] = ()) -> dict[str, object]:
    cell: dict[str, object] = {"cell_type": kind, "id": cell_id,
                               "metadata": {"tags": list(tags)} if tags else {},
                               "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(name: str, title: str, parameters: str, code: str, python: str) -> str:
    """A starter notebook: a title, a cell tagged `parameters`, the work; outputs stripped."""
    nb = {"cells": [_cell("markdown", f"# {title}", f"{name}-0"),
                    _cell("code", parameters, f"{name}-1", ["parameters"]),
                    _cell("code", code, f"{name}-2")],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"},
                       "language_info": {"name": "python", "version": python}},
          "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def check_name(name: str) -> str | None:
    """Why `name` cannot be a stage's name, or None."""
    if not NAME_RE.match(name):
        return (f"'{name}' is not a stage name: use lowercase letters, digits, '_' and '-' "
                "(e.g. 'train')")
    if name in RESERVED_NAMES:
        return f"'{name}' is a doit command or task prefix; pick another (e.g. '{name}_stage')"
    return None


def first_stage(python: str) -> dict[str, str]:
    """The stage `init` writes: it runs with nothing but the standard library."""
    spec = """\
# A stage: one notebook in its own venv. Keys: see the mlops-tasks README.
name: prepare
notebook: notebooks/prepare.ipynb
packages: []          # pip requirement strings, e.g. ["pandas>=2.0"]
parameters:
  rows: 10
outputs:
  - out/prepared.csv
metrics:
  - out/prepare-metrics.json
"""
    code = """\
import csv
import json
from pathlib import Path

Path("out").mkdir(exist_ok=True)
with open("out/prepared.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["x", "y"])
    for x in range(rows):
        writer.writerow([x, x * x])
Path("out/prepare-metrics.json").write_text(json.dumps({"rows": rows}))
print(f"wrote {rows} rows")
"""
    return {"env_specs/prepare.yaml": spec,
            "notebooks/prepare.ipynb": notebook(
                "prepare", "prepare: write the data the next stages read",
                "# parameters (the spec's values are injected after this cell)\nrows = 5",
                code, python)}


def groovy(text: str) -> str:
    """`text` inside a Groovy single-quoted string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def install_commands(source: Orchestrator, policy: str, cache: str, python: str) -> str:
    """The command that installs the orchestrator into the agent's venv (`python`): from the
    one source the project names, with no index first (`cache` holds the dependencies when
    it is filled), then, unless `policy` is "offline", with the index for the dependencies.
    A bare name is never resolved on an index: `source` is a file, a pinned URL, or an exact
    version on an index that replaces the public one. Pure."""
    if policy not in INDEX_POLICIES:
        raise ValueError(policy)
    if not SAFE_ARG.fullmatch(cache):
        raise ConfigError(f"wheels_cache = {cache!r}: a CI step cannot carry it (spaces, quotes "
                          "or shell characters); use a plain relative path such as wheels_cache")
    what = source.requirement if source.kind == "self" else f'"{source.requirement}"'
    offline = f"{python} -m pip install --no-index --find-links {cache} {what}"
    index = f" --index-url {source.index_url}" if source.index_url else ""
    online = f"{python} -m pip install{index} --find-links {cache} {what}"
    return {"offline": offline, "online": online,
            "offline-first": f"{offline} || {online}"}[policy]


def project_files(experiment: str, orchestrator: Orchestrator, python: str
                  ) -> dict[str, str]:
    """Everything `init` writes but the tool's wheel; `orchestrator` names where CI gets it."""
    line = ORCHESTRATOR_LINE.format(value=json.dumps(orchestrator.setting()))
    sh = install_commands(orchestrator, "offline-first", "wheels_cache", ".venv/bin/python")
    bat = install_commands(orchestrator, "offline-first", "wheels_cache",
                           ".venv\\Scripts\\python.exe")
    return {"dodo.py": DODO, "pyproject.toml": PYPROJECT.format(
                experiment=json.dumps(experiment), orchestrator=line),
            ".gitignore": GITIGNORE, "wheels_cache/README.md": WHEELS_README,
            "Jenkinsfile": JENKINSFILE.format(source=orchestrator.describe(),
                                              sh_install=groovy(sh), bat_install=groovy(bat)),
            **first_stage(python)}


def stage_files(name: str, python: str | None, packages: Sequence[str],
                upstream_outputs: Sequence[str], after: str | None,
                notebook_python: str) -> dict[str, str]:
    """A new stage that reads what `after` writes and writes out/<name>.txt."""
    lines = [f"name: {name}", f"notebook: notebooks/{name}.ipynb"]
    if python:
        lines.append(f'python: "{python}"')
    lines.append(f"packages: {json.dumps(list(packages))}")
    if upstream_outputs:
        lines.append("parameters:")
        lines.append(f"  inputs: {json.dumps(list(upstream_outputs))}")
        lines.append("inputs:")
        lines += [f"  - {path}" for path in upstream_outputs]
    lines += ["outputs:", f"  - out/{name}.txt"]
    header = f"# Stage {name}" + (f": reads what {after} writes" if after else "") + ".\n"
    code = f"""\
from pathlib import Path

sizes = {{path: Path(path).stat().st_size for path in inputs}}
Path("out").mkdir(exist_ok=True)
Path("out/{name}.txt").write_text("\\n".join(f"{{p}} {{n}}" for p, n in sizes.items()) + "\\n")
print(sizes)
"""
    return {f"env_specs/{name}.yaml": header + "\n".join(lines) + "\n",
            f"notebooks/{name}.ipynb": notebook(
                name, f"{name}" + (f": reads the outputs of {after}" if after else ""),
                "# parameters (the spec's values are injected after this cell)\ninputs = []",
                code, notebook_python)}


# -- the tool's own wheel --------------------------------------------------------------------

WHEEL_TAG = "py3-none-any"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same sources make the same bytes


def wheel_name(version: str) -> str:
    return f"mlops_tasks-{version}-{WHEEL_TAG}.whl"


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def tool_wheel(version: str, modules: Mapping[str, bytes], metadata: Mapping[str, bytes]
               ) -> bytes:
    """A wheel of mlops-tasks from its modules ({path in the package: source}) and its
    dist-info files (METADATA, entry_points.txt): what `pip install` of it needs. Pure."""
    info = f"mlops_tasks-{version}.dist-info"
    files = {f"mlops_tasks/{name}": data for name, data in sorted(modules.items())}
    files.update({f"{info}/{name}": data for name, data in sorted(metadata.items())})
    files[f"{info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: mlops-tasks init\n"
                              f"Root-Is-Purelib: true\nTag: {WHEEL_TAG}\n").encode()
    record = [_record_line(name, data) for name, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name, ZIP_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()


# -- what `init` tells the user --------------------------------------------------------------

WINDOWS_SAFE = re.compile(r"[A-Za-z0-9._:\\/-]+")


def shell_path(path: str, windows: bool) -> str | None:
    """`path` as a user can paste it into their shell, or None when no quoting is safe
    (cmd and PowerShell both expand inside double quotes: % and $)."""
    if not windows:
        return shlex.quote(path)
    if WINDOWS_SAFE.fullmatch(path):
        return path
    if not set(path) & set('"%$`'):
        return f'"{path}"'
    return None


PIN_ADVICE = ("before CI or a second machine: doit lock, and commit env_specs/*.lock: every "
              "agent then builds exactly those versions and agrees on the stage keys, so "
              "what one agent ran, the others restore")


def next_steps(folder: str | None, in_git: bool, windows: bool) -> str:
    """The `next:` line of `init`: cd into `folder` (quoted; None: init ran here), git init
    and a first commit (the tracked-file guard of `doit clean` needs git), doit."""
    steps = [] if in_git else ["git init", "git add -A", 'git commit -m "a new pipeline"']
    steps.append("doit")
    quoted = None if folder is None else shell_path(folder, windows)
    if folder is not None and quoted is None:
        return ("next: cd into the new folder (its name holds characters a shell would "
                "expand, so it is not printed for pasting), then: " + " && ".join(steps))
    return "next: " + " && ".join([f"cd {quoted}"] * (quoted is not None) + steps)


def missing_settings(pyproject: Mapping[str, object], dodo: str, experiment: str,
                     orchestrator: Orchestrator) -> list[str]:
    """What a project's own (kept) pyproject.toml and dodo.py lack for mlops-tasks, each with
    the exact text to add. Pure."""
    tool = pyproject.get("tool")
    tables = tool if isinstance(tool, Mapping) else {}
    advice = []
    if "mlops_tasks" not in dodo:
        advice.append(f"dodo.py does not load mlops-tasks' tasks; add this line to it:\n{DODO}")
    if "doit" not in tables:
        advice.append(f"pyproject.toml has no [tool.doit] section; add:\n{DOIT_SECTION}")
    line = ORCHESTRATOR_LINE.format(value=json.dumps(orchestrator.setting()))
    mlops = tables.get("mlops_tasks")
    if not isinstance(mlops, Mapping):
        advice.append("pyproject.toml has no [tool.mlops_tasks] section; add:\n"
                      + MLOPS_SECTION.format(experiment=json.dumps(experiment),
                                             orchestrator=line))
    elif "orchestrator" not in mlops:
        advice.append("pyproject.toml's [tool.mlops_tasks] does not say where CI installs "
                      f"mlops-tasks from; add to it:\n{line}")
    return advice
