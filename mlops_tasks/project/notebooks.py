"""What of a notebook matters for its results, and what its parameters cell declares. Pure."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_tasks.base.errors import MlopsError, StageError
from mlops_tasks.project.fingerprint import canonical_json, sha256_text
from mlops_tasks.project.spec import Stage


def read_notebook(path: Path) -> dict[str, Any]:
    """The notebook's JSON; a file that is not a notebook (a merge conflict) is a user error."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MlopsError(f"{path.as_posix()}: cannot be read: {err}") from None
    return parse_notebook(raw, path.as_posix())


def parse_notebook(raw: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise MlopsError(f"{where}{':' + str(line) if line else ''}: not a valid notebook "
                         f"(JSON: {err}); a merge conflict? Fix or restore the file") from None
    if not isinstance(data, dict):
        raise MlopsError(f"{where}: not a notebook (expected a JSON object)")
    return data


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_code(nb: Mapping[str, Any]) -> dict[str, Any]:
    """Code cells' source and tags, and the kernel language: outputs, execution counts,
    widget state and the selected kernel do not count."""
    cells = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        tags = sorted(cell.get("metadata", {}).get("tags", []))
        cells.append({"source": _source(cell), "tags": tags})
    meta = nb.get("metadata", {})
    language = (meta.get("kernelspec", {}).get("language")
                or meta.get("language_info", {}).get("name") or "python")
    return {"language": language, "cells": cells}


def code_digest(code: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json(code))


def cell_digests(code: Mapping[str, Any]) -> list[str]:
    return [sha256_text(canonical_json(cell))[:16] for cell in code["cells"]]


def describe_code_change(old: list[str], new: list[str]) -> str:
    """'code cell 3 changed', 'code cell 5 added', ... from per-cell digests."""
    changes: list[str] = []
    for index in range(max(len(old), len(new))):
        if index >= len(old):
            changes.append(f"code cell {index + 1} added")
        elif index >= len(new):
            changes.append(f"code cell {index + 1} removed")
        elif old[index] != new[index]:
            changes.append(f"code cell {index + 1} changed")
    return ", ".join(changes[:5]) + (" …" if len(changes) > 5 else "")


def declared_parameters(nb: Mapping[str, Any]) -> set[str] | None:
    """Names assigned in the cell tagged `parameters`; None when there is no such cell."""
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(_source(cell))
            except SyntaxError:
                return set()
            names: set[str] = set()
            for node in tree.body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            names.add(sub.id)
            return names
    return None


# Type names a parameter's value can be given as text for (see value_from_text).
TEXT_TYPES = ("str", "int", "float", "bool", "list", "dict")
_ANNOTATION_NAMES = {"str": "str", "int": "int", "float": "float", "bool": "bool",
                     "list": "list", "List": "list", "tuple": "list", "Tuple": "list",
                     "Sequence": "list", "dict": "dict", "Dict": "dict", "Mapping": "dict"}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _annotation_type(node: ast.expr | None) -> str:
    """`int`, `list[int]`, `typing.Dict[str, int]`, `"int"`, `int | None`, `Optional[int]`
    -> a name of TEXT_TYPES (with " | None" when None is allowed); '' when it says nothing
    this module can convert text to."""
    if node is None:
        return ""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotation_type(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return ""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        rest = [s for s in sides if s not in nones]
        base = _annotation_type(rest[0]) if len(rest) == 1 and nones else ""
        return f"{base} | None" if base and "None" not in base else ""
    if isinstance(node, ast.Subscript):
        outer = _annotation_type(node.value)
        if node.value and ast.unparse(node.value).split(".")[-1] == "Optional":
            inner = _annotation_type(node.slice)
            return f"{inner} | None" if inner and "None" not in inner else ""
        return outer if outer in ("list", "dict") else ""
    name = ast.unparse(node).split(".")[-1]
    return _ANNOTATION_NAMES.get(name, "")


def _default_type(node: ast.expr | None) -> str:
    """The type of a literal default (`n = 5`, `flag = True`, `ratios = [0.5]`); '' for
    None or anything that is not a literal."""
    if node is None:
        return ""
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return ""
    return _ANNOTATION_NAMES.get(type(value).__name__, "")


def _parse_cell(source: str) -> ast.Module | None:
    for type_comments in (True, False):  # a misplaced `# type:` comment is no syntax error
        try:
            return ast.parse(source, type_comments=type_comments)
        except SyntaxError:
            continue
    return None


def parameter_types(nb: Mapping[str, Any]) -> dict[str, str]:
    """What the parameters cell says of each parameter's type, as papermill reads it: the
    annotation (`n: int = 5`) or a `# type: int` comment, else the default's type
    (`name = "x"`, `flag = True`). Names whose cell says nothing are left out."""
    for cell in nb.get("cells", []):
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        tree = _parse_cell(_source(cell))
        types: dict[str, str] = {}
        for node in tree.body if tree else []:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                name = node.target.id
                found = _annotation_type(node.annotation) or _default_type(node.value)
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1
                  and isinstance(node.targets[0], ast.Name)):
                name = node.targets[0].id
                found = _type_comment(node.type_comment) or _default_type(node.value)
            else:
                continue
            if found:
                types[name] = found
        return types
    return {}


def _type_comment(comment: str | None) -> str:
    """papermill's `x = None  # type: int` form."""
    try:
        return _annotation_type(ast.parse(comment, mode="eval").body) if comment else ""
    except SyntaxError:
        return ""


def type_of_value(value: Any) -> str:
    """The TEXT_TYPES name of a spec's value ('' for None and anything else)."""
    return _ANNOTATION_NAMES.get(type(value).__name__, "")


def value_from_text(text: str, type_name: str) -> Any:
    """A parameter's value from its text form (command line, MLflow Projects), as the type
    says: a str is the text exactly as given (no YAML or JSON reading); int, float and bool
    as Python reads them (bool: true/false, yes/no, on/off, 1/0, any case); list and dict as
    JSON or a Python literal. With " | None", `None`, `null` or '' give None. Without a type
    ('' ), papermill's `-p` rule: a JSON or Python literal, else the text. ValueError when
    the text is not of the type."""
    if type_name.endswith(" | None"):
        if text.strip() in ("None", "null", ""):
            return None
        type_name = type_name[: -len(" | None")]
    if type_name == "str":
        return text
    if type_name == "int":
        return int(text.strip())
    if type_name == "float":
        return float(text.strip())
    if type_name == "bool":
        word = text.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
        raise ValueError(text)
    literal = _literal(text)
    if type_name in ("list", "dict"):
        wanted = list if type_name == "list" else dict
        if isinstance(literal, tuple) and type_name == "list":
            literal = list(literal)
        if not isinstance(literal, wanted):
            raise ValueError(text)
        return literal
    return text if literal is _NOT_A_LITERAL else literal


_NOT_A_LITERAL = object()


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_A_LITERAL
    return value if isinstance(value, str | int | float | bool | list | dict | tuple
                               ) or value is None else _NOT_A_LITERAL


_EXAMPLES = {"int": "5", "float": "0.5", "bool": "true", "list": "[1, 2]", "dict": '{"a": 1}'}


def expected_type(stage: Stage, name: str, cell_types: Mapping[str, str]
                  ) -> tuple[str, str, str]:
    """A parameter's type, who says so and the file to change: the notebook's parameters
    cell, else the type of the spec's value; ('', '', '') when neither says anything."""
    if name in cell_types:
        return cell_types[name], f"the parameters cell of {stage.notebook}", stage.notebook
    found = type_of_value(stage.parameters.get(name))
    if found:
        return found, f"its value in {stage.spec_path}", stage.spec_path
    return "", "", ""


def parameters_from_text(stage: Stage, given: Mapping[str, str], cell_types: Mapping[str, str],
                         shown: str = "--param={name}={text}") -> dict[str, Any]:
    """Parameter values given as text (`shown` is how the user wrote one), each of the type
    the notebook or the spec says (value_from_text). A text that is not of its type is a
    StageError naming the parameter, the type, who says so, and the fix."""
    out: dict[str, Any] = {}
    for name, text in given.items():
        type_name, source, where = expected_type(stage, name, cell_types)
        try:
            out[name] = value_from_text(text, type_name)
        except ValueError:
            base = type_name.removesuffix(" | None")
            kind = f"{_article(base)} {base}"
            example = shown.format(name=name, text=_EXAMPLES.get(base, "..."))
            raise StageError("execute", stage.name, (
                f"{shown.format(name=name, text=text)}: '{name}' must be {kind}"
                f"{' (or None)' if base != type_name else ''}, as {source} says; got the "
                f"text {text!r}. Give {kind}, e.g. {example}, or change its type in {where}"
            )) from None
    return out


def _article(type_name: str) -> str:
    return "an" if type_name[:1] in "aeiou" else "a"


def early_exit_cell(executed_cells: list[Mapping[str, Any]]) -> int | None:
    """The source cell number where execution stopped early: a cell that raised SystemExit,
    which papermill lets pass for `sys.exit(0)` while the cells after it never run."""
    for index, cell in enumerate(executed_cells):
        if cell.get("cell_type") != "code":
            continue
        if any(out.get("ename") == "SystemExit" for out in cell.get("outputs", [])):
            return source_cell_number(executed_cells, index)
    return None


def source_cell_number(executed_cells: list[Mapping[str, Any]], cell_index: int) -> int | None:
    """The number (1-based, counting code cells, as `doit info` does) in the source notebook
    of the cell papermill reports at cell_index. The executed notebook holds cells the source
    does not: papermill's injected parameters (counted in cell_index) and its error markers
    (added after, not counted). None for the injected cell itself."""
    cells = [c for c in executed_cells
             if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    number = 0
    for index, cell in enumerate(cells[: cell_index + 1]):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "injected-parameters" in tags:
            if index == cell_index:
                return None
            continue
        number += 1
    return number or None
