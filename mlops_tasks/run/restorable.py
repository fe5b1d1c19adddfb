"""For `doit info`: the complete run a stale stage would be restored from now. Above both the
execute step and the stage cache, which it asks (so neither imports the other back)."""

from __future__ import annotations

import time
from pathlib import Path

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project.load import load_project
from mlops_tasks.run.lifecycle import experiment
from mlops_tasks.run.snapshot import current_key
from mlops_tasks.run.stage_cache import reads, winner
from mlops_tasks.tracking import tags as tag


def cached_run_line(root: Path, name: str) -> str | None:
    """For `doit info`: the complete run the stage would be restored from now, in words
    (None when there is none, or the stage's key cannot be computed): the entry a lookup
    would take, signature and producers checked. Writes nothing."""
    try:
        project = load_project(root)
        stage = project.stage(name)
        if not reads(project.config, stage):
            return None
        key = current_key(project.config, stage)
        uri, experiment_id = experiment(project.config)
        found = winner(project.config, stage, uri, experiment_id, key, step=None)
    except (MlopsError, KeyError, OSError):
        return None
    if found is None:
        return "no complete run has this stage's key; it will execute"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(found.start_ms / 1000))
    return (f"run {found.run_id} ({found.tags.get(tag.HOST, 'unknown host')}, "
            f"{when}) has this stage's key: it will be restored, not executed")
