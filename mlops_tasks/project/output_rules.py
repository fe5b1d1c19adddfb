"""What a stage may declare as an output: never something `doit clean` or a failed run must
not delete (the project root, git's or the tool's state, a venv, a spec, a notebook, a file
under version control), and no two outputs that are one file on some disk. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mlops_tasks.base.errors import SpecError
from mlops_tasks.project.layout import STATE
from mlops_tasks.project.spec import Stage

# what makes a folder a project, whether or not git tracks it
PROJECT_FILES = {"pyproject.toml": "the project's settings", "dodo.py": "the project's dodo.py"}


def _parents(path: str) -> list[str]:
    """path and every folder above it: 'a/b/c' -> ['a/b/c', 'a/b', 'a']."""
    parts = path.split("/")
    return ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]


def _written(stage: Stage) -> Iterable[tuple[str, str]]:
    for key, paths in (("outputs", stage.outputs), ("metrics", stage.metrics)):
        for path in paths:
            yield key, path


class Sources:
    """The project's own files and folders an output may not be, hold or sit inside, looked
    up by path (one pass over the stages, not one per output)."""

    def __init__(self, stages: Sequence[Stage], tracked: set[str] | None):
        self.envs = {s.env_dir: s for s in stages}
        self.env_holders: dict[str, Stage] = {}
        for env_dir, owner in self.envs.items():
            for parent in _parents(env_dir)[1:]:
                self.env_holders.setdefault(parent, owner)
        self.files = {s.spec_path: f"the spec of stage '{s.name}'" for s in stages}
        self.files.update({s.notebook: f"the notebook of stage '{s.name}'" for s in stages})
        self.files.update(PROJECT_FILES)
        self.holders: dict[str, str] = {}
        for path, what in self.files.items():
            for parent in _parents(path):
                self.holders.setdefault(parent, what)
        self.tracked = tracked or set()
        self.tracked_folders = {parent: path for path in sorted(self.tracked, reverse=True)
                                for parent in _parents(path)}

    def forbidden(self, path: str) -> str | None:
        """Why path may not be an output; None when it may."""
        if path == ".":
            return "is the project root"
        top = path.split("/")[0].lower()  # .GIT is .git on a disk that ignores case
        if top == ".git":
            return "is inside .git"
        if top == STATE.lower():
            return f"is inside the tool's state folder {STATE}/"
        for parent in _parents(path):
            if parent in self.envs:
                other = self.envs[parent]
                return f"is inside the venv of stage '{other.name}' ({other.env_dir})"
        if path in self.env_holders:
            other = self.env_holders[path]
            return f"holds the venv of stage '{other.name}' ({other.env_dir})"
        if path in self.holders:
            return f"is or holds {self.holders[path]}"
        return None

    def tracked_under(self, path: str) -> str | None:
        """A tracked file that path is, or holds."""
        return self.tracked_folders.get(path)


def check_outputs(stages: Sequence[Stage], tracked: set[str] | None) -> None:
    """Refuse outputs that would let a run or `doit clean` delete the user's files."""
    sources = Sources(stages, tracked)
    seen: dict[str, tuple[str, Stage]] = {}  # lower-cased path -> (path, stage)
    for stage in stages:
        for key, path in _written(stage):
            why = sources.forbidden(path)
            if why:
                raise SpecError(stage.spec_path, f"'{key}' entry {path!r} {why}; a stage's "
                                "outputs are deleted by `doit clean` and replaced by every run: "
                                "write them to a folder of their own, such as data/ or models/",
                                line=stage.line_of(key), key=key)
            hit = sources.tracked_under(path)
            if hit:
                raise SpecError(stage.spec_path, f"'{key}' entry {path!r} "
                                + ("is" if hit == path else f"holds {hit!r}, which is")
                                + " tracked by git, so `doit clean` would delete a versioned "
                                f"file; if it is generated, untrack it (git rm --cached {hit}) "
                                "and ignore it, or write the output elsewhere",
                                line=stage.line_of(key), key=key)
            _check_conflicts(stage, key, path, seen)
            _remember(seen, path, stage)


def _check_conflicts(stage: Stage, key: str, path: str,
                     seen: dict[str, tuple[str, Stage]]) -> None:
    """Against every output seen so far: the same but for case, or one inside the other.
    `seen` holds each output (lower-cased) and, under "/"-ended keys, the folders above it,
    so both directions are lookups."""
    lower = path.lower()
    if lower in seen and seen[lower][0] != path:
        _conflict(stage, key, path, *seen[lower], "differs only in case from")
    for parent in _parents(lower)[1:]:
        if parent in seen:
            _conflict(stage, key, path, *seen[parent], "is inside, or holds,")
    inside = seen.get(lower + "/")  # an earlier output inside this one
    if inside is not None:
        _conflict(stage, key, path, *inside, "is inside, or holds,")


def _remember(seen: dict[str, tuple[str, Stage]], path: str, stage: Stage) -> None:
    lower = path.lower()
    seen.setdefault(lower, (path, stage))
    for parent in _parents(lower)[1:]:
        seen.setdefault(parent + "/", (path, stage))


def _conflict(stage: Stage, key: str, path: str, other_path: str, other: Stage,
              why: str) -> None:
    owner = "this stage" if other is stage else f"stage '{other.name}'"
    raise SpecError(stage.spec_path, f"'{key}' entry {path!r} {why} {other_path!r}, an output "
                    f"of {owner}; one output per file or folder, the same on every disk",
                    line=stage.line_of(key), key=key)


def clean_plan(present: Sequence[str], recorded: Mapping[str, str | None] | None,
               current: Mapping[str, str | None]) -> list[tuple[str, str | None]]:
    """What `doit clean` does with each present output: (path, None) to remove it, (path,
    why) to keep it. Only a file or folder whose content is what the stage's last run
    recorded is provably the tool's; anything else may be the user's."""
    plan: list[tuple[str, str | None]] = []
    for rel in present:
        made = (recorded or {}).get(rel)
        if recorded is None:
            plan.append((rel, "no run of this stage is recorded, so it may be yours"))
        elif made is None:
            plan.append((rel, "the stage's last run did not write it, so it may be yours"))
        elif current.get(rel) != made:
            plan.append((rel, "changed since the stage's last run wrote it"))
        else:
            plan.append((rel, None))
    return plan
