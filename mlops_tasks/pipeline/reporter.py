"""doit's console reporter, plus what a run that ran tasks leaves behind for Jenkins: the
outcome and duration of every stage task, written as .mlops/reports/junit.xml when the run
ends, whether it finished, failed or was interrupted (doit calls `complete_run` as it
unwinds from a signal too)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from doit.reporter import ConsoleReporter

from mlops_tasks.base import console, interrupt
from mlops_tasks.base.files import atomic_write
from mlops_tasks.project import layout
from mlops_tasks.render.junit import Case, junit_xml
from mlops_tasks.run import record
from mlops_tasks.run.provenance import host_info


def _stage_task(task: Any) -> bool:
    return bool(task.actions) and ":" in task.name and not task.name.startswith("_")


def _stage(task: Any) -> str:
    return str(task.name.partition(":")[2])


class PipelineReporter(ConsoleReporter):
    """Also notes whether the run did anything but find tasks up to date, and which (a no-op
    is stamped for the next one: pipeline/noop.py); `last` is the run's reporter."""

    desc = "console output, and .mlops/reports/junit.xml"
    last: PipelineReporter | None = None

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self.root = Path.cwd()
        self.started: dict[str, float] = {}
        self.cases: list[Case] = []
        self.timestamp = record.timestamp()
        self.uptodate: list[str] = []
        self.did_work = False
        PipelineReporter.last = self

    def execute_task(self, task: Any) -> None:
        if task.actions:
            self.did_work = True
        if console.live():  # one line per task when it ends; meanwhile a live line
            if task.actions and not task.name.startswith("_"):
                console.progress(task.name, "running")
        else:
            super().execute_task(task)
        if _stage_task(task):
            self.started[task.name] = time.monotonic()

    def _seconds(self, task: Any) -> float:
        return time.monotonic() - self.started.pop(task.name, time.monotonic())

    def _line(self, task: Any, mark: str, text: str) -> None:
        if console.live() and not task.name.startswith("_"):
            console.progress_done(task.name)
            console.write(f"{mark} {task.name:<28} {text}\n")

    def skip_uptodate(self, task: Any) -> None:
        self.uptodate.append(task.name)
        if console.live():
            self._line(task, "-", "up to date")
        else:
            super().skip_uptodate(task)

    def add_success(self, task: Any) -> None:
        super().add_success(task)
        if task.name in self.started:
            seconds, restored = self._seconds(task), self._restored(task)
            self.cases.append(Case(task.name, seconds, "passed", restored_from=restored))
            self._line(task, "\u2713", f"{seconds:6.1f} s" + (
                f"  restored from run {restored}" if restored else ""))
        elif task.actions:
            self._line(task, "\u2713", "done")

    def skip_ignore(self, task: Any) -> None:
        self.did_work = True  # not a plain no-op: `doit ignore` has a say
        super().skip_ignore(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        self.did_work = True
        if task.name in self.started:
            self._line(task, "\u2717", f"{time.monotonic() - self.started[task.name]:6.1f} s"
                       "  failed")
        super().add_failure(task, fail)
        if task.name not in self.started:
            return
        seconds = self._seconds(task)
        message = str(fail.get_msg()).strip()
        cause = self._failure(task)
        if cause is not None:
            where = f"code cell {cause.cell}: " if cause.cell else ""
            first = cause.cause.strip().splitlines()[0] if cause.cause.strip() else message
            self.cases.append(Case(task.name, seconds, "failed",
                                   message=f"stage {cause.stage}: {where}{first}",
                                   details=cause.cause, notebook=cause.notebook))
        else:
            self.cases.append(Case(task.name, seconds, "failed",
                                   message=message.splitlines()[0] if message else "failed",
                                   details=message))

    def complete_run(self) -> None:
        super().complete_run()
        signal_name = interrupt.received() or "an interruption"
        for name in list(self.started):  # started, never finished: interrupted
            console.progress_done(name)
            self.cases.append(Case(name, time.monotonic() - self.started.pop(name), "error",
                                   message=f"interrupted by {signal_name}; the stage runs "
                                           "again next time"))
        if self.cases:
            self.write_junit()

    def write_junit(self) -> None:
        atomic_write(self.root / layout.junit_report(), junit_xml(
            self.cases, suite=f"{self.root.name} ({record.invocation_id()})",
            timestamp=self.timestamp, hostname=host_info().get("host", "")))

    def _failure(self, task: Any) -> record.FailureRecord | None:
        """The failure record the execute step wrote for this invocation, if any."""
        if not task.name.startswith("execute:"):
            return None
        found = self._read(record.FailureRecord, layout.failure_record(_stage(task)))
        if found is None or found.invocation_id != record.invocation_id():
            return None
        return found

    def _restored(self, task: Any) -> str | None:
        if not task.name.startswith("execute:"):
            return None
        done = self._read(record.ExecuteRecord, layout.execute_record(_stage(task)))
        if done is None or done.invocation_id != record.invocation_id():
            return None
        return done.restored_from

    def _read(self, cls: Any, rel: str) -> Any:
        return record.read_or_none(cls, self.root / rel, self.root)
