"""Parameter values given as text (`--param=name=value`, MLflow Projects' `-P`) keep the type
the notebook's parameters cell says (its annotation or its default, as papermill reads it),
else the type of the spec's value; a string stays the text given."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_tasks.base.errors import StageError
from mlops_tasks.project.mlproject import doit_args, mlproject_text
from mlops_tasks.project.notebooks import parameter_types, value_from_text
from mlops_tasks.project.spec import parse_stage
from mlops_tasks.run.parameters import parse_overrides

from .helpers import (
    clean_env,
    forked_doit,
    git_commit_all,
    notebook_json,
    offline_pipeline,
    write_notebook,
    write_spec,
)

SPEC = """\
name: s
notebook: nb/s.ipynb
parameters:
  word: "yes"
  code: "007"
  nothing: "null"
  tail: "a #b"
  n: 5
  day: 2024-01-01
  rate: 0.5
  flag: true
  cfg: {a: 1}
  ratios: [0.5, 1]
  seed: 42
  spare: null
outputs: [out/s.json]
"""
CELL = ('word = "no"\ncode = "1"\nnothing = "z"\ntail = ""\nn: int = 1\nday = "2000-01-01"\n'
        'rate = 1.0\nflag = False\ncfg = {}\nratios = []\nseed = "0"  # text on purpose\n'
        'limit: "int | None" = None\ncount = None  # type: int\nspare = None')
STAGE = parse_stage(SPEC, "env_specs/s.yaml")
NB = notebook_json([("parameters", CELL), (None, "print(word)")])
TYPES = parameter_types(NB)

TEXT_TO_VALUE = [
    ("word=yes", "word", "yes"),  # YAML would read True
    ("word=no", "word", "no"),
    ("word=", "word", ""),
    ("code=007", "code", "007"),  # YAML would read 7
    ("nothing=null", "nothing", "null"),  # YAML would read None
    ("tail=a #b", "tail", "a #b"),  # YAML would drop ' #b' as a comment
    ("tail= spaced ", "tail", " spaced "),
    ("day=2024-01-01", "day", "2024-01-01"),  # YAML would read a date; the spec's is text
    ("n=7", "n", 7),
    ("n=007", "n", 7),
    ("rate=1", "rate", 1.0),
    ("rate=2.5e-3", "rate", 0.0025),
    ("flag=false", "flag", False),
    ("flag=Yes", "flag", True),
    ("cfg={\"a\": 2}", "cfg", {"a": 2}),
    ("cfg={'a': [1, 2]}", "cfg", {"a": [1, 2]}),
    ("ratios=[1, 2]", "ratios", [1, 2]),
    ("seed=042", "seed", "042"),  # the cell says text, though the spec's value is a number
    ("limit=None", "limit", None),
    ("limit=3", "limit", 3),
    ("count=4", "count", 4),  # papermill's `# type: int` comment
    ("spare=abc", "spare", "abc"),  # neither says: papermill's -p rule
    ("spare=12", "spare", 12),
    ("spare=null", "spare", None),
    ("extra=2024-01-01", "extra", "2024-01-01"),
]


def overrides(items: list[str], tmp_path: Path, nb: dict | None = None) -> dict:
    path = tmp_path / "nb" / "s.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb or NB), encoding="utf-8")
    return parse_overrides(STAGE, items, tmp_path)


@pytest.mark.parametrize(("item", "name", "value"), TEXT_TO_VALUE)
def test_an_override_keeps_the_type_its_notebook_or_spec_says(tmp_path, item, name, value):
    got = overrides([item], tmp_path)[name]
    assert got == value and type(got) is type(value)


def test_without_a_parameters_cell_the_spec_value_gives_the_type(tmp_path):
    plain = notebook_json([(None, "print(1)")])
    got = overrides(["n=8", "word=on", "code=09", "seed=09", "rate=3"], tmp_path, plain)
    assert got == {"n": 8, "word": "on", "code": "09", "seed": 9, "rate": 3.0}
    assert isinstance(got["rate"], float)


@pytest.mark.parametrize(("item", "words"), [
    ("n=abc", ["--param=n=abc", "'n' must be an int", "parameters cell of nb/s.ipynb",
               "'abc'", "--param=n=5"]),
    ("n=5.5", ["'n' must be an int"]),
    ("flag=maybe", ["'flag' must be a bool", "--param=flag=true"]),
    ("ratios=3", ["'ratios' must be a list", "[1, 2]"]),
    ("limit=x", ["'limit' must be an int (or None)"]),
    ("cfg=[1]", ["'cfg' must be a dict"]),
])
def test_a_text_that_is_not_of_its_type_is_refused_with_the_rule(tmp_path, item, words):
    with pytest.raises(StageError) as caught:
        overrides([item], tmp_path)
    message = str(caught.value)
    assert message.startswith("execute:s: ")
    for word in words:
        assert word in message, message


def test_a_refusal_names_the_spec_when_the_notebook_says_nothing(tmp_path):
    plain = notebook_json([(None, "print(1)")])
    with pytest.raises(StageError, match=r"as its value in env_specs/s\.yaml says"):
        overrides(["n=five"], tmp_path, plain)


def test_the_parameters_cell_types_as_papermill_reads_them():
    assert TYPES == {"word": "str", "code": "str", "nothing": "str", "tail": "str", "n": "int",
                     "day": "str", "rate": "float", "flag": "bool", "cfg": "dict",
                     "ratios": "list", "seed": "str", "limit": "int | None", "count": "int"}
    assert value_from_text("", "str") == ""


def test_the_mlproject_defaults_are_the_stage_and_nothing_is_an_override():
    text = mlproject_text("x", [STAGE])
    entry = yaml.safe_load(text)["entry_points"]["s"]
    defaults = {k: str(v["default"]) for k, v in entry["parameters"].items()}
    assert doit_args(STAGE, defaults, TYPES) == ["run", "s"]
    assert doit_args(STAGE, defaults, {}) == ["run", "s"]
    # the same values written otherwise are no override either
    assert doit_args(STAGE, {"cfg": '{"a":1}', "n": "5", "ratios": "[0.5,1]"},
                     TYPES) == ["run", "s"]


@pytest.mark.parametrize(("given", "expected"), [
    ({"word": "no"}, ["--param=word=no"]),
    ({"code": "7"}, ["--param=code=7"]),
    ({"tail": "a"}, ["--param=tail=a"]),
    ({"n": "6"}, ["--param=n=6"]),
    ({"day": "2024-01-02"}, ["--param=day=2024-01-02"]),
    ({"flag": "false", "word": "yes"}, ["--param=flag=false"]),
])
def test_an_mlproject_value_other_than_the_specs_is_an_override(given, expected):
    assert doit_args(STAGE, given, TYPES) == ["run", "execute:s", *expected]


def test_an_mlproject_value_not_of_its_type_is_refused():
    with pytest.raises(StageError, match=r"-P n=abc: 'n' must be an int.*e\.g\. -P n=5"):
        doit_args(STAGE, {"n": "abc"}, TYPES)


# -- a real project ---------------------------------------------------------------------------

NOTEBOOK = [
    ("parameters", 'word = "no"\ncode = "1"\nn: int = 1\nday = "2000-01-01"\ntail = ""'),
    (None, "assert n >= 0, 'n must not be negative'\n"
           "import json, pathlib\npathlib.Path('out').mkdir(exist_ok=True)\n"
           "pathlib.Path('out/s.json').write_text(json.dumps(\n"
           "    dict(word=word, code=code, n=n, day=day, tail=tail)))"),
]


def status(root: Path) -> str:
    return forked_doit(root, "list", "--all", "--status").stdout


def mlproject_call(root: Path, *given: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlops_tasks.mlproject", "s", *given],
                          cwd=root, env=clean_env(), capture_output=True, text=True,
                          timeout=600)


@pytest.mark.integration
def test_text_values_on_a_real_stage(tmp_path, wheelhouse):
    root = offline_pipeline(tmp_path / "p", wheelhouse, "param-text")
    write_spec(root, "s", """
        name: s
        notebook: nb/s.ipynb
        parameters: {word: "yes", code: "007", n: 5, day: 2024-01-01, tail: "a #b"}
        outputs: [out/s.json]
    """)
    write_notebook(root / "nb" / "s.ipynb", NOTEBOOK)
    (root / ".gitignore").write_text(".mlops/\n.venvs/\nout/\n", encoding="utf-8")
    git_commit_all(root)
    forked_doit(root, "run", "s")
    written = (root / "out" / "s.json").read_text()
    assert yaml.safe_load(written) == {"word": "yes", "code": "007", "n": 5,
                                       "day": "2024-01-01", "tail": "a #b"}
    forked_doit(root, "mlproject")
    entry = yaml.safe_load((root / "MLproject").read_text())["entry_points"]["s"]
    defaults = [f"{k}={v['default']}" for k, v in entry["parameters"].items()]

    # the entry point with its defaults is `doit run s`: up to date, nothing runs
    proc = mlproject_call(root, *defaults)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "-- execute:s" in proc.stdout and ".  execute:s" not in proc.stdout, proc.stdout
    assert not (root / ".mlops" / "overrides").exists()

    # a value not of its type: refused before doit runs, rc 3, no traceback
    proc = mlproject_call(root, *defaults[:-1], "n=five")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "'n' must be an int" in proc.stderr and "Traceback" not in proc.stderr

    # a date as an override reaches the notebook as its text
    proc = forked_doit(root, "run", "execute:s", "--param=day=2024-02-03", "--param=code=08")
    (folder,) = (root / ".mlops" / "overrides" / "s").iterdir()
    (kept,) = folder.rglob("s.json")
    assert yaml.safe_load(kept.read_text())["day"] == "2024-02-03"
    assert yaml.safe_load(kept.read_text())["code"] == "08"
    assert (root / "out" / "s.json").read_text() == written

    # failed override runs (a refused value, a failing cell) leave the stage as it was
    bad = forked_doit(root, "run", "execute:s", "--param=n=x", check=False)
    assert bad.returncode != 0 and "'n' must be an int" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    failed = forked_doit(root, "run", "execute:s", "--param=n=-1", check=False)
    assert failed.returncode != 0 and "n must not be negative" in failed.stdout + failed.stderr
    listed = status(root)
    assert "U execute:s" in listed and "U log:s" in listed, listed
    info = forked_doit(root, "info", "execute:s").stdout
    assert "never executed" not in info, info
    assert (root / "out" / "s.json").read_text() == written
