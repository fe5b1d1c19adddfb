"""`python -m mlops_tasks.mlproject STAGE name=value ...`: the command MLflow Projects entry
points run (a public path that never moves; the work is in project/mlproject.py)."""

import sys

from mlops_tasks.project.mlproject import doit_args, main, mlproject_text

__all__ = ["doit_args", "main", "mlproject_text"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
