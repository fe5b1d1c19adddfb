"""`forked_doit` (tests/helpers.py) stands for `python -m doit`: each command is a fresh
process in the project's folder with exactly the environment given, and says and exits as
the real command does."""

from __future__ import annotations

import os

import pytest

from .helpers import clean_env, doit, forked_doit, scaffolded, write_notebook, write_spec

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks: POSIX only")

PROBE_DODO = """\
import os, sys
print("probe", os.getpid(), os.environ.get("PROBE"), os.getcwd(), "mlops_tasks" in sys.modules)
from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401
"""


def tiny(root):
    (root / "env_specs").mkdir(parents=True)
    scaffolded(root, "forks")
    write_notebook(root / "nb" / "a.ipynb", [(None, "print(1)")])
    write_spec(root, "a", "name: a\nnotebook: nb/a.ipynb\n")
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("forks") / "p")


def test_each_command_is_a_new_process_with_the_environment_given(tmp_path):
    root = tiny(tmp_path / "p")
    (root / "dodo.py").write_text(PROBE_DODO, encoding="utf-8")
    seen = []
    for value in ("one", "two", None):
        env = clean_env() if value is None else clean_env(PROBE=value)
        out = forked_doit(root, "list", env=env).stdout
        (line,) = [line for line in out.splitlines() if line.startswith("probe ")]
        _, pid, probe, cwd, loaded = line.split()
        assert (probe, cwd, loaded) == (str(value), str(root), "True")
        seen.append(int(pid))
    assert len(set(seen)) == 3 and os.getpid() not in seen


@pytest.mark.parametrize("args", [("list", "--all", "--status"), ("run", "nosuch")])
def test_says_and_exits_as_the_real_command(project, args):
    real, forked = doit(project, *args, check=False), forked_doit(project, *args, check=False)
    assert (forked.returncode, forked.stdout, forked.stderr) == \
           (real.returncode, real.stdout, real.stderr)
