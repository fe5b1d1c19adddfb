"""What log:S sends: nested parameters as JSON, outputs over the size limit named."""

from __future__ import annotations

import json

from mlops_tasks.project.spec import Stage
from mlops_tasks.run.log import split_outputs
from mlops_tasks.tracking.client import _param_text

from .run.test_record import execute_record


def test_nested_parameters_are_logged_as_json():
    value = {"get-users": {"since": "2024-01-01", "ids": [1, 2]}}
    assert json.loads(_param_text(value)) == value
    assert _param_text([0.5, 0.25]) == "[0.5, 0.25]"
    assert _param_text(200) == "200" and _param_text("text") == "text"


def test_outputs_over_the_limit_are_named_with_size_and_setting(tmp_path, capsys):
    stage = Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k",
                  outputs=("big.bin", "small.txt", "folder"))
    (tmp_path / "big.bin").write_bytes(b"x" * 3 * 2**20)
    (tmp_path / "small.txt").write_text("ok")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "part.bin").write_bytes(b"y" * 2 * 2**20)
    done = execute_record(outputs={"big.bin": "b" * 64, "small.txt": "s" * 64,
                                   "folder": "f" * 64})
    uploaded, left_out = split_outputs(tmp_path, stage, done, limit_mb=1)
    assert uploaded == ["small.txt"]
    assert left_out == {"big.bin": {"size": 3 * 2**20, "sha256": "b" * 64},
                        "folder": {"size": 2 * 2**20, "sha256": "f" * 64}}
    out = capsys.readouterr().out
    assert ("log:s: big.bin (3.0 MB) is not uploaded, over artifact_max_mb = 1 in "
            "[tool.mlops_tasks]; audit.json records its size and hash") in out
    assert "log:s: folder (2.0 MB) is not uploaded" in out
