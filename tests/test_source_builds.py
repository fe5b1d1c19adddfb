"""A package without a wheel is said to be built from source while it builds, and a failed
build is named as such, not blamed on the index."""

from __future__ import annotations

import platform
import subprocess
import tarfile
from pathlib import Path

import pytest

from mlops_tasks.env.install_errors import failed_builds, missing_requirements
from mlops_tasks.env.venv import _progress
from mlops_tasks.project.spec import Stage

from .helpers import clean_env, doit, make_project, set_config, write_spec

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
    from mlops_tasks.env.install_errors import unreachable_index

    uv = ("error: Failed to fetch: `http://127.0.0.1:9/simple/idna/`\n"
          "  Caused by: Request failed after 0 retries\n"
          "  Caused by: tcp connect error\n  Caused by: Connection refused (os error 111)\n")
    assert unreachable_index(uv) == ("http://127.0.0.1:9/simple/idna/", "Connection refused")
    assert unreachable_index("Because tabulate was not found in the package registry") is None


# -- real installers on a real failing sdist -------------------------------------------------

BACKEND = '''import sys
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    import os
    info = os.path.join(metadata_directory, "badpkg-1.0.dist-info")
    os.makedirs(info)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: badpkg\\nVersion: 1.0\\n")
    return "badpkg-1.0.dist-info"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for i in range(100):  # a long compile: the installer's own summary scrolls out of its tail
        print(f"gcc -c badpkg/src{i}.c -o build/src{i}.o", file=sys.stderr)
    raise SystemExit("error: command 'gcc' failed: No such file or directory")
'''


def local_index(folder: Path) -> str:
    """A package index on disk (PEP 503, file://) holding one sdist, badpkg 1.0, whose build
    fails after a long log (no build requirement: it builds with no network)."""
    src = folder / "src" / "badpkg-1.0"
    src.mkdir(parents=True)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = '
                                        '"backend"\nbackend-path = ["."]\n')
    (src / "backend.py").write_text(BACKEND)
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: badpkg\nVersion: 1.0\n")
    project = folder / "simple" / "badpkg"
    project.mkdir(parents=True)
    with tarfile.open(project / "badpkg-1.0.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="badpkg-1.0")
    (project / "index.html").write_text('<a href="badpkg-1.0.tar.gz">badpkg-1.0.tar.gz</a>\n')
    (folder / "simple" / "index.html").write_text('<a href="badpkg/">badpkg</a>\n')
    return (folder / "simple").as_uri()


def install(tmp_path: Path, wheelhouse: Path, installer: str, package: str,
            ) -> subprocess.CompletedProcess[str]:
    """`doit run venv:make` online, the index a local one, ipykernel from the wheelhouse."""
    root = make_project(tmp_path / "proj", wheelhouse, with_use=False)
    set_config(root, index_policy="online", installer=installer)
    write_spec(root, "make", (root / "env_specs" / "make.yaml").read_text()
               .replace("name: make", f"name: make\npackages: [{package!r}]"))
    url = local_index(tmp_path / "index")
    env = clean_env(UV_INDEX_URL=url, UV_DEFAULT_INDEX=url, PIP_INDEX_URL=url)
    proc = doit(root, "run", "venv:make", env=env, check=False)
    assert proc.returncode != 0
    return proc


@pytest.mark.integration
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_failed_source_build_says_so_with_the_build_error(tmp_path, wheelhouse, installer):
    proc = install(tmp_path, wheelhouse, installer, "badpkg")
    text = proc.stdout + proc.stderr
    assert (f"venv:make: badpkg has no wheel for Python {platform.python_version()} on this "
            "platform; building it from source was attempted and failed:") in text
    assert "error: command 'gcc' failed: No such file or directory" in text
    assert "gcc -c badpkg/src99.c" in text  # the tail of the build's own log
    assert "a version of badpkg that publishes a wheel for Python" in text
    assert f"a wheel of badpkg in {wheelhouse}/" in text and "`doit wheels make`" in text
    assert "not available from the package index" not in text


@pytest.mark.integration
@pytest.mark.parametrize("installer", ["uv", "pip"])
@pytest.mark.parametrize(("package", "said"), [
    ("nothere", "nothere was not found on the package index"),
    ("badpkg==2.0", "the package index has no version of badpkg matching badpkg==2.0"),
])
def test_not_found_and_no_matching_version_are_told_apart(tmp_path, wheelhouse, installer,
                                                          package, said):
    lines = install(tmp_path, wheelhouse, installer, package).stdout.splitlines()
    summary = lines[lines.index("TaskFailed - taskid:venv:make") + 1]
    assert summary.startswith(f"venv:make: {said}")
    assert summary.endswith("; check the requirement in env_specs/make.yaml.")
    if installer == "pip" and package == "badpkg==2.0":
        assert "(it has 1.0)" in summary  # pip says which versions it saw
    text = "\n".join(lines)
    assert "building it from source" not in text


# -- telling failures apart, on what uv and pip really print ----------------------------------

UV_BUILD_REQUIRES = """error: Failed to download and build `needsst==1.0`
  cause: Failed to resolve requirements from `build-system.requires`
  cause: No solution found when resolving: `setuptools>=40`
  cause: Because setuptools was not found in the provided package locations and you require \
setuptools>=40, we can conclude that your requirements are unsatisfiable.
"""
UV_ONLY = """error: No solution found when resolving dependencies
  cause: Because only badpkg==1.0 is available and you require badpkg>=2, we can conclude \
that your requirements are unsatisfiable.
"""
PIP_BUILD_LOG = """  error: subprocess-exited-with-error

  × Building wheel for badpkg (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> [3 lines of output]
      fetching https://example.com/blob: Connection refused
      Traceback (most recent call last):
        error: command 'gcc' failed
      [end of output]

  note: This error originates from a subprocess, and is likely not a problem with pip.
  ERROR: Failed building wheel for badpkg
"""


def test_failures_are_told_apart():
    from mlops_tasks.env.install_errors import Missing, diagnose

    needs = diagnose(UV_BUILD_REQUIRES)
    assert (needs.kind, needs.names, needs.needed_to_build) == (
        "missing", ("setuptools",), ("needsst",))
    only = diagnose(UV_ONLY)
    assert only.missing == (Missing("badpkg", ">=2", "1.0"),)
    assert only.missing[0].on_index() == ("the package index has no version of badpkg "
                                          "matching badpkg>=2 (it has 1.0)")
    build = diagnose(PIP_BUILD_LOG)  # the build's own log may speak of connections
    assert build.kind == "build" and build.names == ("badpkg",)
    assert build.detail.splitlines() == ["  fetching https://example.com/blob: Connection "
                                         "refused", "  Traceback (most recent call last):",
                                         "    error: command 'gcc' failed"]
    assert diagnose(UV_FAILED).detail == "  boom in setup"
    assert diagnose("error: something else").kind == "other"
