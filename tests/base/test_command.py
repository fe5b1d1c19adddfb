"""The one door for processes, against a tiny real script with a known exit-code protocol:
stdout returned, never a shell, stderr streamed line by line, typed failures with argv, the
exit code and stderr's tail, a timeout that kills."""

from __future__ import annotations

import sys
import time

import pytest

from mlops_tasks.base import command
from mlops_tasks.base.errors import CommandFailed

# argv[1]: what to do; prints to stdout and stderr, exits with argv[2]
SCRIPT = """
import sys, time
what, code = sys.argv[1], int(sys.argv[2])
if what == "talk":
    print("out line")
    for i in range(40):
        print(f"err {i}", file=sys.stderr, flush=True)
elif what == "sleep":
    time.sleep(30)
elif what == "args":
    print("|".join(sys.argv[3:]))
sys.exit(code)
"""


def script(what: str, code: int = 0, *extra: str) -> list[str]:
    return [sys.executable, "-c", SCRIPT, what, str(code), *extra]


def test_stdout_is_returned_and_arguments_reach_the_process_unchanged():
    odd = ["a b", "$(echo hi)", "; rm -rf /", "*", ""]
    assert command.output(script("args", 0, *odd)) == "|".join(odd)  # no shell in between


def test_a_failure_carries_argv_exit_code_and_the_tail_of_stderr():
    argv = script("talk", 3)
    with pytest.raises(CommandFailed) as info:
        command.run(argv, echo=False)
    err = info.value
    assert err.returncode == 3 and err.argv == argv
    lines = err.stderr_tail.splitlines()
    assert lines == [f"err {i}" for i in range(40 - command.TAIL_LINES, 40)]
    assert str(err).startswith("command failed with exit code 3: ")


def test_stderr_lines_stream_as_they_come():
    seen: list[str] = []
    out = command.run(script("talk", 0), echo=False, on_stderr=seen.append)
    assert out == "out line\n" and seen == [f"err {i}" for i in range(40)]


def test_a_missing_program_and_a_timeout_are_typed_failures():
    with pytest.raises(CommandFailed) as missing:
        command.run(["no-such-program-here"], echo=False)
    assert missing.value.returncode == 127
    start = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out after 0.5 s"):
        command.run(script("sleep"), echo=False, timeout=0.5)
    assert time.monotonic() - start < 10  # killed, not waited for
