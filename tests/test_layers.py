"""The layer rule: a module imports only its own folder or lower layers; siblings on one layer
never import each other; `render/` imports nothing of the package; no import circle. Every
file, function-level imports included."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mlops_tasks

PACKAGE = Path(mlops_tasks.__file__).parent
# lowest first; folders on one layer are siblings
LAYERS = {"base": 0, "render": 0, "project": 1, "env": 2, "tracking": 2, "run": 3,
          "pipeline": 4, "commands": 5, "": 6}  # "": the public entry modules at the top
LEAVES = {"render"}  # import nothing of the package


def module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import of the package in the file, wherever it stands."""
    name = module_name(path, top)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == top.name or target.startswith(top.name + "."):
                yield node.lineno, target


def folder_of(module: str, known: set[str]) -> str | None:
    """The layer folder of a module or subpackage of the package ("" for the top); None when
    `module` is not one (a name imported from one)."""
    if module not in known:
        return None
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and f"{module}.__init__" in known):
        return parts[1]
    return ""


def violations(top: Path) -> list[str]:
    files = sorted(top.rglob("*.py"))
    known = {module_name(path, top) for path in files}
    known |= {f"{module_name(p, top)}.__init__" for p in files if p.name == "__init__.py"}
    found = []
    for path in files:
        mine = folder_of(module_name(path, top), known) or ""
        if path.name == "__init__.py" and path.parent != top:
            mine = path.parent.name
        for line, target in sorted(set(imports(path, top))):
            if any(t.startswith(target + ".") and t in known for _, t in imports(path, top)):
                continue  # `from package import module`: the module is what counts
            theirs = folder_of(target, known)
            if theirs is None or theirs == mine or target == top.name:
                continue
            where = f"{path.relative_to(top.parent).as_posix()}:{line}"
            if mine in LEAVES:
                found.append(f"{where}: {mine}/ imports nothing of the package; imports {target}")
            elif LAYERS[theirs] >= LAYERS[mine]:
                kind = "a sibling" if LAYERS[theirs] == LAYERS[mine] else "a higher layer"
                found.append(f"{where}: {mine or 'the top'}/ imports {target}, {kind} "
                             f"({theirs or 'the top'}/)")
    return found


def circles(top: Path) -> list[list[str]]:
    files = sorted(top.rglob("*.py"))
    known = {module_name(path, top) for path in files}
    graph = {module_name(p, top): {t for _, t in imports(p, top) if t in known
                                   and t != module_name(p, top) and not t.endswith("__init__")
                                   and "." in t.removeprefix(top.name + ".")}
             for p in files if p.name != "__init__.py"}
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_keeps_to_its_layer():
    assert violations(PACKAGE) == []


def test_no_import_circle():
    assert circles(PACKAGE) == []


def test_the_rule_bites(tmp_path):
    top = tmp_path / "mlops_tasks"
    for rel, text in {"__init__.py": "", "base/__init__.py": "", "env/__init__.py": "",
                      "tracking/__init__.py": "", "render/__init__.py": "",
                      "base/console.py": "def f():\n    from mlops_tasks.env import venv\n",
                      "env/venv.py": "from ..tracking import client\n",
                      "tracking/client.py": "from mlops_tasks.base import console\n",
                      "render/page.py": "from mlops_tasks.base.console import f\n"}.items():
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_text(text)
    assert violations(top) == [
        "mlops_tasks/base/console.py:2: base/ imports mlops_tasks.env.venv, a higher layer "
        "(env/)",
        "mlops_tasks/env/venv.py:1: env/ imports mlops_tasks.tracking.client, a sibling "
        "(tracking/)",
        "mlops_tasks/render/page.py:1: render/ imports nothing of the package; imports "
        "mlops_tasks.base.console",
    ]


def test_package_discovery_finds_every_folder():
    """A folder left out of package discovery is left out of a wheel, while `pip install -e .`
    hides it: setuptools, in a process of its own, finds every folder holding modules with
    the rule pyproject.toml gives it."""
    import json
    import subprocess
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    root = PACKAGE.parent
    rule = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["packages"]["find"]
    code = ("import json, sys; from setuptools import find_packages; "
            "print(json.dumps(find_packages(sys.argv[1], include=json.loads(sys.argv[2]))))")
    found = set(json.loads(subprocess.run(
        [sys.executable, "-c", code, str(root), json.dumps(rule["include"])],
        capture_output=True, text=True, check=True).stdout))
    folders = {".".join(p.parent.relative_to(root).parts) for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts}
    assert folders - found == set()
