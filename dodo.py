"""doit entry point: one task chain per stage spec in env_specs/ (see README)."""

from mlops_tasks.dodo import DOIT_CONFIG, task_mlops  # noqa: F401
