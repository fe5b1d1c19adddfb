"""The doit entry point: `from mlops_tasks.dodo import DOIT_CONFIG, task_mlops` in a project's
dodo.py. A public path that never moves; the entry itself is pipeline/entry.py."""

from mlops_tasks.pipeline.entry import DOIT_CONFIG, task_mlops

__all__ = ["DOIT_CONFIG", "task_mlops"]
