"""Docs kept honest: every spec key and setting documented, CI runs the README's command."""

from __future__ import annotations

from pathlib import Path

from mlops_tasks.project.config import KEYS
from mlops_tasks.project.spec import KNOWN_KEYS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_spec_key_is_documented():
    for key in KNOWN_KEYS:
        assert f"| `{key}` |" in README, f"spec key {key} missing from README"


def test_every_setting_is_documented():
    for key in KEYS:
        assert f"\n{key} = " in README, f"setting {key} missing from README"


def test_ci_runs_the_readme_test_command_word_for_word():
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
             if "pytest" in line]
    assert lines, ".ci/run runs no pytest"
    for line in lines:
        assert line.strip() in README
