"""A package without a wheel is said to be built from source while it builds, and a failed
build is named as such, not blamed on the index."""

from __future__ import annotations

from mlops_tasks.envs import _progress, failed_builds, missing_requirements
from mlops_tasks.spec import Stage

UV_FAILED = """error: Failed to build `badpkg==1.0`
  cause: The build backend returned an error
  cause: Call to `setuptools.build_meta.get_requires_for_build_wheel` failed (exit status: 1)

         [stderr]
         boom in setup
"""
PIP_FAILED = """  error: subprocess-exited-with-error
  ERROR: Failed building wheel for badpkg
Failed to build badpkg
ERROR: Could not build wheels for badpkg, which is required to install pyproject.toml-based
"""


def test_failed_source_builds_are_named_and_not_taken_for_missing_wheels():
    assert failed_builds(UV_FAILED) == ["badpkg"]
    assert failed_builds(PIP_FAILED) == ["badpkg"]
    assert missing_requirements(UV_FAILED) == []
    assert failed_builds("Because tabulate was not found in the package registry") == []


def test_a_source_build_is_announced_while_it_runs(capsys):
    on_line = _progress(Stage("s", "env_specs/s.yaml", "n.ipynb", ".venvs/s", "k"), "3.12.1")
    for line in ("Resolved 3 packages in 4ms", "   Building badpkg==1.0",
                 "      Built badpkg==1.0", "Installed 3 packages in 2ms"):
        on_line(line)
    out = capsys.readouterr().out.splitlines()
    announced = ("venv:s: building badpkg 1.0 from source (no wheel for Python 3.12.1 on "
                 "this platform); this can take minutes")
    assert out.count(announced) == 1  # not a terminal: the installer's lines in full too
    assert out.index("   Building badpkg==1.0") < out.index(announced)


def test_an_unreachable_index_is_told_apart_from_a_missing_package():
    from mlops_tasks.envs import unreachable_index

    uv = ("error: Failed to fetch: `http://127.0.0.1:9/simple/idna/`\n"
          "  Caused by: Request failed after 0 retries\n"
          "  Caused by: tcp connect error\n  Caused by: Connection refused (os error 111)\n")
    assert unreachable_index(uv) == ("http://127.0.0.1:9/simple/idna/", "tcp connect error")
    assert unreachable_index("Because tabulate was not found in the package registry") is None
