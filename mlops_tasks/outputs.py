"""The output transaction of one execution: declared outputs move aside before the notebook
runs and come back if it fails, so a failed or interrupted run never leaves half-written
outputs that look finished. A manifest, written before anything moves, says which outputs
existed, so recovery after a kill restores those and removes only files that did not exist
before."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import layout
from .errors import StageFailed
from .files import read_json, write_json
from .fingerprint import content_stat
from .spec import Stage


def remove(path: Path) -> None:
    """Remove an output, file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


class OutputSet:
    def __init__(self, root: Path, stage: Stage):
        self.root = root
        self.stage = stage
        self.paths = [*stage.outputs, *stage.metrics]
        self.backup = root / layout.previous_outputs(stage)
        self.manifest = self.backup / "manifest.json"

    def begin(self) -> None:
        if self.backup.exists():  # an earlier run was killed: put its outputs back first
            self.rollback()
        existed = [rel for rel in self.paths if (self.root / rel).exists()]
        write_json(self.manifest, {"existed": existed})
        try:
            for rel in self.paths:
                target = self.root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if rel in existed:
                    saved = self.backup / "files" / rel
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(target, saved)
        except OSError as err:
            self.rollback()
            raise StageFailed(self.stage.name, f"cannot move the previous outputs aside ({err}); "
                              "is a program holding them open?") from None

    def rollback(self) -> None:
        try:
            existed = set(read_json(self.manifest)["existed"])
        except (OSError, ValueError, KeyError):
            existed = None  # no manifest: nothing was moved
        if existed is not None:
            for rel in self.paths:
                target, saved = self.root / rel, self.backup / "files" / rel
                if saved.exists():
                    if target.exists() or target.is_symlink():
                        remove(target)  # a folder is not replaced by os.replace
                    os.replace(saved, target)
                elif rel not in existed and target.exists():
                    remove(target)  # written by the failed run
        shutil.rmtree(self.backup, ignore_errors=True)

    def commit(self) -> None:
        shutil.rmtree(self.backup, ignore_errors=True)

    def missing(self) -> list[str]:
        """Declared outputs the notebook did not write."""
        return [rel for rel in self.paths if not (self.root / rel).exists()]

    @staticmethod
    def stats_of(root: Path, paths: list[str]) -> dict[str, list[int]]:
        """Size and mtime of each output (file or folder): a cheap "unchanged" test."""
        return {rel: content_stat(root / rel) or [] for rel in paths}
