"""Command names, taken from doit itself and from this package's doit plugins: stage names
may not take them, and the commands that change the workspace take its mutex."""

from __future__ import annotations

from doit.doit_cmd import DoitMain

# doit's own commands, as the installed doit names them.
DOIT_COMMANDS = frozenset(cmd.get_name() for cmd in DoitMain.DOIT_CMDS)
# This package's commands (the entry points under doit.COMMAND in pyproject.toml).
OWN_COMMANDS = frozenset({"wheels", "lock", "gc", "audit", "jenkinsfile", "report", "mlproject",
                          "jupyter", "reproduce"})
# The task prefixes of every stage, and doit's words for task selection.
TASK_PREFIXES = frozenset({"venv", "kernel", "execute", "log", "default", "all"})
# doit commands this package replaces with versions that take the workspace mutex and stop
# kernels on a signal: every command that runs tasks or writes the dependency DB.
GUARDED_COMMANDS = frozenset({"run", "clean", "forget", "ignore", "reset-dep", "strace"})

# All doit commands this package registers in place of doit's own (`list` only reads).
REPLACED_COMMANDS = GUARDED_COMMANDS | {"list", "info"}

RESERVED_NAMES = DOIT_COMMANDS | OWN_COMMANDS | TASK_PREFIXES | {"auto"}
