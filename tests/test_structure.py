"""The package's shape: small functions, a leaf redaction module, command names from doit
itself, and the plugin commands pyproject.toml registers."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "mlops_tasks"
MAX_FUNCTION_LINES = 60


def modules() -> list[Path]:
    """Every module of the package, in every folder."""
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    """A module's name inside the package: 'run.execute'."""
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{dotted(path)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these: " + ", ".join(long)


def package_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or 0) > 0:
            found.add(node.module or ".")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            found |= {n for n in names if n.startswith("mlops_tasks")}
    return found


def test_leaf_modules_import_nothing_of_the_package():
    for leaf in ("base.redact", "base.errors", "base.files",
                 "tracking.kernel_hook"):  # kernel_hook: in stage kernels
        assert package_imports(leaf) == set(), f"{leaf}.py must stay a leaf"


def test_only_one_module_imports_each_heavy_library():
    importers: dict[str, set[str]] = {"mlflow": set(), "papermill": set(), "subprocess": set()}
    for path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in importers:
                    importers[top].add(dotted(path))
    assert importers == {"mlflow": {"tracking.client"}, "papermill": {"run.papermill_adapter"},
                         "subprocess": {"base.command"}}


def test_no_module_prints_directly():
    """User-facing output goes through base/console.py (one prefix rule, any console encoding)."""
    offenders = []
    for path in modules():
        if dotted(path) in ("base.console", "tracking.kernel_hook"):  # the hook: in kernels
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Name) and func.id == "print":
                    offenders.append(f"{dotted(path)}:{node.lineno}")
                if (isinstance(func, ast.Attribute) and func.attr == "write"
                        and isinstance(func.value, ast.Attribute)
                        and func.value.attr in ("stdout", "stderr")):
                    offenders.append(f"{dotted(path)}:{node.lineno}")
    assert not offenders


def test_reserved_stage_names_come_from_doit():
    from doit.doit_cmd import DoitMain

    from mlops_tasks.base.doit_names import (
        GUARDED_COMMANDS,
        OWN_COMMANDS,
        REPLACED_COMMANDS,
        RESERVED_NAMES,
    )

    doit_commands = {cmd.get_name() for cmd in DoitMain.DOIT_CMDS}
    assert doit_commands <= RESERVED_NAMES
    assert doit_commands >= GUARDED_COMMANDS
    assert {"venv", "kernel", "execute", "log"} <= RESERVED_NAMES
    points = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["entry-points"]["doit.COMMAND"]
    assert set(points) == OWN_COMMANDS | REPLACED_COMMANDS


def test_guarded_commands_keep_doits_options():
    """doit passes options to `_execute` by its signature: the wrapper must keep it."""
    import inspect

    from doit.cmd_run import Run as DoitRun

    from mlops_tasks.commands.doit import Run

    assert Run.get_name() == "run"
    assert (inspect.signature(Run._execute).parameters.keys()
            == inspect.signature(DoitRun._execute).parameters.keys())


def test_the_kernel_hook_writes_the_tag_names_the_tags_module_holds():
    """The hook runs on the stage's Python and imports nothing of the package: its copies of
    the tag names must be the tags module's."""
    from mlops_tasks.tracking import kernel_hook, tags

    assert kernel_hook.STAGE_RUN_TAG == tags.STAGE_RUN_ID
    assert kernel_hook.NAME_TAG == tags.NOTEBOOK_RUN_NAME
    literals = {node.value for path in modules() if dotted(path) not in (
        "tracking.tags", "tracking.kernel_hook")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and node.value.startswith("mlops.") and " " not in node.value}
    assert literals == set(), "tag names belong in tracking/tags.py"
