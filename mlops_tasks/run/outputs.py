"""The output transaction of one execution: declared outputs move aside before the notebook
runs and come back if it fails, so a failed or interrupted run never leaves half-written
outputs that look finished. A manifest, written before anything moves, says which outputs
existed, so recovery after a kill restores those and removes only files that did not exist
before. Outputs may live on another file system than the state folder (a symlinked data
folder): a move across devices copies into a temporary name beside the target, renames it
into place, then deletes the source."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from mlops_tasks.base.errors import NoSpaceLeft, StageFailed
from mlops_tasks.base.files import read_json, write_json
from mlops_tasks.project import layout
from mlops_tasks.project.fingerprint import content_stat
from mlops_tasks.project.spec import Stage


def remove(path: Path) -> None:
    """Remove an output, file or folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def is_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def copy_folder(source: Path, target: Path) -> None:
    """shutil.copytree that fails with the first file's own OSError (its errno says why: a
    full disk), not a shutil.Error listing every file that could not be copied."""
    def copy(src: str, dst: str) -> object:
        try:
            return shutil.copy2(src, dst)
        except OSError as err:
            raise StopCopy(err) from None

    try:
        shutil.copytree(source, target, symlinks=True, copy_function=copy)
    except StopCopy as stop:
        raise stop.err from None


class StopCopy(Exception):
    def __init__(self, err: OSError):
        self.err = err


def move(source: Path, target: Path) -> None:
    """os.replace that also replaces a folder and crosses devices. On one device, a rename.
    Across devices, a copy under a temporary name on the target's device, then the target
    replaced by a rename and the source removed: until the rename, the source is whole
    (a killed or failed move loses nothing; at most a `.moving-` leftover)."""
    if os.lstat(source).st_dev == os.stat(target.parent).st_dev:
        if is_folder(target) or (is_folder(source) and target.exists()):
            remove(target)  # a folder is not replaced by os.replace
        os.replace(source, target)
        return
    temp = target.with_name(f".moving-{os.getpid()}-{target.name}")
    try:
        if is_folder(source):
            copy_folder(source, temp)
        else:
            shutil.copy2(source, temp, follow_symlinks=False)
    except BaseException:
        if temp.exists() or temp.is_symlink():
            remove(temp)
        raise
    if is_folder(target):
        remove(target)
    os.replace(temp, target)
    remove(source)


def why_not_moved(err: OSError, into: Path) -> str:
    """The fix for outputs that could not be moved into the folder `into`, from what the
    system said (a program holding a file open is one cause among several)."""
    if err.errno == errno.ENOSPC:
        return (f"no space left on {NoSpaceLeft.mount_of(str(into))}: free space there and "
                "run doit again")
    if err.errno == errno.EBUSY or (os.name == "nt" and err.errno in (errno.EACCES, errno.EPERM)):
        return "is a program holding them open? close it and run doit again"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "check that the outputs and the state folder are writable"
    return "check the paths and run doit again"


def full_folder(root: Path, stage: Stage | None) -> Path:
    """Where a write that failed with "no space left" (and no file name) most likely went:
    the first of the state folder, the stage's output folders and the project whose disk
    is (nearly) full; the project when none is."""
    candidates = [root / layout.STATE, *(root / rel for rel in (stage.outputs if stage else ()))]
    for path in candidates:
        folder = path if path.is_dir() else path.parent
        try:
            if folder.exists() and shutil.disk_usage(folder).free < 1 << 20:
                return folder
        except OSError:
            continue
    return root


class OutputSet:
    def __init__(self, root: Path, stage: Stage):
        self.root = root
        self.stage = stage
        self.paths = list(stage.written)
        self.backup = root / layout.previous_outputs(stage)
        self.manifest = self.backup / "manifest.json"

    def begin(self) -> None:
        if self.backup.exists():  # an earlier run was killed: put its outputs back first
            self.rollback()
        existed = [rel for rel in self.paths if (self.root / rel).exists()]
        try:
            write_json(self.manifest, {"existed": existed})
            for rel in self.paths:
                target = self.root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if rel in existed:
                    saved = self.backup / "files" / rel
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    move(target, saved)
        except OSError as err:
            self.rollback()
            raise StageFailed(self.stage.name, f"cannot move the previous outputs aside ({err}); "
                              f"{why_not_moved(err, self.backup)}") from None

    def rollback(self) -> None:
        try:
            existed = set(read_json(self.manifest)["existed"])
        except (OSError, ValueError, KeyError):
            existed = None  # no manifest: nothing was moved
        if existed is not None:
            for rel in self.paths:
                target, saved = self.root / rel, self.backup / "files" / rel
                try:
                    if saved.exists() or saved.is_symlink():
                        move(saved, target)
                    elif rel not in existed and target.exists():
                        remove(target)  # written by the failed run
                except OSError as err:  # the backup stays: the next run puts it back
                    raise StageFailed(self.stage.name, f"cannot put the previous output {rel} "
                                      f"back ({err}); it is kept in {saved.parent} and the next "
                                      f"run puts it back; {why_not_moved(err, target.parent)}"
                                      ) from None
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
