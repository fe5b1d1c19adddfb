"""JUnit XML for Jenkins' junit step: one testsuite per doit invocation, one testcase per
stage task that ran (the schema Jenkins reads: tests/data/junit-10.xsd). Pure."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

# XML 1.0 has no place for most control characters (cell output can hold them)
_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: str) -> str:
    return _INVALID.sub("?", value)


@dataclass(frozen=True)
class Case:
    """One task that ran: passed, failed (the stage's fault), error (interrupted or the
    tool's fault); `restored_from` for a stage the stage cache restored."""

    task: str  # e.g. execute:train
    seconds: float
    outcome: str  # "passed" | "failed" | "error"
    message: str = ""
    details: str = ""
    notebook: str | None = None  # the failed notebook, for a failed execute
    restored_from: str | None = None

    @property
    def stage(self) -> str:
        return self.task.partition(":")[2] or self.task


def junit_xml(cases: Sequence[Case], suite: str, timestamp: str, hostname: str) -> str:
    failures = sum(c.outcome == "failed" for c in cases)
    errors = sum(c.outcome == "error" for c in cases)
    root = ET.Element("testsuites", name="mlops-tasks", tests=str(len(cases)),
                      failures=str(failures), errors=str(errors),
                      time=f"{sum(c.seconds for c in cases):.3f}")
    node = ET.SubElement(root, "testsuite", name=_text(suite), tests=str(len(cases)),
                         failures=str(failures), errors=str(errors), skipped="0",
                         time=f"{sum(c.seconds for c in cases):.3f}", timestamp=timestamp,
                         hostname=_text(hostname))
    for case in cases:
        item = ET.SubElement(node, "testcase", name=case.task, classname=case.stage,
                             time=f"{case.seconds:.3f}")
        if case.outcome in ("failed", "error"):
            kind = "failure" if case.outcome == "failed" else "error"
            problem = ET.SubElement(item, kind, message=_text(case.message),
                                    type="interrupted" if kind == "error" else "StageFailed")
            problem.text = _text(case.details or case.message)
        out = []
        if case.restored_from:
            out.append(f"restored from run {case.restored_from} (stage cache); the notebook "
                       "did not run")
        if case.notebook:
            out.append(f"the executed notebook with the error: {case.notebook}")
        if out:
            ET.SubElement(item, "system-out").text = _text("\n".join(out))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
