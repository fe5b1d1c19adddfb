"""Credential redaction: every form of user part in a URL is hidden, in time linear in a
line's length, in spec errors, and in a stage's cell output (console, log, notebook)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from mlops_tasks.base.errors import SpecError
from mlops_tasks.base.redact import redact, redact_data
from mlops_tasks.project.spec import parse_stage

from ..helpers import clean_env, doit, git_commit_all, offline_pipeline, write_notebook, write_spec

HIDDEN = [
    ("https://user:s3cr3t@pypi.example.com/simple", "https://***@pypi.example.com/simple"),
    ("http://tok3n@host:5000/x", "http://***@host:5000/x"),
    ("-i https://user:s3cr3t@pypi.example.com/simple",
     "-i https://***@pypi.example.com/simple"),
    ("--index-url=https://user:s3cr3t@host/simple", "--index-url=https://***@host/simple"),
    ("git+https://user:s3cr3t@github.com/org/repo.git@v1",
     "git+https://***@github.com/org/repo.git@v1"),
    ("postgresql+psycopg2://user:s3cr3t@db:5432/x", "postgresql+psycopg2://***@db:5432/x"),
    ("s3://key:s3cr3t@bucket/path", "s3://***@bucket/path"),
    ("HTTPS://USER:S3CR3T@HOST", "HTTPS://***@HOST"),
    ("uri='http://user:s3cr3t@127.0.0.1:5000'", "uri='http://***@127.0.0.1:5000'"),
    ('{"uri": "http://user:s3cr3t@h"}', '{"uri": "http://***@h"}'),
    # forms the user part may take that a simple pattern misses
    ("https://:s3cr3t@host/x", "https://***@host/x"),  # a token with an empty user name
    ("https://user:p@ss@host/x", "https://***@host/x"),  # an unescaped @ in the password
    ("https://user:p?s3@host/x", "https://***@host/x"),
    ("a https://u:s3cr3t@h1/ and http://v:s3cr3t@h2 end", "a https://***@h1/ and "
     "http://***@h2 end"),
    ("https://u:s3cr3t@h?next=http://v:s3cr3t@k/", "https://***@h?next=http://***@k/"),
]

KEPT = [
    "https://host/path?email=a@b.example",
    "mail me at someone@example.com",
    "http://127.0.0.1:5000/#/experiments/1",
    "http://@host/x",
    "no url at all",
    "",
]


@pytest.mark.parametrize(("text", "expected"), HIDDEN)
def test_every_form_of_credentials_in_a_url_is_hidden(text, expected):
    assert redact(text) == expected
    assert "s3cr3t" not in redact(text).lower() and redact(redact(text)) == redact(text)


@pytest.mark.parametrize("text", KEPT)
def test_text_without_credentials_is_left_as_it_is(text):
    assert redact(text) == text


def test_nested_values_are_redacted():
    assert redact_data({"a": ["http://u:p@h", ("x", 1)], "b": None}) == {
        "a": ["http://***@h", ["x", 1]], "b": None}


# -- linear time -------------------------------------------------------------------------------

# Lines that made a backtracking pattern scan from every position (a long word, many URLs
# without credentials, colons, at signs).
SHAPES = ["a", "http://a", "a:", "a://b@", "x@", "u:p", "a-b.c+d", "https://user:tok@host/ "]


def _seconds(text: str, repeats: int) -> float:
    """CPU seconds of this process: waiting for a core another process holds does not count."""
    start = time.process_time()
    for _ in range(repeats):
        redact(text)
    return time.process_time() - start


def _growth(unit: str, size: int = 2000) -> float:
    """How many times longer a line eight times as long takes: the best of five interleaved
    timings of each, every timing 20 ms or more, so that other load on the machine
    disturbs both alike."""
    small = unit * (size // len(unit))
    big = small * 8
    repeats = 1
    while _seconds(small, repeats) < 0.02:
        repeats *= 2
    best_small = best_big = float("inf")
    for _ in range(5):
        best_small = min(best_small, _seconds(small, repeats))
        best_big = min(best_big, _seconds(big, repeats))
    return best_big / best_small


@pytest.mark.parametrize("unit", SHAPES)
def test_redaction_time_grows_linearly_with_the_line(unit):
    """Eight times the line takes about eight times as long (a quadratic pattern: 64).
    A burst of load elsewhere can spoil one measure, not three in a row."""
    ratio = _growth(unit)
    for _ in range(2):
        if ratio < 20:
            break
        ratio = min(ratio, _growth(unit))
    assert ratio < 20, f"{unit!r}: a line 8x longer took {ratio:.1f}x as long"


def test_a_one_megabyte_line_is_redacted_at_once():
    line = ("word " * 50_000 + "a" * 250_000 + " https://user:s3cr3t@host/x ") * 3
    start = time.process_time()
    out = redact(line)
    assert time.process_time() - start < 1.0  # CPU time: about 0.1 s
    assert "s3cr3t" not in out and out.count("https://***@host/x") == 3


# -- spec errors --------------------------------------------------------------------------------

URL = "https://user:s3cr3t@pypi.example.com/simple"


@pytest.mark.parametrize(("text", "line", "shown"), [
    (f"packages:\n  - --index-url={URL}\n  - pandas\n", 3, f"'--index-url={redact(URL)}'"),
    (f"packages: {{extra: {URL}}}\n", 3, redact(URL)),
    (f"packages:\n  - pandas=2.0 --index-url {URL}\n", 3, "use '==' for an exact version"),
    (f"{URL}: 1\n{URL}: 2\n", 4, f"'{redact(URL)}' is given twice"),
    (f"{URL}: 1\n", 3, f"unknown key '{redact(URL)}'"),
])
def test_spec_errors_hide_the_credentials_they_quote(text, line, shown):
    with pytest.raises(SpecError) as info:
        parse_stage("name: s\nnotebook: s.ipynb\n" + text, "env_specs/s.yaml")
    message = str(info.value)
    assert "s3cr3t" not in message and shown in message, message
    assert info.value.line == line and message.startswith(f"env_specs/s.yaml:{line}: ")


# -- cell output: console, stage log, executed notebook -----------------------------------------

PRINTS_URI = [
    (None, 'import os\nuri = os.environ["MLFLOW_TRACKING_URI"]\nprint("tracking at", uri)'),
    (None, "uri"),  # its value as the cell's result (text/plain)
    (None, 'os.system("echo kernel process says $MLFLOW_TRACKING_URI")'),  # not a cell output
]


def _cell_texts(notebook: Path) -> str:
    """Every output of every cell, as one text."""
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    return json.dumps([cell.get("outputs", []) for cell in nb.cells])


@pytest.mark.integration
def test_credentials_a_notebook_prints_are_hidden_everywhere(tmp_path, wheelhouse,
                                                             mlflow_server):
    root = offline_pipeline(tmp_path / "proj", wheelhouse, "redaction")
    for name, cells in (("shows", PRINTS_URI),
                        ("fails", [*PRINTS_URI, (None, 'raise ValueError("bad " + uri)')])):
        write_spec(root, name, f"name: {name}\nnotebook: notebooks/{name}.ipynb\n")
        write_notebook(root / "notebooks" / f"{name}.ipynb", cells)
    git_commit_all(root)
    secret_uri = mlflow_server.url.replace("http://", "http://user:s3cr3tpw@")
    shown = mlflow_server.url.replace("http://", "http://***@")
    env = clean_env(MLFLOW_TRACKING_URI=secret_uri)

    ok = doit(root, "run", "shows", env=env)
    failed = doit(root, "run", "fails", env=env, check=False)
    assert failed.returncode != 0
    for proc in (ok, failed):  # not a terminal: cell output is shown in full
        console = proc.stdout + proc.stderr
        assert "s3cr3tpw" not in console and f"tracking at {shown}" in console, console
    for name in ("shows", "fails"):
        log = (root / ".mlops" / "logs" / f"{name}.log").read_text(encoding="utf-8")
        assert "s3cr3tpw" not in log and f"tracking at {shown}" in log
        assert f"kernel process says {shown}" in log
    executed = root / ".mlops" / "executed"
    for notebook in (executed / "shows.ipynb", executed / "fails.failed.ipynb"):
        text = notebook.read_text(encoding="utf-8")
        assert "s3cr3tpw" not in text
        outputs = _cell_texts(notebook)
        assert f"tracking at {shown}" in outputs and f"'{shown}'" in outputs
        meta = nbformat.read(notebook, as_version=4).metadata.papermill
        assert meta.output_path.endswith(".partial.ipynb") and Path(meta.output_path).is_absolute()
    assert f'"evalue": "bad {shown}"' in _cell_texts(executed / "fails.failed.ipynb")
