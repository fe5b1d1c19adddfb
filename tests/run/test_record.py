"""The run records: typed, versioned, read back as written; other versions refused clearly."""

from __future__ import annotations

import json

import pytest

from mlops_tasks.base.errors import RecordError
from mlops_tasks.env.drift import Drift
from mlops_tasks.run import record

KEY = record.StageKey("k" * 64, "f" * 64, "c" * 64, "p" * 64, "i" * 64)


def execute_record(**changes) -> record.ExecuteRecord:
    values = dict(
        stage="train", run_id="r1", run_name="train@abc1234", experiment_id="1",
        tracking_uri="sqlite:///x.db", invocation_id="inv", start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:00:05+00:00", duration_s=5.0, key=KEY,
        parameters={"n": 3, "stage_name": "train"}, stage_parameters={"n": 3}, overrides={},
        notebook="nb/train.ipynb", spec="env_specs/train.yaml", spec_sha256="s" * 64,
        git=record.GitState("abc1234def", "main", False), git_diff="",
        python=record.PythonEnv("3.11.7", "cpython", "/usr/bin/python3.11", ".venvs/train",
                                ".venvs/train/bin/python"),
        env_fingerprint="e" * 64, inputs={"data/raw.csv": "h" * 64},
        outputs={"models/m.pkl": "o" * 64}, outputs_stat={"models/m.pkl": [10, 20]},
        executed_notebook_sha256="x" * 64, host={"host": "h", "user": "u"},
        tools={"doit": "0.37.0"})
    values.update(changes)
    return record.ExecuteRecord(**values)


def test_execute_record_round_trip(tmp_path):
    done = execute_record()
    path = tmp_path / "r.json"
    record.write(path, done)
    data = json.loads(path.read_text())
    assert data["schema"] == record.SCHEMA_VERSION and data["kind"] == "execute"
    assert data["key"]["key"] == "k" * 64  # nested values stay readable JSON
    assert record.read(record.ExecuteRecord, path) == done


def test_log_and_failure_records_round_trip(tmp_path):
    logged = record.LogRecord("train", "r1", "2026-01-01T00:00:06+00:00", "sqlite:///x.db",
                              ".mlops/runs/train/r1", 0.4,
                              Drift({"a": "1"}, {}, {"b": ["1", "2"]}))
    failed = record.FailureRecord("train", "execute", "failed", "ZeroDivisionError", 2,
                                  ".mlops/executed/train.failed.ipynb", "r1", "inv",
                                  "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", KEY)
    for value in (logged, failed):
        path = tmp_path / f"{value.KIND}.json"
        record.write(path, value)
        assert record.read(type(value), path) == value


def test_missing_record_reads_as_none(tmp_path):
    assert record.read(record.ExecuteRecord, tmp_path / "none.json") is None


@pytest.mark.parametrize("schema, words", [
    (None, "schema 0, written by an older mlops-tasks"),
    (record.SCHEMA_VERSION + 1, "written by a newer mlops-tasks"),
])
def test_other_schema_versions_are_refused_with_the_fix(tmp_path, schema, words):
    data = record.to_json(execute_record())
    if schema is None:
        del data["schema"]
    else:
        data["schema"] = schema
    path = tmp_path / "executed" / "train.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        record.read(record.ExecuteRecord, path, tmp_path)
    message = str(info.value)
    assert message.startswith("executed/train.json: ")
    assert words in message
    assert ("upgrade mlops-tasks" if schema else "the stage runs again") in message


def test_a_record_of_another_kind_or_incomplete_is_refused(tmp_path):
    path = tmp_path / "r.json"
    record.write(path, execute_record())
    with pytest.raises(RecordError, match="of kind 'execute', expected 'log'"):
        record.read(record.LogRecord, path)
    data = record.to_json(execute_record())
    del data["run_id"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="incomplete run record"):
        record.read(record.ExecuteRecord, path)
    path.write_text("{not json")
    with pytest.raises(RecordError, match="not valid JSON"):
        record.read(record.ExecuteRecord, path)


def test_invocation_id_is_one_per_process():
    import subprocess
    import sys

    from ..helpers import clean_env

    code = ("from mlops_tasks.run import record; "
            "print(record.invocation_id(), record.invocation_id())")

    def ids(**env: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, env=clean_env(**env)).stdout.split()

    first, second = ids(), ids()
    assert first[0] == first[1] and second[0] == second[1]  # one per process
    assert first[0] != second[0]  # another process, another id
    assert ids(MLOPS_INVOCATION_ID="jenkins-7") == ["jenkins-7", "jenkins-7"]
