"""Audit facts: redaction of credentials, git state."""

from __future__ import annotations

import subprocess

from mlops_tasks.base.redact import redact


def test_credentials_are_redacted_from_urls():
    text = "-i https://user:s3cr3t@pypi.example.com/simple\nhttp://tok@host:5000/x"
    out = redact(text)
    assert "s3cr3t" not in out and "tok@" not in out
    assert "https://***@pypi.example.com/simple" in out


def test_git_info_reports_dirty_tree_and_diff(tmp_path):
    from mlops_tasks.run.provenance import git_info

    assert git_info(tmp_path)["sha"] == "no-git"
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("one\n")
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit",
                    "-qm", "init"], cwd=tmp_path, check=True)
    clean = git_info(tmp_path)
    assert len(clean["sha"]) == 40 and clean["dirty"] is False and clean["diff"] == ""
    assert clean["branch"] == "main"
    (tmp_path / "a.txt").write_text("two https://me:pw@example.com\n")
    dirty = git_info(tmp_path)
    assert dirty["dirty"] is True
    assert "+two https://***@example.com" in dirty["diff"]
