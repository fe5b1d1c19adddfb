"""A no-op that loads nothing. When `doit` found every task it was asked to run up to date,
the files its checks read are stamped (size and mtime, the evidence the checks themselves
take for "unchanged"); the same command, finding every one of them as stamped, says the
same up-to-date lines without loading the specs, building doit's tasks or asking each
task's status: a Make-style no-op, stats only.

Anything else takes doit's own path, which stamps again when it finds nothing to do: a
file changed, touched, added or removed; another command line; a profile; a run left
RUNNING; an interpreter request that resolves differently; another mlops-tasks, doit or
Python; the project moved. A file modified within `RACY_NS` of the stamp is not trusted
to show its next change in its mtime (git's "racily clean" entries), so no stamp is
written then. `MLOPS_NOOP_STAMP=0` turns the shortcut off."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR
from typing import Any

from mlops_tasks.base.errors import MlopsError
from mlops_tasks.base.files import atomic_write
from mlops_tasks.base.gitindex import find_repo
from mlops_tasks.env.interpreters import Resolver
from mlops_tasks.project import layout
from mlops_tasks.project.environments import FOLDER as ENVIRONMENTS
from mlops_tasks.project.spec import Stage

FORMAT = 1
RACY_NS = 2_000_000_000  # FAT keeps mtimes to 2 s; most file systems to a few ms
ENV_SWITCH = "MLOPS_NOOP_STAMP"

Stat = list[int] | None


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def command_key(args: Sequence[str], params: Mapping[str, Any], reporter: type,
                environ: Mapping[str, str] = os.environ) -> str | None:
    """What identifies one command line for the shortcut; None where it never applies: a
    forced run, a doit variable (`profile=smoke`), a profile, another reporter or output
    file than the project's. Pure."""
    if (params.get("always") or params.get("single") or params.get("pdb")
            or params.get("cwdPath") or any("=" in a or a.startswith("-") for a in args)
            or environ.get("MLOPS_PROFILE") or params.get("reporter") is not reporter
            or params.get("outfile") is not sys.stdout):
        return None
    shown = {k: params.get(k) for k in ("verbosity", "continue", "num_process", "par_type",
                                         "dep_file", "backend", "check_file_uptodate",
                                         "codec_cls", "failure_verbosity",
                                         "auto_delayed_regex", "default_tasks", "dodoFile",
                                         "seek_file")}
    text = json.dumps([FORMAT, list(args), shown, sys.executable, sys.version,
                       environ.get("MLOPS_VERBOSE", "")], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def stamp_file(root: Path, key: str) -> Path:
    return root / layout.STATE / "noop" / f"{key}.json"


def stage_paths(stage: Stage) -> tuple[list[str], list[str]]:
    """What the checks of one stage's tasks read or look for (project-relative): paths
    whose own stat counts, and inputs and outputs, whose every file counts. Pure."""
    own = [stage.spec_path, stage.notebook, layout.pins_file(stage),
           layout.execute_record(stage), layout.log_record(stage),
           layout.executed_notebook(stage), layout.previous_outputs(stage),
           stage.env_dir, f"{stage.env_dir}/{layout.MARKER}", layout.freeze_file(stage),
           layout.venv_python(stage.env_dir), layout.kernel_json(stage)]
    if stage.workdir != ".":
        own.append(stage.workdir)
    return own, list(dict.fromkeys(map(str, [*stage.inputs, *stage.written, *stage.metrics])))


def watched_paths(stages: Iterable[Stage], specs_dir: str, dep_file: str,
                  dodo: str = "dodo.py") -> tuple[list[str], list[str]]:
    """Every path whose stat a stamp keeps: the project's and doit's config, its specs and
    the folder that lists them (a spec added, removed or renamed counts), its shared
    environments (the folder's entries and their files), doit's DB (its file, which a
    write changes once closed; its -wal is open for the whole run, a no-op's included),
    and each stage's. Pure."""
    environments = f"{specs_dir}/{ENVIRONMENTS}"
    own = ["pyproject.toml", "doit.cfg", dodo, specs_dir, environments, dep_file]
    contents = [environments]
    for stage in stages:
        mine, theirs = stage_paths(stage)
        own += mine
        contents += theirs
    return list(dict.fromkeys(own)), list(dict.fromkeys(contents))


def own_stat(path: Path | str) -> Stat:
    """A file's size and mtime; a folder's own mtime (a change of its entries). None when
    nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns] if S_ISDIR(st.st_mode) else [st.st_size, st.st_mtime_ns]


def tree_stat(path: Path | str) -> Stat:
    """A file's size and mtime; for a folder, its file count, total size, a digest of each
    file's name, size and mtime (a file renamed or moved inside counts) and the latest
    mtime. None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not S_ISDIR(st.st_mode):
        return [st.st_size, st.st_mtime_ns]
    files = []
    for folder, _, names in os.walk(path):
        for name in names:
            full = os.path.join(folder, name)
            try:
                fst = os.stat(full)
            except OSError:
                continue
            files.append((os.path.relpath(full, path), fst.st_size, fst.st_mtime_ns))
    files.sort()
    digest = hashlib.sha256(json.dumps(files).encode()).digest()
    return [len(files), sum(f[1] for f in files), int.from_bytes(digest[:7], "big"),
            max((f[2] for f in files), default=0)]


def newest(stat: Stat) -> int:
    """The latest mtime a stat holds: its last item, in each kind of stat taken here."""
    return stat[-1] if stat else 0


def git_paths(root: Path) -> tuple[list[Path], list[Path]]:
    """The git index, which says which outputs are tracked files (project/load.py); and the
    `.git` each folder from the project up to its repository could hold, by presence only
    (a repository made later changes which files are tracked; git's own writes change the
    folder's mtime all the time)."""
    found = find_repo(root)
    top = found[0] if found else None
    present = []
    for folder in (root, *root.parents):
        present.append(folder / ".git")
        if folder == top:
            break
    return ([found[1] / "index"] if found else []), present


def code_stamp() -> list[Any]:
    """The mlops-tasks and doit that decide: a new version of either stamps again."""
    import doit

    here = Path(__file__).resolve().parents[1]
    files = sorted(here.rglob("*.py"))
    return [".".join(map(str, doit.__version__)),
            [[p.relative_to(here).as_posix(), own_stat(p)] for p in files]]


def interpreter_requests(stages: Iterable[Stage]) -> list[list[str | None]]:
    return [list(r) for r in dict.fromkeys((s.python, s.python_exe) for s in stages)]


def resolved(root: Path, requests: Iterable[Sequence[str | None]]) -> list[list[str]] | None:
    """What each interpreter request resolves to now (from the probe cache: no process
    unless an interpreter is new); None when one does not resolve."""
    resolver = Resolver.for_cache(root / layout.interpreter_cache())
    out = []
    for python, python_exe in requests:
        try:
            found = resolver.resolve("noop", python, python_exe)
        except MlopsError:
            return None
        out.append([found.path, found.version, found.implementation])
    return out


@dataclass
class Taken:
    """The stats taken before doit checked the tasks: a file changed while it checked no
    longer matches, so the next run takes the full path."""

    at_ns: int
    own: dict[str, Stat]
    contents: dict[str, Stat]
    present: dict[str, bool]
    requests: list[list[str | None]]
    interpreters: list[list[str]] | None
    warnings: list[str]
    code: list[Any]
    dep_file: str


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def take(root: Path, stages: Sequence[Stage], specs_dir: str, dep_file: str,
         warnings: Iterable[str], since_ns: int | None = None, dodo: str = "dodo.py"
         ) -> Taken:
    """`since_ns`: when the project began to load (a file changed after that may not be
    what the tasks were made from: too fresh to trust)."""
    at = time.time_ns() if since_ns is None else since_ns
    own, contents = watched_paths(stages, specs_dir, dep_file, dodo)
    index, present = git_paths(root)
    requests = interpreter_requests(stages)
    return Taken(at, {_key(root, p): own_stat(p) for p in [*(root / p for p in own), *index]},
                 {p: tree_stat(root / p) for p in contents},
                 {_key(root, p): os.path.lexists(p) for p in present},
                 requests, resolved(root, requests), list(warnings), code_stamp(), dep_file)


def racy(taken: Taken) -> bool:
    """A stat too close to when it was taken to be trusted next time."""
    latest = max(map(newest, [*taken.own.values(), *taken.contents.values()]), default=0)
    return latest > taken.at_ns - RACY_NS


def save(root: Path, key: str, taken: Taken, uptodate: Sequence[str]) -> bool:
    """Stamp a no-op: False (nothing written) when a file is too fresh to trust."""
    if taken.interpreters is None or racy(taken):
        return False
    data = {"format": FORMAT, "root": str(root.resolve()), "code": taken.code,
            "dep_file": taken.dep_file, "own": taken.own, "present": taken.present,
            "contents": taken.contents, "requests": taken.requests,
            "interpreters": taken.interpreters, "warnings": taken.warnings,
            "uptodate": list(uptodate)}
    path = stamp_file(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, separators=(",", ":")))
    return True


