"""What `mlops-tasks init` and `add-stage` write: a project that runs at once, and a stage
wired to its upstream's outputs. Pure: file contents from names; cli.py writes them."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .doit_names import RESERVED_NAMES
from .spec import NAME_RE

DODO = "from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401\n"

PYPROJECT = """\
# An mlops-tasks pipeline: `doit` brings every stage up to date (see `doit list`).

[tool.doit]
dep_file = ".mlops/doit.db"
backend = "sqlite3-durable"
verbosity = 2
par_type = "thread"

[tool.mlops_tasks]
# Where runs are recorded. Empty: the local store .mlops/mlflow.db (MLFLOW_TRACKING_URI wins).
tracking_uri = ""
experiment = {experiment}
# Offline installs from wheels_cache/ when it holds wheels; a missing one falls back to the index.
index_policy = "offline-first"
"""

GITIGNORE = """\
# mlops-tasks: the tool's state, the stage venvs and the stages' products
.mlops/
.venvs/
out/
# wheels are fetched with `doit wheels`, not committed
wheels_cache/*
!wheels_cache/README.md
"""

WHEELS_README = """\
# wheels_cache/

Wheels for offline stage installs (not committed). Fill it where the package index is
reachable with `doit wheels` (each stage, for its own Python on this platform), or for other
agents with `doit wheels --platform win_amd64 --python-version 3.10`; check it with
`doit wheels --check ...`. With wheels here, stage venvs install with no index.
"""

JENKINSFILE = """\
// Runs the pipeline on a Jenkins agent: doit decides what is stale; only changed stages run.
// For several agents sharing a tracking server, see `doit jenkinsfile`.
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
            sh 'if ls wheels_cache/*.whl >/dev/null 2>&1; then .venv/bin/python -m pip install --no-index --find-links wheels_cache "{requirement}"; else .venv/bin/python -m pip install "{requirement}"; fi'
            sh '.venv/bin/doit'
          }} else {{
            bat 'if not exist .venv\\\\Scripts\\\\python.exe python -m venv .venv'
            bat 'if exist wheels_cache\\\\*.whl (.venv\\\\Scripts\\\\python.exe -m pip install --no-index --find-links wheels_cache "{requirement}") else (.venv\\\\Scripts\\\\python.exe -m pip install "{requirement}")'
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


def project_files(experiment: str, requirement: str, python: str) -> dict[str, str]:
    return {"dodo.py": DODO, "pyproject.toml": PYPROJECT.format(
                experiment=json.dumps(experiment)),
            ".gitignore": GITIGNORE, "wheels_cache/README.md": WHEELS_README,
            "Jenkinsfile": JENKINSFILE.format(requirement=requirement),
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
