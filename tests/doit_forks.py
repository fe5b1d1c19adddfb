"""A process that has imported doit, mlops-tasks, MLflow and papermill once, and forks a child
per `doit` command the tests send it: each child is a fresh `python -m doit` process (its own
pid, environment, working folder, module state and exit code) that skips the imports (most
of every command that touches MLflow). Used by tests/helpers.py `forked_doit`; POSIX only.

Protocol, one JSON line each way: {"cwd", "args", "env", "out", "err"} in; {"pid"} once the
child runs, then {"code"} when it has exited. End of input ends the process."""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import pkgutil
import sys
import traceback

PRELOAD = ("doit.doit_cmd", "doit.cmd_run", "doit.dependency", "papermill", "nbclient",
           "jupyter_client", "sqlalchemy", "alembic", "mlflow", "mlflow.tracking",
           "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.db.utils",
           "mlflow.artifacts")


def preload() -> None:
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import mlops_tasks

    for info in pkgutil.walk_packages(mlops_tasks.__path__, "mlops_tasks."):
        if not info.name.endswith((".kernel_hook", ".cli", ".mlproject")):
            with contextlib.suppress(ImportError):
                importlib.import_module(info.name)


def child(request: dict, private: tuple[int, int]) -> None:
    """Become `python -m doit ARGS` in request's folder and environment; never returns."""
    code = 1
    try:
        for fd in private:
            os.close(fd)
        for target, path in ((1, request["out"]), (2, request["err"])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import doit.__main__ as doit_main
        from doit.doit_cmd import DoitMain

        sys.modules["__main__"] = doit_main  # as `python -m doit` has it
        sys.argv = [doit_main.__file__, *request["args"]]
        DoitMain.BIN_NAME = "-m"  # what `python -m doit` has in argv[0] as doit is imported
        try:
            doit_main.main()
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
            if isinstance(end.code, str):
                sys.stderr.write(end.code + "\n")
        except BaseException:
            traceback.print_exc()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve() -> None:
    requests, replies = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):  # nothing the imports print can reach the protocol
        os.dup2(null, fd)
    preload()
    reader = os.fdopen(requests, encoding="utf-8")
    writer = os.fdopen(replies, "w", encoding="utf-8")
    writer.write(json.dumps({"ready": os.getpid()}) + "\n")
    writer.flush()
    for line in reader:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(null, 0)
            child(request, (requests, replies))
        writer.write(json.dumps({"pid": pid}) + "\n")
        writer.flush()
        _, status = os.waitpid(pid, 0)
        writer.write(json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n")
        writer.flush()


if __name__ == "__main__":
    serve()