def forget(root: Path, key: str) -> None:
    stamp_file(root, key).unlink(missing_ok=True)


@dataclass(frozen=True)
class Replay:
    uptodate: list[str]
    warnings: list[str]


def current(root: Path, key: str) -> Replay | None:
    """The stamp for this command when everything it stamped is as it was; else None."""
    try:
        data = json.loads(stamp_file(root, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if data.get("root") != str(root.resolve()):
        return None  # a moved project keeps its files' stats; its kernelspecs are stale
    if any(root.glob(layout.running_records())):
        return None  # a killed doit's runs are closed on the full path
    try:  # a change another process made to doit's DB, still in its log, not in its file
        if os.path.getsize(root / f"{data.get('dep_file')}-wal") > 0:
            return None
    except OSError:
        pass
    top = str(root)  # strings, not Paths: thousands of stats are most of a no-op's time
    for rel, stat in (data.get("own") or {}).items():
        if own_stat(os.path.join(top, rel)) != stat:
            return None
    for rel, stat in (data.get("contents") or {}).items():
        if tree_stat(os.path.join(top, rel)) != stat:
            return None
    for rel, there in (data.get("present") or {}).items():
        if os.path.lexists(os.path.join(top, rel)) != there:
            return None
    if data.get("code") != code_stamp():
        return None
    if resolved(root, data.get("requests") or []) != data.get("interpreters"):
        return None
    return Replay(list(data.get("uptodate") or []), list(data.get("warnings") or []))
