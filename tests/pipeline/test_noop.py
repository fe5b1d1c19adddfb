"""The no-op stamp's decisions, as data: which command lines it applies to, what it keeps,
when a stamp is too fresh, and what a stamp on disk must match."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mlops_tasks.pipeline import noop
from mlops_tasks.project.spec import Stage, parse_stage


class Reporter:
    pass


PARAMS = {"verbosity": 2, "num_process": 0, "dep_file": ".mlops/doit.db",
          "reporter": Reporter, "outfile": sys.stdout}


def stage(text: str) -> Stage:
    return parse_stage(text, "env_specs/s.yaml", exists=lambda p: True)


@pytest.mark.parametrize("args, params, environ", [
    ([], {"always": True}, {}),  # doit -a: everything runs
    ([], {"single": True}, {}),
    (["profile=smoke"], {}, {}),  # a doit variable
    (["execute:s", "--param=x=1"], {}, {}),  # an override runs
    ([], {}, {"MLOPS_PROFILE": "smoke"}),
    ([], {"reporter": "json"}, {}),  # another reporter says other things
    ([], {"outfile": "out.txt"}, {}),
])
def test_command_lines_that_never_take_the_shortcut(args, params, environ) -> None:
    assert noop.command_key(args, {**PARAMS, **params}, Reporter, environ) is None


def test_each_command_line_has_its_own_key() -> None:
    keys = {noop.command_key(args, {**PARAMS, **extra}, Reporter, env) for args, extra, env in [
        ([], {}, {}), (["run", "train"], {}, {}), (["train"], {}, {}),
        ([], {"num_process": 2}, {}), ([], {"continue": True}, {}),
        ([], {"dep_file": "other.db"}, {}), ([], {}, {"MLOPS_VERBOSE": "1"})]}
    assert None not in keys and len(keys) == 7
    assert noop.command_key([], dict(PARAMS), Reporter, {}) == noop.command_key(
        [], dict(PARAMS), Reporter, {"UNRELATED": "x"})
    assert noop.enabled({}) and not noop.enabled({"MLOPS_NOOP_STAMP": "0"})


def test_a_stage_is_watched_by_what_its_checks_read() -> None:
    s = stage("name: s\nnotebook: nb/s.ipynb\nenv_dir: .venvs/s\ninputs: [data/raw]\n"
              "outputs: [out/model.pkl]\nmetrics: [out/m.json]\nworkdir: nb\n")
    own, contents = noop.stage_paths(s)
    assert {"env_specs/s.yaml", "nb/s.ipynb", "env_specs/s.lock", ".venvs/s",
            ".venvs/s/.mlops-env.json", ".venvs/s/pip-freeze.txt", ".mlops/executed/s.json",
            ".mlops/executed/s.ipynb", "nb"} <= set(own)
    assert contents == ["data/raw", "out/model.pkl", "out/m.json"]
    all_own, all_contents = noop.watched_paths([s, s], "env_specs", ".mlops/doit.db")
    assert len(all_own) == len(set(all_own)) and "env_specs" in all_own
    assert {"pyproject.toml", "doit.cfg", "dodo.py", ".mlops/doit.db"} <= set(all_own)
    assert "env_specs/environments" in all_contents  # its files
    assert "env_specs/environments" in all_own  # and its entries: a rename counts


def test_a_stamp_of_fresh_files_is_not_trusted() -> None:
    now = time.time_ns()
    old = now - 10 * 10**9
    taken = noop.Taken(now, {"a": [3, old], "d": [old]}, {"f": [2, 7, 99, old]},
                       {".git": True}, [], [], [], [], "db")
    assert not noop.racy(taken)
    taken.contents["f"] = [2, 7, 99, now - 10**9]  # a file in a folder written a second ago
    assert noop.racy(taken)


def test_a_folder_is_stamped_by_each_file_in_it(tmp_path: Path) -> None:
    """A rename or a move inside keeps the count, the sizes and the mtimes (what the checks'
    own summary holds); the stamp still sees it."""
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("a")
    before = noop.tree_stat(tmp_path / "d")
    (tmp_path / "d" / "a.txt").rename(tmp_path / "d" / "sub" / "a.txt")
    assert noop.tree_stat(tmp_path / "d") != before
    assert noop.tree_stat(tmp_path / "d" / "sub" / "a.txt") == noop.tree_stat(
        str(tmp_path / "d" / "sub" / "a.txt"))
    assert noop.tree_stat(tmp_path / "nothing") is None


def test_a_stamp_must_match_its_project(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "env_specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.mlops_tasks]\n")
    old = time.time() - 60
    for path in (root / "pyproject.toml", root / "env_specs"):
        os.utime(path, (old, old))
    started = time.time_ns()
    taken = noop.take(root, [], "env_specs", ".mlops/doit.db", ["a warning"],
                      since_ns=started)
    assert noop.save(root, "k", taken, ["execute:s", "log:s"])
    # a file changed after the project began to load: the run may not have seen it
    assert not noop.save(root, "late", noop.take(root, [], "env_specs", ".mlops/doit.db", [],
                                                  since_ns=old * 10**9), [])
    assert noop.current(root, "k") == noop.Replay(["execute:s", "log:s"], ["a warning"])
    assert noop.current(root, "other") is None
    (root / "doit.cfg").write_text("[GLOBAL]\n")  # doit's own config appears
    assert noop.current(root, "k") is None
    (root / "doit.cfg").unlink()
    assert noop.current(root, "k") is not None
    (root / "env_specs" / "new.yaml").write_text("name: new\n")  # the folder's entries
    assert noop.current(root, "k") is None
    (root / "env_specs" / "new.yaml").unlink()
    os.utime(root / "env_specs", (old, old))
    assert noop.current(root, "k") is not None
    running = root / ".mlops" / "executed" / "s.running.json"
    running.parent.mkdir(parents=True)
    running.write_text("{}")
    assert noop.current(root, "k") is None  # closed on the full path
    running.unlink()
    wal = root / ".mlops" / "doit.db-wal"
    wal.write_bytes(b"a change another process made, not yet in doit.db")
    assert noop.current(root, "k") is None
    wal.write_bytes(b"")
    assert noop.current(root, "k") is not None
    (root / ".git").mkdir()  # the project became a repository: other files are tracked
    assert noop.current(root, "k") is None
    (root / ".git").rmdir()
    assert noop.current(root, "k") is not None
    moved = tmp_path / "q"
    root.rename(moved)
    assert noop.current(moved, "k") is None  # same stats, other folder
    stamp = noop.stamp_file(moved, "k")
    stamp.write_text("{not json")
    assert noop.current(moved, "k") is None
