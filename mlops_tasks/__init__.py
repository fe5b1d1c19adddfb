"""mlops-tasks: incremental, audited builds of notebook ML pipelines on doit."""

__version__ = "0.1.0"
