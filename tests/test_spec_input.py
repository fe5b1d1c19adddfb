"""Bad input in a spec file gets a clear error, never a traceback or a hang: encodings
Windows editors write, YAML bombs, dates, requirement strings pip would refuse."""

from __future__ import annotations

import time

import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.fingerprint import canonical_json
from mlops_tasks.project.load import load_project
from mlops_tasks.project.spec import decode_spec, parse_stage

BASE = "name: train\nnotebook: nb/train.ipynb\nparameters:\n  label: café → 1\n"


def project_with(tmp_path, raw: bytes):
    (tmp_path / "env_specs").mkdir()
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "train.ipynb").write_text('{"cells": [], "metadata": {}}')
    (tmp_path / "env_specs" / "train.yaml").write_bytes(raw)
    return tmp_path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_utf8_with_or_without_bom_and_utf16_with_bom_load(tmp_path, encoding):
    root = project_with(tmp_path, BASE.encode(encoding))
    stage = load_project(root).stage("train")
    assert stage.parameters == {"label": "café → 1"}


def test_a_cp1252_spec_names_the_byte_and_the_fix(tmp_path):
    raw = "name: train\nnotebook: nb/train.ipynb\nnotes: café\n".encode("cp1252")
    root = project_with(tmp_path, raw)
    with pytest.raises(SpecError) as info:
        load_project(root)
    offset = raw.index(b"\xe9")
    assert str(info.value).startswith("env_specs/train.yaml:3: ")
    assert f"byte {offset}" in str(info.value) and "save it as UTF-8" in str(info.value)


def test_broken_utf16_is_refused_not_a_traceback():
    with pytest.raises(SpecError, match="not valid UTF-16 .* save the file as UTF-8"):
        decode_spec(b"\xff\xfe" + "name: x\n".encode("utf-16-le") + b"\x00", "s.yaml")


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_its_bom_names_the_byte_and_the_fix(tmp_path, encoding):
    raw = "name: train\nnotebook: nb/train.ipynb\n".encode(encoding)
    root = project_with(tmp_path, raw)
    with pytest.raises(SpecError) as info:
        load_project(root)
    offset = 1 if encoding == "utf-16-le" else 0
    assert str(info.value) == (f"env_specs/train.yaml:1: byte {offset} is a NUL byte: the "
                               "file looks like UTF-16 without a byte-order mark; save it "
                               "as UTF-8")


def test_a_yaml_bomb_fails_fast_with_file_and_line():
    lines = ['name: bomb', 'notebook: nb/b.ipynb', 'parameters:', '  a0: &a0 ["lol"]']
    for i in range(1, 30):
        prev = f"*a{i - 1}"
        lines.append(f"  a{i}: &a{i} [{', '.join([prev] * 9)}]")
    start = time.monotonic()
    with pytest.raises(SpecError) as info:
        parse_stage("\n".join(lines) + "\n", "env_specs/bomb.yaml")
    assert time.monotonic() - start < 1
    assert str(info.value).startswith("env_specs/bomb.yaml:3: 'parameters' expands to more")


def test_dates_reach_the_notebook_as_iso_strings():
    stage = parse_stage("name: s\nnotebook: n.ipynb\nparameters:\n  cutoff: 2024-01-01\n"
                        "  at: 2024-01-01 10:30:00\n  nested: {days: [2024-02-29]}\n",
                        "env_specs/s.yaml")
    assert stage.parameters == {"cutoff": "2024-01-01", "at": "2024-01-01T10:30:00",
                                "nested": {"days": ["2024-02-29"]}}
    canonical_json(stage.parameters)  # hashable, injectable


@pytest.mark.parametrize("req, words", [
    ("pandas=2.0", "use '==' for an exact version: pandas==2.0"),
    ("numpy>=", "write it as pip would take it"),
    ("scikit-learn[extra", "write it as pip would take it"),
])
def test_requirements_pip_would_refuse_are_caught_at_load(req, words):
    with pytest.raises(SpecError) as info:
        parse_stage(f"name: s\nnotebook: n.ipynb\npackages:\n  - {req}\n", "env_specs/s.yaml")
    message = str(info.value)
    assert message.startswith("env_specs/s.yaml:3: 'packages' entry")
    assert words in message


def test_valid_requirement_forms_still_load():
    stage = parse_stage("name: s\nnotebook: n.ipynb\npackages:\n  - pandas==2.2.3\n"
                        "  - numpy>=1.26,<3 ; python_version >= '3.10'\n  - requests[socks]\n",
                        "env_specs/s.yaml")
    assert len(stage.packages) == 3
