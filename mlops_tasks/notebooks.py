"""What of a notebook matters for its results, and what its parameters cell declares. Pure."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import MlopsError
from .fingerprint import canonical_json, sha256_text


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
