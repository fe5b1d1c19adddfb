"""Hashes that decide staleness: content only, machine-independent."""

from __future__ import annotations

import copy

from mlops_tasks.project.fingerprint import (
    env_fingerprint,
    install_requirements,
    normalise_requirement,
    spec_hash,
)
from mlops_tasks.project.notebooks import notebook_code
from mlops_tasks.project.spec import Stage

from ..helpers import notebook_json


def test_requirement_normalisation():
    assert normalise_requirement("Scikit_Learn >= 1.3") == "scikit-learn>=1.3"
    assert normalise_requirement("pandas ; python_version<'3.12'") == \
        "pandas; python_version<'3.12'"


def test_env_fingerprint_ignores_order_and_depends_on_version():
    a = env_fingerprint("3.11.7", "cpython", ["pandas", "numpy"], {"installer": "uv"})
    b = env_fingerprint("3.11.7", "CPython", ["numpy", "pandas"], {"installer": "uv"})
    c = env_fingerprint("3.11.8", "cpython", ["numpy", "pandas"], {"installer": "uv"})
    assert a == b != c


def test_ipykernel_added_once():
    stage = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", packages=("pandas",))
    assert install_requirements(stage) == ["pandas", "ipykernel"]
    stage = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", packages=("IPyKernel>=6",))
    assert install_requirements(stage) == ["ipykernel>=6"]


def test_notebook_code_ignores_outputs_and_metadata():
    nb = notebook_json([("parameters", "a = 1"), (None, "print(a)")])
    saved = copy.deepcopy(nb)
    saved["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    saved["cells"][1]["execution_count"] = 7
    saved["metadata"]["kernelspec"]["name"] = "some-other-kernel"
    saved["metadata"]["widgets"] = {"state": {}}
    assert notebook_code(nb) == notebook_code(saved)
    edited = copy.deepcopy(nb)
    edited["cells"][1]["source"] = "print(a + 1)"
    assert notebook_code(nb) != notebook_code(edited)
    retagged = copy.deepcopy(nb)
    retagged["cells"][0]["metadata"]["tags"] = []
    assert notebook_code(nb) != notebook_code(retagged)


def test_spec_hash_ignores_notes():
    base = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", parameters={"a": 1})
    noted = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", parameters={"a": 1}, notes="x")
    changed = Stage("s", "e.yaml", "n.ipynb", ".venvs/s", "k", parameters={"a": 2})
    assert spec_hash(base) == spec_hash(noted) != spec_hash(changed)



def test_a_broken_notebook_is_a_user_error(tmp_path):
    import pytest

    from mlops_tasks.base.errors import MlopsError
    from mlops_tasks.project.notebooks import read_notebook

    path = tmp_path / "nb.ipynb"
    path.write_text('{\n<<<<<<< HEAD\n "cells": []\n}')
    with pytest.raises(MlopsError, match=r"nb.ipynb:2: not a valid notebook .* merge conflict"):
        read_notebook(path)


def test_stage_key_depends_on_each_part_only():
    from mlops_tasks.project.fingerprint import stage_key

    base = stage_key("f", "c", "p", {"data/a.csv": "1", "data/b.csv": "2"})
    assert base == stage_key("f", "c", "p", {"data/b.csv": "2", "data/a.csv": "1"})
    others = {stage_key("F", "c", "p", {"data/a.csv": "1", "data/b.csv": "2"}),
              stage_key("f", "C", "p", {"data/a.csv": "1", "data/b.csv": "2"}),
              stage_key("f", "c", "P", {"data/a.csv": "1", "data/b.csv": "2"}),
              stage_key("f", "c", "p", {"data/a.csv": "1", "data/b.csv": "3"}),
              stage_key("f", "c", "p", {"data/a.csv": "1", "data/c.csv": "2"})}
    assert base not in others and len(others) == 5


def test_stage_key_is_machine_independent(tmp_path):
    """Two clones at different absolute paths compute the same key for the same work."""
    from mlops_tasks.project.fingerprint import stage_key
    from mlops_tasks.run.provenance import content_hashes

    keys = []
    for clone in ("agent-a", "elsewhere/agent-b"):
        root = tmp_path / clone
        (root / "data").mkdir(parents=True)
        (root / "data" / "a.csv").write_text("x,y\n1,2\n")
        keys.append(stage_key("f", "c", "p", content_hashes(root, ["data/a.csv"])))
    assert keys[0] == keys[1]


def test_source_cell_numbers_skip_the_injected_cell():
    from mlops_tasks.project.notebooks import source_cell_number

    marker = {"cell_type": "markdown", "metadata": {"tags": ["papermill-error-cell-tag"]}}
    cells = [{"cell_type": "markdown"},
             {"cell_type": "code", "metadata": {"tags": ["parameters"]}},
             {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}},
             {"cell_type": "code", "metadata": {}},
             {"cell_type": "code"}]
    assert [source_cell_number(cells, i) for i in range(5)] == [None, 1, None, 2, 3]
    # papermill adds error markers (at the top and before the failing cell) after counting
    saved = [marker, *cells[:4], marker, cells[4]]
    assert source_cell_number(saved, 4) == 3
